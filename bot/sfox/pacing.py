"""Pacing sFOX calls: one interface, `RateLimit`, kept in this process or shared by every replica.

Every limiter the bot has is a window of slots with a gate: a caller takes a slot before it calls
sFOX (`acquire`, waiting at most `timeout` seconds: a limiter that sees the next slot further away
than that gives up at once rather than sleep in vain), says when the answer came back
(`Slot.answered`), and after a 429 `hold` closes the gate for its Retry-After. `acquire` is
written once, over `try_acquire` (take a slot now, or say how long until one may be free), so the
two kinds only differ in where they keep the window:

- `SharedRateLimiter`, in the database: every sFOX call of every process (route `ALL_CALLS`, the
  client's limiter, wired in bot/runtime/bootstrap.py) and the balance reads (route
  `BALANCE_ROUTE`, bot/sfox/balances.py), so each limit holds for every replica together, and a
  429's hold stops them all. Each route has its own window and gate row.
- `LocalRateLimiter`, in this process's memory, for a caller without a database (`sfox-bot
  check`, a bare `SfoxClient`).

sFOX allows 250 requests per 10 s per IP, and every replica sits behind the same address, so a
limiter in each process's memory would let two replicas send twice the limit.

When a slot counts. sFOX counts a call when it arrives, and a call arrives some time after its
slot was taken (a database step, CPU load, scheduling, a slow connect): counting a slot for a
window from the instant it was taken lets sFOX see more than the limit when arrivals bunch up
(measured: 251 in 10 s with two replicas under CPU load). So a slot occupies the window from its
start (recorded when taken) while the call is in flight, until its end (recorded once the answer
or the transport failure came back) plus the window plus `MARGIN_SECONDS`. A slot whose end is
never recorded (its process died) counts until start + `bound` + window + margin, so a dead
process cannot block the route for ever. `bound` is the client's timeout, and the client gives an
attempt no more than what is left of it (bot/sfox/client.py; httpx times each phase, so a new
connection's connect may add to it; a call that outlasts its bound is logged).

Why that is enough, whatever the delays. Let a call arrive at sFOX at A. It was sent after its
slot was taken, and its answer (or failure) came after it arrived: start <= A <= end (and A <=
start + bound). So the slot occupies all of [A, A + window]. Any window of sFOX's [T - 10 s, T]
that holds k arrivals therefore holds T inside k slots at once. Slots are taken one at a time
under the gate, and one is taken only while fewer than `limit` occupy the instant it is taken;
an end recorded later only shortens a slot, never lengthens it, so at the start of every slot at
most `limit` slots overlap, and the most slots overlapping at any instant is reached at some
slot's start. Hence k <= limit: no delay between slot and arrival, however long, lets sFOX count
more. What this needs from time: one clock for every start and end (on PostgreSQL the database
server's, so replicas on different hosts need not agree; SQLite is one host's), read once the
gate is held for a start (a stale read would record slots out of order) and after the answer for
an end. `MARGIN_SECONDS` is slack for what the argument cannot see: sFOX's own clock and window
edges, and a request still on the wire when its attempt gave up.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from sqlalchemy import Connection, Float, case, delete, func, insert, literal, select, text, update

from bot.store.schema import rate_gate, rate_slots

if TYPE_CHECKING:
    from bot.store.db import Store

log = logging.getLogger("sfox_bot.pacing")

WINDOW_SECONDS = 10.0
MARGIN_SECONDS = 0.2
# How long a call may be in flight before its slot stops counting unanswered: the client's
# default timeout (SFOX_TIMEOUT_SECONDS); the runtime passes the configured one.
BOUND_SECONDS = 30.0
# The shared limiter sweeps its expired slots out after every this many slots (and when full).
SWEEP_EVERY = 32
# The longest one poll sleeps before looking again (a slot freed by the window moving on).
MAX_NAP_SECONDS = 0.5
# A 429 without Retry-After: sFOX documents a 60 s wait past its limit; start lower.
DEFAULT_HOLD_SECONDS = 10.0
MIN_HOLD_SECONDS = 0.5
# A Retry-After beyond this is still honoured in full (sFOX is the one that knows, and any call
# sent sooner only earns another 429), but logged as an error: an operator should look.
LONG_HOLD_SECONDS = 120.0
# The shared limiters' routes: each its own window (`rate_slots.route`) and gate (`rate_gate.id`).
ALL_CALLS = 1
BALANCE_ROUTE = 2


class Slot:
    """One call's place in a limiter's window, from when it was taken until its answer. The
    client marks it `sent` before the request goes out and `answered` once something came back;
    `release` is for a caller that took a slot and may not have used it (nothing sent: it is
    forgotten, freeing its place; sent: answered now)."""

    def __init__(
        self,
        answer: Callable[[], None],
        forget: Callable[[], None],
        deadline: float,
    ) -> None:
        # On this process's monotonic clock, no later than start + bound (read before the slot
        # was taken): an attempt that uses this slot must have its answer by then
        # (bot/sfox/client.py keeps to it).
        self.deadline = deadline
        self.sent = False
        self._answer = answer
        self._forget = forget
        self._done = False
        self._lock = threading.Lock()

    def answered(self) -> None:
        """The call's answer (or its transport failure) came back: the slot counts until now +
        window + margin. Once; never raises (a slot whose end is not recorded counts to its bound)."""
        self._finish(self._answer)

    def release(self) -> None:
        """Done with this slot, whether or not a call used it."""
        self._finish(self._answer if self.sent else self._forget)

    def _finish(self, step: Callable[[], None]) -> None:
        with self._lock:
            if self._done:
                return
            self._done = True
        try:
            step()
        except Exception:
            log.exception("a rate-limit slot's end could not be recorded; it counts to its bound")


class RateLimit(Protocol):
    """A limit on sFOX calls, as every caller sees it, wherever the window is kept."""

    bound: float

    def try_acquire(self) -> Slot | float:
        """Take a slot now, or say how many seconds until one may be free."""
        ...

    def acquire(self, timeout: float | None = None, stop: Callable[[], bool] | None = None) -> Slot | None:
        """Take a slot, waiting as long as needed (or at most `timeout` seconds); None if none
        came in time or `stop()` became true while waiting."""
        ...

    def hold(self, seconds: float) -> None:
        """sFOX said 429: nobody takes a slot for `seconds`."""
        ...


class _Waiting:
    """`acquire` over `try_acquire`: the one waiting loop both limiters share."""

    sleep: Callable[[float], None]

    def try_acquire(self) -> Slot | float:
        raise NotImplementedError

    def acquire(self, timeout: float | None = None, stop: Callable[[], bool] | None = None) -> Slot | None:
        """Take a slot, waiting as long as needed (or at most `timeout` seconds); None if none
        came in time or `stop()` became true while waiting."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            got = self.try_acquire()
            if isinstance(got, Slot):
                return got
            if stop is not None and stop():
                return None
            if deadline is not None and time.monotonic() + got > deadline:
                return None
            self.sleep(min(got, MAX_NAP_SECONDS))


