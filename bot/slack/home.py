"""The App Home tab (issue 13): what waits for me, my open requests, the latest outcomes.

For approvers: the pending requests they may act on (not their own, not already approved by
them) with Approve and Deny buttons that do exactly what the card's do (the same click journal,
rules and claim: handlers/home.py records them as the card's actions, and the card is updated
through the outbox as usual); their own open requests; the 10 latest outcomes. For anyone else: a
short explanation of what the bot does and who the approvers are.

A batch's users are never listed (issue 32): the batch's card is where a batch is decided, paused
and followed, and a Home button of one of its users would decide it alone, outside the batch's
pacing; the lists read single requests only, in SQL (`single=True`).

`views.publish` is safe to lose: the tab is rebuilt from the database each time it is opened and
after each action taken from it; a failed publish is logged and changes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Container
from datetime import UTC, datetime
from typing import Any

from slack_sdk import WebClient

from bot.policy import rules
from bot.slack.blocks import (
    STATUS_LINES,
    approve_button,
    code,
    deny_button,
    escape,
    mention,
    mentions,
    run_date,
    slack_date,
)
from bot.slack.ids import SLACK_USER_ID
from bot.slack.watch_blocks import watching_line
from bot.store.db import Store
from bot.store.records import RequestRecord
from bot.store.schema import HELD_STATUSES, WATCHING

log = logging.getLogger("sfox_bot.home")

HOME_APPROVE = "sfox_home_approve"
HOME_DENY = "sfox_home_deny"
LATEST_OUTCOMES = 10
MAX_WAITING = 20  # a Home view holds at most 100 blocks
SCAN_LIMIT = 500


class AppHome:
    def __init__(
        self,
        client: WebClient,
        store: Store,
        approvers: Container[str],
        group_id: str | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        policy: rules.Policy | None = None,
    ) -> None:
        self.client = client
        # With the policy, "Waiting for you" lists only the requests whose stages they may fill.
        self.policy = policy
        self.store = store
        self.approvers = approvers
        self.group_id = group_id
        self.now = clock

    def publish(self, user_id: str, banner: str | None = None) -> bool:
        """Publish `user_id`'s Home tab; False (and a log line) when Slack refuses: safe to lose."""
        try:
            self.client.views_publish(user_id=user_id, view=self.view(user_id, banner))
        except Exception as exc:
            log.warning("app home not published", extra={"user": user_id, "error": type(exc).__name__})
            return False
        return True

    def view(self, user_id: str, banner: str | None = None) -> dict[str, Any]:
        blocks: list[dict[str, Any]] = [_header("sFOX account deactivations")]
        if banner:
            blocks.append(_context(banner[:1500]))  # built by the bot (workflow answers), already escaped
        if user_id in self.approvers:
            blocks += self._approver_blocks(user_id)
        elif (
            self.policy is not None
            and self.policy.requesters is not None
            and user_id in self.policy.requesters
        ):
            blocks += self._requester_blocks(user_id)
        else:
            blocks += self._other_blocks()
        return {"type": "home", "blocks": blocks[:100]}

    def _requester_blocks(self, user_id: str) -> list[dict[str, Any]]:
        """A requester in no stage (maker-checker): their open requests and who approves them."""
        recent = list(self.store.history(limit=SCAN_LIMIT, single=True))
        mine = [r for r in recent if rules.is_requester(r, user_id) and r.status in HELD_STATUSES]
        return [
            _section("*Your open requests*"),
            _section("\n".join(_line(r) for r in mine) if mine else "None."),
            {"type": "divider"},
            _section(f"*Approvers:* {self.approver_names()}"),
        ]

    def _approver_blocks(self, user_id: str) -> list[dict[str, Any]]:
        now = self.now()
        recent = list(self.store.history(limit=SCAN_LIMIT, single=True))
        waiting = [
            r
            for r in recent
            if r.status == "pending"
            and r.expires_at > now
            and rules.awaits(r, user_id)
            and self._may_fill(r, user_id)
        ][:MAX_WAITING]
        mine = [r for r in recent if rules.is_requester(r, user_id) and r.status in HELD_STATUSES]
        outcomes = [r for r in recent if r.status not in HELD_STATUSES][:LATEST_OUTCOMES]
        watched = [r for r in recent if r.status == WATCHING and not rules.is_requester(r, user_id)]
        blocks: list[dict[str, Any]] = [_section("*Waiting for you*")]
        if not waiting:
            blocks.append(_context("Nothing is waiting for your approval."))
        for record in waiting:
            blocks.append(_section(_summary(record)))
            blocks.append(
                {
                    "type": "actions",
                    "block_id": f"sfox_home_{record.id}",
                    "elements": [
                        approve_button(record, HOME_APPROVE),
                        deny_button(record, HOME_DENY),
                    ],
                }
            )
        blocks.append({"type": "divider"})
        blocks.append(_section("*Your open requests*"))
        blocks.append(_section("\n".join(_line(r) for r in mine) if mine else "None."))
        if watched:  # others' watches: no card yet, but an approver may stop them
            blocks.append(
                _section("*Watched until empty*\n" + "\n".join(_line(r) for r in watched[:MAX_WAITING]))
            )
        blocks.append({"type": "divider"})
        blocks.append(_section(f"*Latest {LATEST_OUTCOMES} outcomes*"))
        blocks.append(_section("\n".join(_line(r) for r in outcomes) if outcomes else "None yet."))
        return blocks

    def _may_fill(self, record: RequestRecord, user_id: str) -> bool:
        return self.policy is None or bool(rules.stages_open_to(self.policy, record, user_id)[0])

    def _other_blocks(self) -> list[dict[str, Any]]:
        text = (
            "This bot deactivates sFOX end-user accounts under a two-person rule: an approver asks with "
            "`/sfox-deactivate <sfox_user_id> [reason]`, a second approver approves on the card, and "
            "only then is the account deactivated (permanently). Every step is recorded."
        )
        return [_section(text), _section(f"*Approvers:* {self.approver_names()}")]

    def approver_names(self) -> str:
        """Who the approvers are, for people who are not: the fixed ids and the group's handle."""
        names: list[str] = []
        groups = list(getattr(self.approvers, "groups", ())) or ([self.group_id] if self.group_id else [])
        names += [f"<!subteam^{g}>" for g in groups]
        fixed = getattr(self.approvers, "fixed", self.approvers)
        if isinstance(fixed, (set, frozenset, list, tuple)):
            names += [mention(u) for u in sorted(fixed) if SLACK_USER_ID.match(u)]
        note = rules.group_outage_note(self.approvers)
        if note:
            names.append(note)
        return ", ".join(names) or "none configured"


