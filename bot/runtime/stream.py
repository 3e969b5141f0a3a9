"""The audit stream's loop: every replica runs one when SFOX_AUDIT_WEBHOOK_URL is set, on a thread
of its own, so a webhook that is slow or down never delays a click, a command or a DELETE (an
event is appended in its state change's transaction; sending it is this loop's business alone).

It polls: every `POLL_SECONDS` it reads the cursor and the chain's head (two one-row reads), and
when events wait (and no retry time or other replica's lease says later) it sends them, batch by
batch, under the lease (bot/audit/stream.py). A new event therefore leaves within about a
second, from whichever replica holds the lease.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from bot.audit.stream import AuditStream, Outcome
from bot.runtime.delivery import DueLoop

if TYPE_CHECKING:
    from bot.runtime.bootstrap import Runtime

log = logging.getLogger("sfox_bot.audit.stream")

# How often each replica looks for new events: the stream's delay when all is well.
POLL_SECONDS = 1.0


class StreamLoop(DueLoop):
    """Sends the audit stream when events wait; gives its lease up when the process stops."""

    name = "sfox-audit-stream"
    what = "audit events streamed"

    def __init__(
        self, stream: AuditStream, now: Callable[[], datetime], poll_seconds: float = POLL_SECONDS
    ) -> None:
        self.stream = stream
        super().__init__(stream.next_due, lambda: stream.run(self._stop.is_set), now, poll_seconds)

    def stop(self, timeout: float) -> None:
        super().stop(timeout)
        if self._thread is None:  # never started (`sfox-bot sweep`)
            self.stream.close()

    def _run(self) -> None:
        try:
            super()._run()
        finally:
            try:
                self.stream.release()
            except Exception:
                log.warning("audit stream lease not given back; it runs out on its own")
            self.stream.close()


def audit_stream_loop(runtime: Runtime, poll_seconds: float = POLL_SECONDS) -> StreamLoop | None:
    """The loop for SFOX_AUDIT_WEBHOOK_URL, counted in the runtime's metrics; None without it."""
    settings = runtime.settings
    if (unsigned := settings.unsigned_webhook()) is not None:
        raise unsigned
    if not settings.audit_webhook_url or not settings.audit_webhook_secret:
        return None
    observers: list[Callable[[Outcome], object]] = []
    if runtime.visibility is not None:  # its counters, and its lag read at each scrape
        observers.append(runtime.visibility.metrics.audit_stream_outcome)
        runtime.visibility.metrics.database.audit_stream = True
    clock = runtime.workflow.now
    stream = AuditStream(
        runtime.store,
        settings.audit_webhook_url,
        settings.audit_webhook_secret,
        now=lambda: clock(),
        lease=timedelta(seconds=settings.audit_webhook_lease_seconds),
        observers=observers,
    )
    return StreamLoop(stream, lambda: clock(), poll_seconds)
