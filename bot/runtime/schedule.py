"""The schedule loop (issue 19): claims each scheduled request (and starts each scheduled batch)
when its time falls due, and hands its run to the job pool.

It sleeps until the earliest `run_at` of all scheduled work (a `DueLoop`, like the owed messages'
loop), so a request runs at its time, not at the next minute's poll; it is woken at once when this
process schedules something, and looks again every `POLL_SECONDS` for what another replica
scheduled. Every replica runs one: the claim (`scheduled → executing`, a compare-and-set) lets one
win. A process that was down at the time claims it when it starts: late rather than never."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from bot.runtime.delivery import DueLoop

# How often to look for times another replica wrote when nothing of this process's is due sooner:
# work scheduled by a replica that died meanwhile runs at most this late.
POLL_SECONDS = 15.0


class ScheduleLoop(DueLoop):
    name = "sfox-schedule"
    what = "scheduled work started"

    def __init__(
        self,
        sources: list[tuple[Callable[[], datetime | None], Callable[[], list[int]], Callable[[int], Any]]],
        submit: Callable[..., Any],
        now: Callable[[], datetime],
        poll_seconds: float = POLL_SECONDS,
    ) -> None:
        """`sources`: for each kind of scheduled work (single requests, batches), when the earliest
        falls due, the claim of those due (the ids this process won) and the run of one."""
        self.sources = sources
        self.submit = submit
        super().__init__(self.earliest, self.tick, now, poll_seconds)

    def earliest(self) -> datetime | None:
        times = [t for next_due, _, _ in self.sources if (t := next_due()) is not None]
        return min(times, default=None)

    def tick(self) -> int:
        """Claim what is due now and hand each run to the job pool; how many this process won."""
        started = 0
        for _, claim, run in self.sources:
            for item_id in claim():
                self.submit(run, item_id)
                started += 1
        return started
