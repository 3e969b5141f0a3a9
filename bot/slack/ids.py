"""What Slack's ids look like: users (U…/W…), channels (C…/G…/D…) and user groups (S…). Settings,
the policy file, the Workflow step and the messages that mention people all check ids against these.

Each pattern ends in `\\Z`, not `$`: `$` also matches before a final newline, so `UALICE01\\n` would
pass `.match` (issue 32). With `\\Z`, `.match`, `.fullmatch` and `.search` all mean the whole string.
"""

from __future__ import annotations

import re

SLACK_USER_ID = re.compile(r"^[UW][A-Z0-9]{2,20}\Z")
SLACK_CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]{2,20}\Z")
SLACK_GROUP_ID = re.compile(r"^S[A-Z0-9]{2,20}\Z")