def free_in(now: float, span: float, answered_until: float | None, unanswered_until: float | None) -> float:
    """Seconds until a full window may have a free slot: the earliest end of an answered slot,
    or, for one still in flight, its bound or one span from now (if it were answered at once),
    whichever is sooner. Never below 10 ms (the caller looks again then)."""
    candidates = [u for u in (answered_until,) if u is not None]
    if unanswered_until is not None:
        candidates.append(min(unanswered_until, now + span))
    return max(0.01, min(candidates) - now) if candidates else 0.01


class LocalRateLimiter(_Waiting):
    """The same window in this process's memory, shared by every thread that holds it."""

    def __init__(
        self,
        limit: int,
        window: float = WINDOW_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        *,
        margin: float = MARGIN_SECONDS,
        bound: float = BOUND_SECONDS,
    ) -> None:
        self.limit = limit
        self.span = window + margin
        self.bound = bound
        self.clock = clock
        self.sleep = sleep
        # slot key -> (counts until, answered)
        self._slots: dict[int, tuple[float, bool]] = {}
        self._keys = iter(range(1, 1 << 62))
        self._blocked_until = float("-inf")
        self._lock = threading.Lock()

    def try_acquire(self) -> Slot | float:
        """Take a slot now, or say how many seconds until one may be free."""
        deadline = time.monotonic() + self.bound
        with self._lock:
            now = self.clock()
            if self._blocked_until > now:
                return self._blocked_until - now
            for key in [k for k, (until, _) in self._slots.items() if until <= now]:
                del self._slots[key]
            if len(self._slots) < self.limit:
                key = next(self._keys)
                self._slots[key] = (now + self.bound + self.span, False)
                return Slot(lambda: self._answer(key), lambda: self._forget(key), deadline)
            answered = [u for u, done in self._slots.values() if done]
            unanswered = [u for u, done in self._slots.values() if not done]
            return free_in(now, self.span, min(answered, default=None), min(unanswered, default=None))

    def _answer(self, key: int) -> None:
        with self._lock:
            if key in self._slots:
                self._slots[key] = (self.clock() + self.span, True)

    def _forget(self, key: int) -> None:
        with self._lock:
            self._slots.pop(key, None)

    def hold(self, seconds: float) -> None:
        """sFOX said 429: no thread of this process takes a slot for `seconds`."""
        with self._lock:
            self._blocked_until = max(self._blocked_until, self.clock() + seconds)


