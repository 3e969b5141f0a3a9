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


class DeliveryLoop:
    """One thread per process that sends owed messages as they fall due."""

    def __init__(
        self,
        store: Store,
        deliver: Callable[[], int],
        now: Callable[[], datetime],
        poll_seconds: float = POLL_SECONDS,
    ) -> None:
        self.store = store
        self.deliver = deliver
        self.now = now
        self.poll_seconds = poll_seconds
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="sfox-delivery", daemon=True)
            self._thread.start()

    def wake(self) -> None:
        """Look at the database again now: a retry time was just noted."""
        self._wake.set()

    def stop(self, timeout: float) -> None:
        """Stop, letting a send under way finish (for up to `timeout` s)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            wait = self.poll_seconds
            try:
                due = self.store.next_notice_due()
                if due is not None and due <= self.now():
                    sent = self.deliver()
                    if sent:
                        log.info("owed messages delivered", extra={"delivered": sent})
                    due = self.store.next_notice_due()
                if due is not None:
                    wait = min(wait, max(MIN_WAIT_SECONDS, (due - self.now()).total_seconds()))
            except Exception:
                log.exception("delivering owed messages failed; will try again")
            self._wake.wait(wait)
