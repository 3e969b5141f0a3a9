"""A signed intake request is accepted once (issue 32): every signature that passed the check
(bot/webhooks/signing.py) is spent in the database before the request is carried out, so the same
request sent again, to any replica, is refused (401 "already used") for as long as its timestamp
would be accepted. A retry is signed afresh (a new timestamp), and its Idempotency-Key still
answers the first answer.

A spent signature is kept until its timestamp's window is over (five minutes after it) plus a
margin for replicas whose clocks disagree; then any replica deletes it, at most once a minute
(one indexed range delete), so the table holds about five minutes of requests."""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from datetime import UTC, datetime

from bot.store.db import Store
from bot.store.intake_replay import SpentSignatures
from bot.webhooks.signing import MAX_SKEW_SECONDS

log = logging.getLogger("sfox_bot.intake.replay")

# How far apart two replicas' clocks may be: a signature is kept this much past its window.
CLOCK_MARGIN_SECONDS = 60
PRUNE_EVERY_SECONDS = 60.0


class SeenSignatures:
    def __init__(self, store: Store) -> None:
        self.spent = SpentSignatures(store)
        self.margin = CLOCK_MARGIN_SECONDS
        self._lock = threading.Lock()
        self._pruned_at = 0.0

    def first_use(self, signature: str, timestamp: int, now: float | None = None) -> bool:
        """Spend `signature` (sent at `timestamp`, unix seconds); False when it was spent before.
        Raises what the database raises when it cannot be written (nothing is carried out then)."""
        now = time.time() if now is None else now
        digest = hashlib.sha256(signature.encode()).hexdigest()
        until = datetime.fromtimestamp(timestamp + MAX_SKEW_SECONDS + self.margin, UTC)
        fresh = self.spent.spend(digest, until)
        self._prune_now_and_then(now)
        return fresh

    def prune(self, now: float | None = None) -> int:
        """Delete the signatures whose window is over; how many."""
        return self.spent.prune(datetime.fromtimestamp(time.time() if now is None else now, UTC))

    def _prune_now_and_then(self, now: float) -> None:
        with self._lock:
            if now - self._pruned_at < PRUNE_EVERY_SECONDS:
                return
            self._pruned_at = now
        try:
            self.prune(now)
        except Exception:  # a missed prune costs a few rows; the next one takes them
            log.warning("spent intake signatures not pruned; will try again", exc_info=True)
