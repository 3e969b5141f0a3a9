"""The watch loop: carries out the watches' balance reads (bot/requests/watching.py) when they
fall due, in every replica.

It sleeps until the earliest `watch_next_at` of all watches (or `POLL_SECONDS`, for watches
another replica started), then takes the due reads one by one: each is a compare-and-set, so a
read due once is taken by one replica only, and each waits for a slot of the balance route's
limiter that every replica shares, so all of them together stay within the route's limit. It
is woken at once when this process starts a watch.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime

from bot.store.db import Store

log = logging.getLogger("sfox_bot.watch")

POLL_SECONDS = 5.0
MIN_WAIT_SECONDS = 0.05


class WatchLoop:
    """One thread per process that reads watched balances as they fall due."""

    def __init__(
        self,
        store: Store,
        run_due: Callable[[Callable[[], bool]], int],
        now: Callable[[], datetime],
        poll_seconds: float = POLL_SECONDS,
    ) -> None:
        self.store = store
        self.run_due = run_due
        self.now = now
        self.poll_seconds = poll_seconds
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="sfox-watch", daemon=True)
            self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout: float) -> None:
        """Stop, letting a read under way finish (for up to `timeout` s)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            wait = self.poll_seconds
            try:
                taken = self.run_due(self._stop.is_set)
                if taken:
                    log.info("watched balances read", extra={"taken": taken})
                due = self.store.next_watch_due()
                if due is not None:
                    wait = min(wait, max(MIN_WAIT_SECONDS, (due - self.now()).total_seconds()))
            except Exception:
                log.exception("watch reads failed; will try again")
            self._wake.wait(wait)
