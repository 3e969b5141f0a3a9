"""The delivery loop: sends each owed Slack message (bot/requests/delivering.py) when it falls
due, instead of at the next sweep.

An owed message that failed carries in the database the time it may be tried again: exactly
Slack's `Retry-After` after a 429, a growing backoff after other errors, the end of a lease when
the process sending it died. The loop reads the earliest such time of all owed messages and sleeps
until then, so any live replica sends a message when it is due (the outbox's lease lets only one
take it). It is woken at once when this process notes a new retry time, and looks again every
`POLL_SECONDS` for those another replica noted.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime

from bot.store.db import Store

log = logging.getLogger("sfox_bot.delivery")

# How often the loop looks at the database for messages another replica owes when nothing is
# due sooner: a message whose replica died is sent at most this late.
POLL_SECONDS = 2.0
# A floor under each wait, so a message that is due but cannot be taken yet is not spun on.
MIN_WAIT_SECONDS = 0.05


class DueLoop:
    """One thread per process that acts when the earliest time `next_due` reads falls due: it
    sleeps until then (or `poll_seconds`, for times another replica wrote), and is woken at once
    when this process notes a new time. The owed messages' loop and the schedule's
    (bot/runtime/schedule.py) are two of them."""

    name = "sfox-due"
    what = "due work done"

    def __init__(
        self,
        next_due: Callable[[], datetime | None],
        act: Callable[[], int],
        now: Callable[[], datetime],
        poll_seconds: float = POLL_SECONDS,
    ) -> None:
        self.next_due = next_due
        self.act = act
        self.now = now
        self.poll_seconds = poll_seconds
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
            self._thread.start()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def wake(self) -> None:
        """Look at the database again now: a new time was just noted."""
        self._wake.set()

    def stop(self, timeout: float) -> None:
        """Stop, letting the work under way finish (for up to `timeout` s)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            wait = self.poll_seconds
            try:
                due = self.next_due()
                if due is not None and due <= self.now():
                    done = self.act()
                    if done:
                        log.info(self.what, extra={"done": done, "loop": self.name})
                    due = self.next_due()
                if due is not None:
                    wait = min(wait, max(MIN_WAIT_SECONDS, (due - self.now()).total_seconds()))
            except Exception:
                log.exception("%s failed; will try again", self.name)
            self._wake.wait(wait)


class DeliveryLoop(DueLoop):
    """Sends owed messages as they fall due."""

    name = "sfox-delivery"
    what = "owed messages delivered"

    def __init__(
        self,
        store: Store,
        deliver: Callable[[], int],
        now: Callable[[], datetime],
        poll_seconds: float = POLL_SECONDS,
    ) -> None:
        super().__init__(store.next_notice_due, deliver, now, poll_seconds)
        self.store = store
        self.deliver = deliver
