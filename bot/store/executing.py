"""Storage for executing and reconciling: outcomes, taking over a claim, stale claims."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import (
    and_,
    or_,
    select,
    update,
)

from bot.store.base import StoreBase
from bot.store.outcomes import Outcome
from bot.store.records import Event, RequestRecord
from bot.store.schema import requests


class ExecutingStore(StoreBase):
    def stale_claims(self, claimed_before: datetime) -> list[RequestRecord]:
        """Requests whose execution outcome nobody is working on: `unknown` ones, and `executing`
        ones claimed so long ago that the process that claimed them must be gone."""
        with self._read() as conn:
            query = select(requests).where(
                or_(
                    requests.c.status == "unknown",
                    and_(requests.c.status == "executing", requests.c.claimed_at < claimed_before),
                )
            )
            return self._with_approvals(conn, conn.execute(query).mappings().all())

    def finish(
        self,
        request_id: int,
        now: datetime,
        *,
        status: str,
        http_status: int | None,
        error: str | None,
        retryable: bool,
        outcome: Outcome,
        event: Event,
        reply: str,
        from_statuses: Sequence[str] = ("executing",),
        balances: str | None = None,
    ) -> bool:
        """Record the outcome of the sFOX call (or of a reconcile), its typed kind, and the
        messages it owes."""
        assert status in ("succeeded", "failed", "unknown")
        return self._transition(
            request_id,
            now,
            where=[requests.c.status.in_(from_statuses)],
            values={
                "status": status,
                "http_status": http_status,
                "error": error,
                "retryable": retryable,
                "outcome": outcome,
                "completed_at": None if status == "unknown" else now,
                **({"balances": balances} if balances is not None else {}),  # read again at its time
            },
            event=event,
            notices=[("card", None), ("reply", reply)],
        )

    def requeue_scheduled(self, request_id: int, now: datetime) -> bool:
        """executing → scheduled, for a scheduled request whose claim stopped before its DELETE
        (the caller read the trail: no `sfox_call_started`, and took the claim over first)."""
        return self._transition(
            request_id,
            now,
            where=[requests.c.status == "executing", requests.c.run_at.is_not(None)],
            values={"status": "scheduled"},
            event=Event("rescheduled", detail="the bot stopped before it sent the DELETE; nothing was sent"),
            notices=[("card", None)],
        )

    def take_over(self, record: RequestRecord, now: datetime, *, kind: str) -> bool:
        """Become the one process working on a claim: compare-and-set on (status, claimed_at), so
        of a live executor and a sweeper that thinks the claim abandoned, exactly one wins."""
        with self._write() as conn:
            rows = conn.execute(
                update(requests)
                .where(
                    requests.c.id == record.id,
                    requests.c.status == record.status,
                    requests.c.claimed_at == record.claimed_at
                    if record.claimed_at
                    else requests.c.claimed_at.is_(None),
                )
                .values(claimed_at=now)
            ).rowcount
            if rows:
                self._event(conn, record.id, now, Event(kind, detail={"status": record.status}))
            return bool(rows)

    def record_event(self, request_id: int, now: datetime, ev: Event) -> None:
        with self._write() as conn:
            self._event(conn, request_id, now, ev)
