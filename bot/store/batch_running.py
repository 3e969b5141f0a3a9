"""Storage for running an approved batch: pause, resume and cancel, the runner's lease (one
process runs a batch; a dead one's lease runs out), the end of the batch and its summary, once."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, or_, select, update

from bot.store.batch_base import IN_FLIGHT, BatchStoreBase
from bot.store.outcomes import CLAIM_AGAIN
from bot.store.records import Event
from bot.store.schema import batches, requests


class BatchRunningStore(BatchStoreBase):
    def set_status(self, batch_id: int, from_status: str, to_status: str, actor: str) -> bool:
        """Pause (running → paused) or resume (paused → running), once."""
        with self.store.transaction() as conn:
            return bool(
                conn.execute(
                    update(batches)
                    .where(batches.c.id == batch_id, batches.c.status == from_status)
                    .values(status=to_status, stopped_by=actor)
                ).rowcount
            )

    def cancel(self, batch_id: int, actor: str, now: datetime) -> int | None:
        """running or paused → cancelled: the users not yet started become `cancelled` (those in
        flight finish). Returns how many were cancelled, None if the batch was not running."""
        with self.store.transaction() as conn:
            changed = conn.execute(
                update(batches)
                .where(batches.c.id == batch_id, batches.c.status.in_(("running", "paused")))
                .values(status="cancelled", stopped_by=actor)
            ).rowcount
            if not changed:
                return None
            values = {"status": "cancelled", "completed_at": now, "retryable": False}
            event = Event("cancelled", actor, {"batch": batch_id})
            n = self._rows_to(conn, batch_id, now, ("pending",), values, event)
            # A user waiting to be claimed again (sFOX certainly did nothing with it: a 429, or the
            # process stopped before the DELETE): the runner's rule (bot/batches/running.py), in SQL.
            waiting = [requests.c.retryable.is_(True), requests.c.outcome.in_(sorted(CLAIM_AGAIN))]
            return n + self._rows_to(conn, batch_id, now, ("failed",), values, event, *waiting)

    def take_runner(self, batch_id: int, runner: str, now: datetime, lease: timedelta) -> bool:
        """Become the one process running an approved batch (or renew that), compare-and-set on
        the lease: of two replicas' sweeps, one wins; a live runner keeps renewing it."""
        with self.store.transaction() as conn:
            return bool(
                conn.execute(
                    update(batches)
                    .where(
                        batches.c.id == batch_id,
                        batches.c.status.in_(("running", "cancelled", "done", "paused")),
                        or_(
                            batches.c.runner == runner,
                            batches.c.runner_until.is_(None),
                            batches.c.runner_until < now,
                        ),
                    )
                    .values(runner=runner, runner_until=now + lease)
                ).rowcount
            )

    def release_runner(self, batch_id: int, runner: str) -> None:
        with self.store.transaction() as conn:
            conn.execute(
                update(batches)
                .where(batches.c.id == batch_id, batches.c.runner == runner)
                .values(runner=None, runner_until=None)
            )

    def finish(self, batch_id: int, now: datetime) -> bool:
        """running or cancelled → done, once no user is pending or in flight."""
        busy = (
            select(func.count())
            .select_from(requests)
            .where(requests.c.batch_id == batch_id, requests.c.status.in_(("pending", *IN_FLIGHT)))
            .scalar_subquery()
        )
        with self.store.transaction() as conn:
            return bool(
                conn.execute(
                    update(batches)
                    .where(
                        batches.c.id == batch_id,
                        batches.c.status.in_(("running", "cancelled")),
                        busy == 0,
                    )
                    .values(status="done", completed_at=now)
                ).rowcount
            )

    def claim_summary(self, batch_id: int, now: datetime) -> bool:
        with self.store.transaction() as conn:
            return bool(
                conn.execute(
                    update(batches)
                    .where(
                        batches.c.id == batch_id, batches.c.status == "done", batches.c.summary_at.is_(None)
                    )
                    .values(summary_at=now)
                ).rowcount
            )

    def unclaim_summary(self, batch_id: int) -> None:
        with self.store.transaction() as conn:
            conn.execute(update(batches).where(batches.c.id == batch_id).values(summary_at=None))
