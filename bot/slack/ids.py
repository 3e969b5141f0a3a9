"""What Slack's ids look like: users (U…/W…), channels (C…/G…/D…) and user groups (S…). Settings,
the policy file and the messages that mention people all check ids against these."""

from __future__ import annotations

import re

SLACK_USER_ID = re.compile(r"^[UW][A-Z0-9]{2,20}$")
SLACK_CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]{2,20}$")
SLACK_GROUP_ID = re.compile(r"^S[A-Z0-9]{2,20}$")
