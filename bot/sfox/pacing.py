"""Pacing sFOX calls: one interface, `RateLimit`, kept in this process or shared by every replica.

Every limiter the bot has is a sliding window of slots with a gate: a caller takes a slot before
it calls sFOX (`acquire`, waiting at most `timeout` seconds: a limiter that sees the next slot
further away than that gives up at once rather than sleep in vain), and after a 429 `hold` closes
the gate for its Retry-After. `acquire` is written once, over `try_acquire` (take a slot now, or
say how long until one may be free), so the two kinds only differ in where they keep the window:

- `LocalRateLimiter`, in this process's memory: the client's general limit
  (`SFOX_RATE_LIMIT_PER_10S`, bot/sfox/client.py) and the balance route's 4 reads per 10 s
  (bot/sfox/balances.py);
- `SharedRateLimiter`, in the database: the batches' lookups and DELETEs (route `ALL_CALLS`), and
  the watches' balance reads (route `BALANCE_ROUTE`, bot/requests/watching.py), so each limit holds
  for every replica together, and a 429's hold stops them all. Each route has its own window and
  gate row: a watch's reads never take a DELETE's slot.

The shared one: sFOX allows 250 requests per 10 s per IP, and every replica of the bot sits behind
the same address, so a limiter in each process's memory would let two replicas send twice the
limit. Each call first takes a slot: in one transaction that locks the gate row (`rate_gate`, id
1; SQLite serialises every write transaction anyway), count the slots taken in the last window
(`rate_slots`) and, if one is free, record a new one. A replica that finds the window full sleeps
until its oldest slot leaves it. The window is a little longer than sFOX's (`MARGIN_SECONDS`), so
that calls which leave a few milliseconds apart but arrive in a different order still fit sFOX's
window. Time is read once the gate is held (a time read before waiting for the lock would be
stale, and slots would be recorded out of order), and on PostgreSQL it is the database server's
clock, so replicas on different hosts need not agree on the time.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from sqlalchemy import Connection, delete, func, insert, select, text, update

from bot.store.schema import rate_gate, rate_slots

if TYPE_CHECKING:
    from bot.store.db import Store

log = logging.getLogger("sfox_bot.pacing")

WINDOW_SECONDS = 10.0
MARGIN_SECONDS = 0.2
# The longest one poll sleeps before looking again (a slot freed by the window moving on).
MAX_NAP_SECONDS = 0.5
# A 429 without Retry-After: sFOX documents a 60 s wait past its limit; start lower.
DEFAULT_HOLD_SECONDS = 10.0
MIN_HOLD_SECONDS = 0.5
MAX_HOLD_SECONDS = 120.0
# The shared limiters' routes: each its own window (`rate_slots.route`) and gate (`rate_gate.id`).
ALL_CALLS = 1
BALANCE_ROUTE = 2


class RateLimit(Protocol):
    """A limit on sFOX calls, as every caller sees it, wherever the window is kept."""

    def try_acquire(self) -> float:
        """Take a slot now (0.0), or say how many seconds until one may be free."""
        ...

    def acquire(self, timeout: float | None = None, stop: Callable[[], bool] | None = None) -> bool:
        """Take a slot, waiting as long as needed (or at most `timeout` seconds); False if none
        came in time or `stop()` became true while waiting."""
        ...

    def hold(self, seconds: float) -> None:
        """sFOX said 429: nobody takes a slot for `seconds`."""
        ...


class _Waiting:
    """`acquire` over `try_acquire`: the one waiting loop both limiters share."""

    sleep: Callable[[float], None]

    def try_acquire(self) -> float:
        raise NotImplementedError

    def acquire(self, timeout: float | None = None, stop: Callable[[], bool] | None = None) -> bool:
        """Take a slot, waiting as long as needed (or at most `timeout` seconds); False if none
        came in time or `stop()` became true while waiting."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            wait = self.try_acquire()
            if wait <= 0:
                return True
            if stop is not None and stop():
                return False
            if deadline is not None and time.monotonic() + wait > deadline:
                return False
            self.sleep(min(wait, MAX_NAP_SECONDS))


