"""The sFOX rate limit shared by every replica: a sliding window kept in the database.

sFOX allows 250 requests per 10 s per IP, and every replica of the bot sits behind the same
address, so a limiter in each process's memory would let two replicas send twice the limit. Here
each call first takes a slot: in one transaction that locks the gate row (`rate_gate`, id 1;
SQLite serialises every write transaction anyway), count the slots taken in the last window
(`rate_slots`) and, if one is free, record a new one. A replica that finds the window full sleeps
until its oldest slot leaves it.

The window is a little longer than sFOX's (`MARGIN_SECONDS`), so that calls which leave a few
milliseconds apart but arrive in a different order still fit sFOX's window. After a 429 `hold`
closes the gate for everyone until the Retry-After has passed.

Time is read once the gate is held (a time read before waiting for the lock would be stale, and
slots would be recorded out of order), and on PostgreSQL it is the database server's clock, so
replicas on different hosts need not agree on the time.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy import Connection, delete, func, insert, select, text, update

from bot.store.db import Store
from bot.store.schema import rate_gate, rate_slots

WINDOW_SECONDS = 10.0
MARGIN_SECONDS = 0.2
# The longest one poll sleeps before looking again (a slot freed by the window moving on).
MAX_NAP_SECONDS = 0.5


class SharedRateLimiter:
    def __init__(
        self,
        store: Store,
        limit: int,
        *,
        window: float = WINDOW_SECONDS,
        margin: float = MARGIN_SECONDS,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.store = store
        self.limit = limit
        self.span = window + margin
        self.clock = clock
        self.sleep = sleep

    def acquire(self, timeout: float | None = None, stop: Callable[[], bool] | None = None) -> bool:
        """Take a slot, waiting as long as needed (or `timeout` seconds); False if none came in
        time or `stop()` became true while waiting."""
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

    def try_acquire(self) -> float:
        """Take a slot now (0.0), or say how many seconds until one may be free."""
        with self.store.transaction() as conn:
            gate = conn.execute(
                select(rate_gate.c.blocked_until).where(rate_gate.c.id == 1).with_for_update()
            ).scalar_one_or_none()
            now = self._now(conn)
            if gate is None:  # a database migrated by hand without the gate row
                conn.execute(insert(rate_gate).values(id=1, blocked_until=0.0))
                gate = 0.0
            if gate > now:
                return gate - now
            start = now - self.span
            conn.execute(delete(rate_slots).where(rate_slots.c.at <= start))
            taken, oldest = conn.execute(
                select(func.count(), func.min(rate_slots.c.at)).where(rate_slots.c.at > start)
            ).one()
            if taken < self.limit:
                conn.execute(insert(rate_slots).values(at=now))
                return 0.0
            return max(0.01, oldest + self.span - now)

    def _now(self, conn: Connection) -> float:
        if self.clock is not None:
            return self.clock()
        if conn.dialect.name == "postgresql":
            return float(conn.execute(text("SELECT extract(epoch FROM clock_timestamp())")).scalar_one())
        return time.time()

    def hold(self, seconds: float) -> None:
        """sFOX said 429: nobody takes a slot for `seconds`."""
        with self.store.transaction() as conn:
            until = self._now(conn) + seconds
            conn.execute(
                update(rate_gate)
                .where(rate_gate.c.id == 1, rate_gate.c.blocked_until < until)
                .values(blocked_until=until)
            )
