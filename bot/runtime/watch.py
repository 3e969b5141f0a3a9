"""The watch loop: carries out the watches' balance reads (bot/requests/watching.py) when they
fall due, in every replica.

It sleeps until the earliest `watch_next_at` of all watches (or `POLL_SECONDS`, for watches
another replica started), then takes the due reads one by one: each is a compare-and-set, so a
read due once is taken by one replica only, and each waits for a slot of the balance route's
limiter that every replica shares, so all of them together stay within the route's limit.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from bot.runtime.delivery import DueLoop
from bot.store.db import Store

# How often to look for watches another replica started, when none of this process's is due
# sooner: a watch whose replica died is read at most this late.
POLL_SECONDS = 5.0


class WatchLoop(DueLoop):
    """Reads watched balances as they fall due; stops between reads when the process stops."""

    name = "sfox-watch"
    what = "watched balances read"

    def __init__(
        self,
        store: Store,
        run_due: Callable[[Callable[[], bool]], int],
        now: Callable[[], datetime],
        poll_seconds: float = POLL_SECONDS,
    ) -> None:
        super().__init__(store.next_watch_due, lambda: run_due(self._stop.is_set), now, poll_seconds)
