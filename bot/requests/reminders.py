"""One reminder per pending request, in its card's thread, once it has used a share of its TTL
(`SFOX_REMIND_AFTER_FRACTION`, default 0.5), mentioning the approvers who have not acted (the
approver group's handle when a group is configured). Run from the sweep (issue 13).

Once per request across all replicas: the reminder is one conditional UPDATE
(`reminded_at IS NULL` → now) in the same transaction as its outbox row (a thread `reply`, sent
by the workflow's deliver loop, so it is owed, not best-effort) and its audit event `reminded`.
Of several sweeps racing, exactly one changes the row; the others change nothing. At expiry the
requester hears by DM (bot/slack/dms.py), which the expiry's own transaction queues.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Container
from datetime import datetime

from sqlalchemy import insert, select, update

from bot.policy import quorum, rules
from bot.slack.blocks import code, mention, slack_date
from bot.slack.ids import SLACK_USER_ID
from bot.store.base import SINGLE
from bot.store.db import Store
from bot.store.records import Event, RequestRecord
from bot.store.schema import outbox, requests

log = logging.getLogger("sfox_bot.reminders")


class Reminders:
    def __init__(
        self,
        store: Store,
        approvers: Container[str],
        fraction: float,
        clock: Callable[[], datetime],
        group_id: str | None = None,
    ) -> None:
        self.store = store
        self.approvers = approvers
        self.fraction = fraction
        self.now = clock
        self.group_id = group_id

    def tick(self) -> int:
        """Queue the reminders now due; returns how many this process queued."""
        now = self.now()
        return sum(1 for record in self.due(now) if self.remind(record, now))

    def due(self, now: datetime) -> list[RequestRecord]:
        query = select(requests.c.id).where(
            requests.c.status == "pending",
            requests.c.reminded_at.is_(None),
            requests.c.message_ts.is_not(None),
            requests.c.expires_at > now,
            SINGLE,  # a batch's users have their batch's card, no thread of their own to remind in
        )
        with self.store.reader() as conn:
            ids = list(conn.execute(query).scalars())
        due: list[RequestRecord] = []
        for request_id in ids:
            record = self.store.get(request_id)
            if record is None:
                continue
            start = record.pending_since  # a watch's TTL starts when its balances cleared
            if start + (record.expires_at - start) * self.fraction <= now:
                due.append(record)
        return due

    def remind(self, record: RequestRecord, now: datetime) -> bool:
        """Record the reminder and owe its thread reply, once: False if another sweep did."""
        text = self.text(record)
        with self.store.transaction() as conn:
            changed = conn.execute(
                update(requests)
                .where(
                    requests.c.id == record.id,
                    requests.c.status == "pending",
                    requests.c.reminded_at.is_(None),
                )
                .values(reminded_at=now)
            ).rowcount
            if not changed:
                return False
            conn.execute(insert(outbox).values(request_id=record.id, kind="reply", text=text, created_at=now))
            self.store.append_event(
                conn, record.id, now, Event("reminded", detail={"waiting_for": self._waiting(record)})
            )
        log.info("reminder queued", extra={"request_id": record.id})
        return True

    def text(self, record: RequestRecord) -> str:
        return (
            f":bell: Reminder: request #{record.id} to deactivate {code(record.sfox_user_id)} still needs "
            f"{rules.approvals_wanted(record)} and expires {slack_date(record.expires_at)}. "
            f"{self._waiting(record)}: please approve or deny it on the card above."
        )

    def _waiting(self, record: RequestRecord) -> str:
        """Who can still act: the group's handle, plus each fixed approver who has not acted; under
        a policy's stages, the groups and listed people of each stage not yet met."""
        if quorum.is_staged(record):
            return ", ".join(rules.waiting_for(record)) or "Approvers"
        fixed = getattr(self.approvers, "fixed", self.approvers)
        people = sorted(
            u
            for u in (fixed if isinstance(fixed, (set, frozenset, list, tuple)) else ())
            if rules.awaits(record, u) and SLACK_USER_ID.match(u)
        )
        names = [f"<!subteam^{self.group_id}>"] if self.group_id else []
        names += [mention(u) for u in people]
        return ", ".join(names) or "Approvers"
