"""Who is in a set of people (a policy's stage, its requesters, every approver): fixed Slack user
ids and the members of Slack user groups, so admins are managed in Slack itself (SFOX_APPROVERS and
SFOX_APPROVER_GROUP, or the stages of SFOX_POLICY_FILE; bot/policy/policy_file.py).

Each group is read with `usergroups.users.list` (scope `usergroups:read`) and cached briefly: the
membership check sits on the path that must answer Slack within 3 s. When Slack cannot tell us
who is in the group, its members are treated as NOT approvers (fail closed) until it can, and the
failure is logged; the fixed ids keep working meanwhile. What people are told then (that we
cannot know, not that they are not approvers) is in bot/policy/rules.py.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection, Container, Sequence

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


class GroupDirectory:
    """The members of any number of user groups, each read with `usergroups.users.list` and cached
    on its own: one directory serves every stage, the requesters and the approvers of a policy."""

    def __init__(
        self,
        client: WebClient,
        *,
        ttl: float = GROUP_TTL_SECONDS,
        failure_ttl: float = FAILURE_TTL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.ttl = ttl
        self.failure_ttl = failure_ttl
        self.clock = clock
        self._members: dict[str, frozenset[str]] = {}
        self._valid_until: dict[str, float] = {}
        self._errors: dict[str, str] = {}
        self._lock = threading.Lock()

    def members(self, group_id: str) -> frozenset[str]:
        """The group's members, from the cache while it is fresh; empty while Slack fails."""
        with self._lock:  # one Slack call at a time; the others then find a fresh cache
            now = self.clock()
            if now < self._valid_until.get(group_id, float("-inf")):
                return self._members[group_id]
            try:
                self._members[group_id] = self._fetch(group_id)
                self._valid_until[group_id] = now + self.ttl
                self._errors.pop(group_id, None)
            except Exception as exc:
                self._members[group_id] = frozenset()
                self._valid_until[group_id] = now + self.failure_ttl
                self._errors[group_id] = _slack_error(exc)
                log.warning(
                    "approver group unreadable: its members are not approvers until Slack answers",
                    extra={"usergroup": group_id, "slack_error": self._errors[group_id]},
                )
            return self._members[group_id]

    def forget(self, group_id: str) -> None:
        """Drop the cached members of `group_id`: the next check reads Slack again."""
        with self._lock:
            self._valid_until.pop(group_id, None)

    def unreadable(self, group_id: str) -> str | None:
        """Slack's error from the last read of `group_id`, while it cannot be read; else None."""
        return self._errors.get(group_id)

    def _fetch(self, group_id: str) -> frozenset[str]:
        response = self.client.usergroups_users_list(usergroup=group_id)
        users = response.get("users")
        if not isinstance(users, list):
            raise ValueError("usergroups.users.list answered without a user list")
        return frozenset(str(u) for u in users)


class People:
    """A container of people: `fixed` user ids plus the current members of some user groups (a
    stage, the requesters, every approver of a policy). A group Slack cannot read adds nobody
    (fail closed); `unreadable` then says so. Without a directory, groups add nobody."""

    def __init__(
        self, fixed: Collection[str] = (), groups: Sequence[str] = (), directory: GroupDirectory | None = None
    ) -> None:
        self.fixed = frozenset(fixed)
        self.groups = tuple(dict.fromkeys(groups))
        self.directory = directory

    def __contains__(self, user_id: object) -> bool:
        if user_id in self.fixed:
            return True
        return any(user_id in self.directory.members(g) for g in self.groups) if self.directory else False

    @property
    def unreadable(self) -> str | None:
        """Slack's error while one of the groups cannot be read (None when all can, or there are
        none). Read it after a membership test: that test is what reads the groups."""
        if self.directory is None:
            return None
        return next((e for g in self.groups if (e := self.directory.unreadable(g))), None)

    def group_members(self) -> frozenset[str]:
        """Every group's members (read or cached now); the fixed ids are not included."""
        if self.directory is None:
            return frozenset()
        return frozenset().union(*(self.directory.members(g) for g in self.groups))


class GroupApprovers(People):
    """Fixed ids plus the members of one user group (SFOX_APPROVER_GROUP), on a directory of its own."""

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
        super().__init__(
            fixed, (group_id,), GroupDirectory(client, ttl=ttl, failure_ttl=failure_ttl, clock=clock)
        )
        self.group_id = group_id

    def members(self) -> frozenset[str]:
        """The group's members, from the cache while it is fresh; empty while Slack fails."""
        return self.group_members()


def directory_for(settings: Settings) -> GroupDirectory:
    """The directory that reads user groups with the bot's token: a quick call, never retried,
    because the membership check sits on the path that must answer Slack within 3 s."""
    client = make_web_client(
        settings.slack_bot_token or "", settings.slack_api_url, LOOKUP_TIMEOUT_SECONDS, retries=False
    )
    return GroupDirectory(client)


def approvers_for(settings: Settings) -> Container[str]:
    """The approver container `settings` describe: the fixed ids, plus the group when one is set."""
    if not settings.approver_group:
        return settings.approvers
    return People(settings.approvers, (settings.approver_group,), directory_for(settings))


def _slack_error(exc: Exception) -> str:
    failure = slack_failure(exc)
    return failure.label if failure else type(exc).__name__