def _summary(record: RequestRecord) -> str:
    name = f" ({escape(record.target_name, 100)})" if record.target_name else ""
    reason = f"\nReason: {escape(record.reason, 300)}" if record.reason else ""
    return (
        f"*#{record.id}* {code(record.sfox_user_id)}{name}, requested by {mention(record.requested_by)}; "
        f"{rules.tally(record)}; "
        f"{_window(record)}{reason}"
    )


def _line(record: RequestRecord) -> str:
    extra = ""
    if record.status == "denied":
        extra = f" by {mention(record.denied_by)}"
        if record.deny_reason:
            extra += f": {escape(record.deny_reason, 120)}"
    elif record.status == WATCHING:
        extra = f" · {watching_line(record)}"
    elif record.status in ("executing", "unknown", "succeeded", "scheduled") and record.approved_by:
        extra = f" · approved by {mentions(record.approved_by)}"
    if record.run_at is not None and record.status in ("pending", "scheduled"):
        extra += f" · runs {run_date(record.run_at)}"
    return f"#{record.id} {code(record.sfox_user_id)}: {STATUS_LINES[record.status]}{extra}"


def _window(record: RequestRecord) -> str:
    """Until when it can be approved: its expiry, or the time a request asked for later runs."""
    if record.run_at is not None:
        return f"to run {run_date(record.run_at)} (approvable until then)"
    return f"expires {slack_date(record.expires_at)}"


def _header(text: str) -> dict[str, Any]:
    return {"type": "header", "text": {"type": "plain_text", "text": text[:150]}}


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text[:3000]}}


def _context(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text[:3000]}]}