class SharedRateLimiter(_Waiting):
    """The window kept in the database, shared by every replica (see the module's text): a row of
    `rate_slots` per slot, counting while `counts_until` is ahead of the database's clock."""

    def __init__(
        self,
        store: Store,
        limit: int,
        *,
        window: float = WINDOW_SECONDS,
        margin: float = MARGIN_SECONDS,
        bound: float = BOUND_SECONDS,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        route: int = ALL_CALLS,
    ) -> None:
        self.store = store
        self.limit = limit
        self.route = route
        self.span = window + margin
        self.bound = bound
        self.clock = clock
        self.sleep = sleep

    def try_acquire(self) -> Slot | float:
        """Take a slot now, or say how many seconds until one may be free.

        Every replica's calls queue on the gate row's lock here, so the locked part is kept to
        four round trips: the gate, the database's clock (read once the gate is held: PostgreSQL
        evaluates a clock in the locking SELECT itself before it waits for the lock), a slot only
        while fewer than the limit count (one INSERT ... SELECT), the commit. The expired slots
        are swept out every SWEEP_EVERY slots and whenever the window is full, not on each call."""
        slots = rate_slots.c
        deadline = time.monotonic() + self.bound
        with self.store.transaction() as conn:
            gate, now = self._gate(conn)
            if gate > now:
                return gate - now
            mine = slots.route == self.route
            counting = select(func.count()).where(mine, slots.counts_until > now).scalar_subquery()
            key = conn.execute(
                insert(rate_slots)
                .from_select(
                    ["at", "route", "counts_until"],
                    select(
                        literal(now, Float), literal(self.route), literal(now + self.bound + self.span, Float)
                    ).where(counting < self.limit),
                )
                .returning(slots.id)
            ).scalar_one_or_none()
            if key is not None and key % SWEEP_EVERY:
                return self._slot(int(key), now, deadline)
            conn.execute(delete(rate_slots).where(mine, slots.counts_until <= now))
            if key is not None:
                return self._slot(int(key), now, deadline)
            answered, unanswered = conn.execute(
                select(
                    func.min(case((slots.answered_at.is_not(None), slots.counts_until))),
                    func.min(case((slots.answered_at.is_(None), slots.counts_until))),
                ).where(mine, slots.counts_until > now)
            ).one()
            return free_in(now, self.span, answered, unanswered)

    def _slot(self, key: int, now: float, deadline: float) -> Slot:
        return Slot(lambda: self._answer(key, now), lambda: self._forget(key), deadline)

    def _gate(self, conn: Connection) -> tuple[float, float]:
        """The route's gate (locked until the commit), then the clock, read once it is held."""
        gate = conn.execute(
            select(rate_gate.c.blocked_until).where(rate_gate.c.id == self.route).with_for_update()
        ).scalar_one_or_none()
        if gate is None:  # a database migrated by hand without the gate row
            conn.execute(insert(rate_gate).values(id=self.route, blocked_until=0.0))
            gate = 0.0
        return float(gate), self._now(conn)

    def _answer(self, key: int, start: float) -> None:
        with self.store.transaction() as conn:
            now = self._now(conn)
            conn.execute(
                update(rate_slots)
                .where(rate_slots.c.id == key, rate_slots.c.answered_at.is_(None))
                .values(answered_at=now, counts_until=now + self.span)
            )
        if now - start > self.bound:  # it counted as ended at its bound meanwhile: say so
            log.warning(
                "an sFOX call outlasted its rate-limit slot's bound",
                extra={"seconds": round(now - start, 3), "bound": self.bound, "route": self.route},
            )

    def _forget(self, key: int) -> None:
        with self.store.transaction() as conn:
            conn.execute(delete(rate_slots).where(rate_slots.c.id == key, rate_slots.c.answered_at.is_(None)))

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
    """Close `limit` after sFOX answered 429: for its Retry-After, however long (at least
    MIN_HOLD_SECONDS), or DEFAULT_HOLD_SECONDS without one. Returns the hold."""
    hold = max(retry_after if retry_after is not None else DEFAULT_HOLD_SECONDS, MIN_HOLD_SECONDS)
    limit.hold(hold)
    fields = {"hold": hold, "retry_after": retry_after}
    if hold > LONG_HOLD_SECONDS:
        log.error("sFOX asked for a long wait after a 429; every sFOX call of the route waits", extra=fields)
    else:
        log.warning("sFOX rate limited a call; every sFOX call of the route waits", extra=fields)
    return hold
