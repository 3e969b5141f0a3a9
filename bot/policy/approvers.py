"""Who may request, approve and deny: fixed Slack user ids (SFOX_APPROVERS) and, optionally, the
members of a Slack user group (SFOX_APPROVER_GROUP), so admins are managed in Slack itself.

The group is read with `usergroups.users.list` (scope `usergroups:read`) and cached briefly: the
membership check sits on the path that must answer Slack within 3 s. When Slack cannot tell us
who is in the group, its members are treated as NOT approvers (fail closed) until it can, and the
failure is logged; the fixed ids keep working meanwhile. What people are told then (that we
cannot know, not that they are not approvers) is in bot/policy/rules.py.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection, Container

from slack_sdk import WebClient

from bot.config import Settings
from bot.slack.calls import make_web_client, slack_failure

log = logging.getLogger("sfox_bot.approvers")

GROUP_TTL_SECONDS = 60.0
# After a failed read, wait this long before asking Slack again, so an outage does not add a
# Slack round trip to every click.
FAILURE_TTL_SECONDS = 5.0
# A slow Slack must not eat the 3 s the bot has to acknowledge a command.
LOOKUP_TIMEOUT_SECONDS = 2


class GroupApprovers:
    """A container of approver ids: `fixed` ids plus the current members of one user group."""

    def __init__(
        self,
        client: WebClient,
        group_id: str,
        fixed: Collection[str] = (),
        *,
        ttl: float = GROUP_TTL_SECONDS,
        failure_ttl: float = FAILURE_TTL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.group_id = group_id
        self.fixed = frozenset(fixed)
        self.ttl = ttl
        self.failure_ttl = failure_ttl
        self.clock = clock
        self._members: frozenset[str] = frozenset()
        self._valid_until = float("-inf")
        self._lock = threading.Lock()
        # Slack's error from the last read, while the group cannot be read; None when it was read.
        self.unreadable: str | None = None

    def __contains__(self, user_id: object) -> bool:
        return user_id in self.fixed or user_id in self.members()

    def members(self) -> frozenset[str]:
        """The group's members, from the cache while it is fresh; empty while Slack fails."""
        with self._lock:  # one Slack call at a time; the others then find a fresh cache
            now = self.clock()
            if now < self._valid_until:
                return self._members
            try:
                self._members = self._fetch()
                self._valid_until = now + self.ttl
                self.unreadable = None
            except Exception as exc:
                self._members = frozenset()
                self._valid_until = now + self.failure_ttl
                self.unreadable = _slack_error(exc)
                log.warning(
                    "approver group unreadable: its members are not approvers until Slack answers",
                    extra={"usergroup": self.group_id, "slack_error": _slack_error(exc)},
                )
            return self._members

    def _fetch(self) -> frozenset[str]:
        response = self.client.usergroups_users_list(usergroup=self.group_id)
        users = response.get("users")
        if not isinstance(users, list):
            raise ValueError("usergroups.users.list answered without a user list")
        return frozenset(str(u) for u in users)


def approvers_for(settings: Settings) -> Container[str]:
    """The approver container `settings` describe: the fixed ids, plus the group when one is set."""
    if not settings.approver_group:
        return settings.approvers
    client = make_web_client(
        settings.slack_bot_token or "", settings.slack_api_url, LOOKUP_TIMEOUT_SECONDS, retries=False
    )
    return GroupApprovers(client, settings.approver_group, settings.approvers)


def _slack_error(exc: Exception) -> str:
    failure = slack_failure(exc)
    return failure.label if failure else type(exc).__name__
