"""The work that falls due later rather than in answer to a click: owed Slack messages (the
delivery loop), watched balances read again (the watch loop), scheduled requests and batches
claimed at their time (the schedule loop), and the audit trail streamed to its webhook (the stream
loop). Every replica runs each loop; what each one takes is won by a compare-and-set in the
database, so work is done once wherever it runs."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from bot.runtime.delivery import DeliveryLoop
from bot.runtime.schedule import ScheduleLoop
from bot.runtime.stream import audit_stream_loop
from bot.runtime.watch import WatchLoop
from bot.sfox import balances

if TYPE_CHECKING:
    from bot.runtime.bootstrap import Runtime


def wire_due_work(runtime: Runtime, submit: Callable[..., Any], read_balances: bool) -> None:
    """Build the loops on the runtime (started by `Runtime.start_sweeper`), and let the
    workflow and the batches wake them when they write something due sooner."""
    settings, store, workflow, batches = runtime.settings, runtime.store, runtime.workflow, runtime.batches
    assert batches is not None
    runtime.delivery = DeliveryLoop(store, workflow.deliver, lambda: workflow.now())
    workflow.retry_noted = runtime.delivery.wake
    if read_balances:  # watches: every replica's reads in the balance route's shared window
        workflow.watch_reader = balances.watch_reader(
            runtime.sfox, store, route_limit=settings.balance_reads_per_10s
        ).check
    workflow.watch_interval = timedelta(seconds=settings.watch_interval_seconds)
    workflow.watch_span = timedelta(days=settings.watch_days)
    runtime.watch = WatchLoop(store, workflow.watch_due, lambda: workflow.now())
    single = (store.next_run_at, workflow.claim_due, workflow.run_scheduled)
    many = (batches.records.next_run_at, batches.start_due, batches.run)
    runtime.schedule = ScheduleLoop([single, many], submit, lambda: workflow.now())
    workflow.schedule_noted = batches.schedule_noted = runtime.schedule.wake
    runtime.stream = audit_stream_loop(runtime)  # None without SFOX_AUDIT_WEBHOOK_URL
