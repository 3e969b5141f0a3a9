"""Storage for delivering: the outbox of Slack messages owed, leased and marked sent."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update

from bot.store.base import _LEASE, _NOTICE, _SENT, _UNSENT, _UNSENT_FOR, StoreBase
from bot.store.records import Event, Notice
from bot.store.schema import outbox


class DeliveringStore(StoreBase):
    def unsent_notices(self, now: datetime, request_id: int | None = None) -> list[Notice]:
        """Messages not yet sent, in order, including those leased by another thread or waiting
        for a retry (`busy`): a later message of the same request must wait behind them."""
        with self._read() as conn:
            if request_id is None:
                rows = conn.execute(_UNSENT)
            else:
                rows = conn.execute(_UNSENT_FOR, {"request_id": request_id})
            return [
                Notice(
                    row.id,
                    row.request_id,
                    row.kind,
                    row.text,
                    row.attempts,
                    busy=row.lease_until is not None and row.lease_until >= now,
                )
                for row in rows
            ]

    def queue_card(self, request_id: int, now: datetime) -> None:
        """Owe Slack a refresh of the card (e.g. the approval count changed)."""
        with self._write() as conn:
            conn.execute(_NOTICE, {"request_id": request_id, "kind": "card", "text": None, "created_at": now})

    def next_notice_due(self) -> datetime | None:
        """When the earliest owed message may be tried, or None when nothing is owed. Only each
        request's first unsent message counts (the later ones wait behind it); it may be tried
        once its lease or retry time (`lease_until`) has passed, or at once if nobody took it."""
        firsts = select(func.min(outbox.c.id)).where(outbox.c.sent_at.is_(None)).group_by(outbox.c.request_id)
        due = func.min(func.coalesce(outbox.c.lease_until, outbox.c.created_at))
        with self._read() as conn:
            return conn.execute(select(due).where(outbox.c.id.in_(firsts))).scalar()

    def lease_notice(
        self, notice_id: int, now: datetime, seconds: float = 30.0, *, sent: int | None = None
    ) -> bool:
        """Take a message to send, unless another thread holds it; `sent`: a message just sent,
        recorded so in the same transaction (whether or not this one is taken)."""
        with self._write() as conn:
            if sent is not None:
                conn.execute(_SENT, {"notice_id": sent, "sent_at": now})
            until = now + timedelta(seconds=seconds)
            return bool(conn.execute(_LEASE, {"notice_id": notice_id, "now": now, "until": until}).rowcount)

    def notice_sent(self, notice_id: int, now: datetime) -> None:
        with self._write() as conn:
            conn.execute(_SENT, {"notice_id": notice_id, "sent_at": now})

    def notice_failed(
        self,
        notice: Notice,
        now: datetime,
        error: str,
        retry_in: float,
        *,
        give_up: bool = False,
        refused: bool = False,
    ) -> None:
        """Note a failed Slack call (an audit event `slack_failed`); retried after `retry_in` s (the
        row's `lease_until` says when), or never again when `give_up`. `refused`: Slack only asked
        us to slow down (its rate limit), so the message was certainly not posted: this try is not
        counted, and, like a send, it is no event of the audit trail (the row keeps the error)."""
        values: dict[str, Any] = {"last_error": error[:500], "lease_until": now + timedelta(seconds=retry_in)}
        if refused:
            values["attempts"] = outbox.c.attempts - 1
        if give_up:
            values.update(sent_at=now, gave_up=True, last_error=f"gave up: {error}"[:500])
        with self._write() as conn:
            conn.execute(update(outbox).where(outbox.c.id == notice.id).values(**values))
            if refused:
                return
            self._event(
                conn,
                notice.request_id,
                now,
                Event("slack_failed", detail={"kind": notice.kind, "error": error}),
            )