class LocalRateLimiter(_Waiting):
    """A sliding window in this process's memory, shared by every thread that holds it (sFOX
    allows 250 per 10 s per IP; the client's default keeps headroom for other tools behind the
    same address)."""

    def __init__(
        self,
        limit: int,
        window: float = WINDOW_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.limit = limit
        self.window = window
        self.clock = clock
        self.sleep = sleep
        self._sent: deque[float] = deque()
        self._blocked_until = float("-inf")
        self._lock = threading.Lock()

    def try_acquire(self) -> float:
        """Take a slot now (0.0), or say how many seconds until one may be free."""
        with self._lock:
            now = self.clock()
            if self._blocked_until > now:
                return self._blocked_until - now
            while self._sent and now - self._sent[0] >= self.window:
                self._sent.popleft()
            if len(self._sent) < self.limit:
                self._sent.append(now)
                return 0.0
            return self.window - (now - self._sent[0])

    def hold(self, seconds: float) -> None:
        """sFOX said 429: no thread of this process takes a slot for `seconds`."""
        with self._lock:
            self._blocked_until = max(self._blocked_until, self.clock() + seconds)


class SharedRateLimiter(_Waiting):
    """A sliding window kept in the database, shared by every replica (see the module's text)."""

    def __init__(
        self,
        store: Store,
        limit: int,
        *,
        window: float = WINDOW_SECONDS,
        margin: float = MARGIN_SECONDS,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        route: int = ALL_CALLS,
    ) -> None:
        self.store = store
        self.limit = limit
        self.route = route
        self.span = window + margin
        self.clock = clock
        self.sleep = sleep

    def try_acquire(self) -> float:
        """Take a slot now (0.0), or say how many seconds until one may be free."""
        with self.store.transaction() as conn:
            gate = conn.execute(
                select(rate_gate.c.blocked_until).where(rate_gate.c.id == self.route).with_for_update()
            ).scalar_one_or_none()
            now = self._now(conn)
            if gate is None:  # a database migrated by hand without the gate row
                conn.execute(insert(rate_gate).values(id=self.route, blocked_until=0.0))
                gate = 0.0
            if gate > now:
                return gate - now
            start = now - self.span
            mine = rate_slots.c.route == self.route
            conn.execute(delete(rate_slots).where(mine, rate_slots.c.at <= start))
            taken, oldest = conn.execute(
                select(func.count(), func.min(rate_slots.c.at)).where(mine, rate_slots.c.at > start)
            ).one()
            if taken < self.limit:
                conn.execute(insert(rate_slots).values(at=now, route=self.route))
                return 0.0
            return max(0.01, oldest + self.span - now)

    def _now(self, conn: Connection) -> float:
        if self.clock is not None:
            return self.clock()
        if conn.dialect.name == "postgresql":
            return float(conn.execute(text("SELECT extract(epoch FROM clock_timestamp())")).scalar_one())
        return time.time()

    def hold(self, seconds: float) -> None:
        """sFOX said 429: no replica takes a slot for `seconds`."""
        with self.store.transaction() as conn:
            until = self._now(conn) + seconds
            conn.execute(
                update(rate_gate)
                .where(rate_gate.c.id == self.route, rate_gate.c.blocked_until < until)
                .values(blocked_until=until)
            )


def hold_after_429(limit: RateLimit, retry_after: float | None) -> float:
    """Close `limit` after sFOX answered 429: for its Retry-After (DEFAULT_HOLD_SECONDS without
    one), kept within MIN_HOLD_SECONDS..MAX_HOLD_SECONDS. Returns the hold asked for."""
    hold = retry_after if retry_after is not None else DEFAULT_HOLD_SECONDS
    limit.hold(min(max(hold, MIN_HOLD_SECONDS), MAX_HOLD_SECONDS))
    log.warning("sFOX rate limited a batch DELETE; every batch waits", extra={"hold": hold})
    return hold
