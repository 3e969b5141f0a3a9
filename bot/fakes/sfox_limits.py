"""sFOX's documented rate limits, which the fake sFOX keeps by default (../shared/SFOX_API.md):
250 requests per 10 s for every call, and about 5 per 10 s for the balance route
(`GET /v1/user/balance`); past either, 429 with `Retry-After`. On by default so that every test
meets them, as the bot meets them against sFOX: a bot that sends more than sFOX takes fails its
tests. A test may tighten them (`fake.rate_limit = (60, 10.0)`); switching them off takes a
reason (`FakeSfox(limited=False, why=...)` or `fake.unlimited(why=...)`), never silently.

Each is a sliding window over the fake's monotonic clock: a call is taken while fewer than
`limit` calls were taken in the last `seconds`; a refused call does not count.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

OVERALL = (250, 10.0)  # every call, per IP
BALANCE_ROUTE = (5, 10.0)  # GET /v1/user/balance: "about 5 requests per 10 s"
BALANCE_PATH = "/v1/user/balance"


class Unlimited(ValueError):
    """A limit switched off without saying why (or set to None behind `unlimited`'s back)."""


class Window:
    """One sliding window: `limit` calls per `seconds`, or none at all (`limit` None)."""

    def __init__(self, limit: tuple[int, float] | None, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.clock = clock
        self.taken: list[float] = []
        self.lock = threading.Lock()

    def admit(self) -> bool:
        """Count a call; False (refuse it with 429) when the window is full."""
        if self.limit is None:
            return True
        calls, seconds = self.limit
        with self.lock:
            now = self.clock()
            self.taken = [t for t in self.taken if now - t < seconds]
            if len(self.taken) >= calls:
                return False
            self.taken.append(now)
            return True

    def counted_within(self, seconds: float) -> int:
        """How many calls this window counted in the last `seconds`."""
        with self.lock:
            now = self.clock()
            return sum(1 for t in self.taken if now - t < seconds)


def checked(limit: tuple[int, float] | None) -> tuple[int, float]:
    """A limit a test sets: a number of calls per seconds, not None (that is `unlimited(why=)`)."""
    if limit is None:
        raise Unlimited("switching sFOX's limit off takes a reason: unlimited(why=...)")
    calls, seconds = limit
    return int(calls), float(seconds)


def reason(why: str) -> str:
    """The reason a test gives for running without sFOX's limits; an empty one is refused."""
    if not why.strip():
        raise Unlimited("say why this test runs without sFOX's limits")
    return why


def most_in_any_window(times: list[float], seconds: float) -> int:
    """The most of `times` (arrivals) inside any `seconds`: what sFOX would have counted at its
    busiest, the figure the benchmarks and the pacing tests hold against the limit."""
    times = sorted(times)
    most, start = 0, 0
    for end, at in enumerate(times):
        while at - times[start] >= seconds:
            start += 1
        most = max(most, end - start + 1)
    return most
