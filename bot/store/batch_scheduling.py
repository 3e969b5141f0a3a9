"""Storage for a batch asked for later (`batch … --at <when>`, issue 19): once approved it is
`scheduled`, its users still `pending` (open: nobody may ask for them meanwhile), and at its time,
never before, one replica starts it (`scheduled → running`, a compare-and-set); the runner then
takes it as any approved batch (bot/batches/running.py)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select, update

from bot.store.batch_base import BatchStoreBase
from bot.store.records import Event
from bot.store.schema import batches, requests


class BatchSchedulingStore(BatchStoreBase):
    def due_scheduled(self, now: datetime) -> list[int]:
        with self.store.reader() as conn:
            query = select(batches.c.id).where(batches.c.status == "scheduled", batches.c.run_at <= now)
            return list(conn.execute(query.order_by(batches.c.run_at)).scalars())

    def next_run_at(self) -> datetime | None:
        """The earliest time a scheduled batch falls due, or None."""
        with self.store.reader() as conn:
            query = select(func.min(batches.c.run_at)).where(batches.c.status == "scheduled")
            return conn.execute(query).scalar_one_or_none()

    def start_due(self, batch_id: int, now: datetime) -> bool:
        """scheduled → running at its time, once across replicas; each pending user's trail says
        when it was started and how late."""
        with self.store.transaction() as conn:
            run_at = conn.execute(
                update(batches)
                .where(batches.c.id == batch_id, batches.c.status == "scheduled", batches.c.run_at <= now)
                .values(status="running")
                .returning(batches.c.run_at)
            ).scalar_one_or_none()
            if run_at is None:
                return False
            late = round((now - run_at).total_seconds(), 1)
            detail = {"batch": batch_id, "scheduled_for": run_at.isoformat(), "late_seconds": late}
            ids = conn.execute(
                select(requests.c.id).where(requests.c.batch_id == batch_id, requests.c.status == "pending")
            ).scalars()
            for request_id in list(ids):
                self.store.append_event(conn, request_id, now, Event("batch_started", detail=detail))
            return True

    def cancel_scheduled(self, batch_id: int, actor: str, now: datetime) -> int | None:
        """scheduled → cancelled before its time: every user becomes `cancelled`. How many, or
        None if it was not scheduled (any more)."""
        with self.store.transaction() as conn:
            changed = conn.execute(
                update(batches)
                .where(batches.c.id == batch_id, batches.c.status == "scheduled", batches.c.run_at > now)
                .values(status="cancelled", stopped_by=actor)
            ).rowcount
            if not changed:
                return None
            values = {"status": "cancelled", "completed_at": now, "retryable": False}
            return self._rows_to(
                conn, batch_id, now, ("pending",), values, Event("cancelled", actor, {"batch": batch_id})
            )
