"""Batches: many sFOX users under one card and one approval, each DELETE exactly once, at the
pace sFOX allows.

Asking (bot/batches/asking.py): the ids are validated like a single request's; malformed,
duplicated and already-open ones are left out and named; pre-flight looks every remaining user up
(and reads balances for small batches), then one card is posted.

Each user is its own `requests` row (`batch_id` set) with its own status and audit trail. The
batch's approval (bot/batches/deciding.py) is recorded on every listed user's row, so a user is
claimed with the same conditional `pending → executing` as a single request, only when the batch
had enough distinct approvers other than the requester. Each claimed user is then deactivated by
`Workflow.execute`, unchanged: retries only when sFOX cannot have acted, an unknown outcome
reconciled by a read, never a blind second DELETE.

Running (bot/batches/running.py): the process that sees the last approval runs the batch at the
pace of the rate limiter shared by all replicas (bot/sfox/pacing.py); a 429 slows every batch down
and fails nobody; if that process dies, any replica's sweep resumes the batch, and users whose
DELETE may have gone out are reconciled by a read, never resent.
"""

from __future__ import annotations

from bot.batches.asking import BatchAsking
from bot.batches.base import log
from bot.batches.deciding import BatchDeciding

# How long the balance reads of a batch's pre-flight may wait for the route's slot each.
BALANCE_SLOT_WAIT_SECONDS = 60.0


class Batches(BatchAsking, BatchDeciding):
    """Every step of a batch, from the command to its summary."""

    def run(self, batch_id: int) -> None:
        self.runner.run(batch_id)

    def start_due(self) -> list[int]:
        """Start each scheduled batch whose time has come (`scheduled → running`, once across
        replicas); the ids this process started, to be run with `run`."""
        now = self.now()
        started = [b for b in self.records.due_scheduled(now) if self.records.start_due(b, now)]
        for batch_id in started:
            log.info("scheduled batch started", extra={"batch_id": batch_id})
            self.runner.refresh_card(batch_id)
        return started

    def sweep(self) -> dict[str, int]:
        """Expire overdue batches; resume approved ones nobody runs (their process died)."""
        return self.runner.sweep()
