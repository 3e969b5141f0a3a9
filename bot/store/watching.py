"""Storage for watches (issue 19): a request recorded `watching` instead of `blocked`, its due
balance reads taken by one replica each, and its end (funds cleared, expired, stopped).

Every change is a compare-and-set on the row: a watch starts from nothing (the unique index on
open requests refuses a second for the same sFOX user) or from `blocked` (the Watch button,
pressed twice: the second finds no blocked row); a due read is taken by moving `watch_next_at`
on from the value the taker saw, so two replicas never read one user twice for one due slot; and
it ends from `watching` only, once.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from bot.store.asking import AskingStore, requested_event
from bot.store.errors import AlreadyOpen
from bot.store.records import Event, RequestRecord
from bot.store.schema import WATCHING, requests


def watch_notice(status: str, error: str | None = None) -> tuple[str, str]:
    """The requester's DM a watch owes (bot/slack/dms.py renders it by this `status`)."""
    return ("dm", json.dumps({"status": status, "error": error}))


class WatchingStore(AskingStore):
    def start_watch(self, *, until: datetime, first_read_at: datetime, **request: Any) -> RequestRecord:
        """Record a new watch (no card): its `requested` and `watch_started` events and the DM
        with its Stop button, in one transaction. `request` takes `create_request`'s arguments.
        Raises AlreadyOpen when the user has an open request or watch."""
        now: datetime = request.pop("now")
        request.pop("ttl", None)
        values = {
            **request,
            "status": WATCHING,
            "created_at": now,
            "expires_at": until,
            "attempts": 0,
            "retryable": False,
            "watch_next_at": first_read_at,
            "watch_read_at": now,
        }
        try:
            request_id = self._insert_request(
                values,
                requested_event(values),
                Event("watch_started", request["requested_by"], {"until": until.isoformat()}),
                notices=[watch_notice("watching")],
            )
        except IntegrityError:
            existing = self.open_request_for(request["sfox_user_id"])
            raise AlreadyOpen(existing.id if existing else None) from None
        record = self.get(request_id)
        assert record is not None
        return record

    def watch_blocked(
        self,
        request_id: int,
        actor: str,
        now: datetime,
        until: datetime,
        first_read_at: datetime,
        read_at: datetime | None,
    ) -> bool:
        """blocked → watching, once (the Watch button). Raises AlreadyOpen when the user has
        another open request or watch meanwhile."""
        try:
            return self._transition(
                request_id,
                now,
                where=[requests.c.status == "blocked", requests.c.batch_id.is_(None)],
                values={
                    "status": WATCHING,
                    "expires_at": until,
                    "completed_at": None,
                    "error": None,
                    "watch_next_at": first_read_at,
                    "watch_read_at": read_at,
                },
                event=Event("watch_started", actor, {"until": until.isoformat(), "from": "blocked"}),
                notices=[watch_notice("watching")],
            )
        except IntegrityError:
            existing = self.open_request_for(self._user_of(request_id))
            raise AlreadyOpen(existing.id if existing else None) from None

    def due_watches(self, now: datetime, limit: int = 100) -> list[tuple[int, datetime]]:
        """Watches whose read is due (or whose deadline passed), soonest first: (id, due)."""
        with self._read() as conn:
            rows = conn.execute(
                select(requests.c.id, requests.c.watch_next_at)
                .where(requests.c.status == WATCHING, requests.c.watch_next_at <= now)
                .order_by(requests.c.watch_next_at, requests.c.id)
                .limit(limit)
            ).all()
        return [(row.id, row.watch_next_at) for row in rows]

    def next_watch_due(self) -> datetime | None:
        with self._read() as conn:
            return conn.execute(
                select(requests.c.watch_next_at)
                .where(requests.c.status == WATCHING)
                .order_by(requests.c.watch_next_at)
                .limit(1)
            ).scalar_one_or_none()

    def take_read(self, request_id: int, due: datetime, next_at: datetime) -> bool:
        """Take the read due at `due`: moves the next one to `next_at`. True for one taker only."""
        with self._write() as conn:
            return bool(
                conn.execute(
                    update(requests)
                    .where(
                        requests.c.id == request_id,
                        requests.c.status == WATCHING,
                        requests.c.watch_next_at == due,
                    )
                    .values(watch_next_at=next_at)
                ).rowcount
            )

    def note_read(self, request_id: int, now: datetime, balances: str) -> None:
        """A read that found funds (or could not read): kept on the row, not in the audit."""
        with self._write() as conn:
            conn.execute(
                update(requests)
                .where(requests.c.id == request_id, requests.c.status == WATCHING)
                .values(watch_read_at=now, balances=balances)
            )

    def watch_cleared(self, request_id: int, now: datetime, ttl: timedelta, balances: str) -> bool:
        """watching → pending, once: every balance read zero. Its TTL starts now; the card is
        posted next (a crash in between leaves a cardless pending request whose grace starts at
        `watch_read_at`: the lost-card sweep finds the card or closes it). The DM waits for the card."""
        return self._transition(
            request_id,
            now,
            where=[requests.c.status == WATCHING],
            values={
                "status": "pending",
                "expires_at": now + ttl,
                "watch_next_at": None,
                "watch_read_at": now,
                "balances": balances,
            },
            event=Event("watch_cleared", detail={"checked_at": now.isoformat()}),
            notices=[watch_notice("watch_cleared")],
        )

    def expire_watch(self, request_id: int, now: datetime, error: str) -> bool:
        """watching → expired at its deadline, once; the DM is the final outcome's (records.dm_owed)."""
        return self._transition(
            request_id,
            now,
            where=[requests.c.status == WATCHING, requests.c.expires_at <= now],
            values={"status": "expired", "completed_at": now, "watch_next_at": None, "error": error},
            event=Event("watch_expired"),
            notices=[],
        )

    def cancel_watch(self, request_id: int, actor: str, now: datetime) -> bool:
        """watching → cancelled (Stop watching), once."""
        return self._transition(
            request_id,
            now,
            where=[requests.c.status == WATCHING],
            values={"status": "cancelled", "completed_at": now, "watch_next_at": None, "denied_by": actor},
            event=Event("watch_cancelled", actor),
            notices=[watch_notice("watch_cancelled")],
        )

    def _user_of(self, request_id: int) -> str:
        record = self.get(request_id)
        return record.sfox_user_id if record else ""
