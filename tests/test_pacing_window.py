"""The window arithmetic of both limiters (bot/sfox/pacing.py), on a clock the test moves: a slot
counts while its call is in flight and until its answer + window + margin; one never answered
counts until start + bound + window + margin, then no longer; a slot given back unused frees its
place at once; a full window says how long until a slot may free; a 429's hold is its
Retry-After, however long."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import func, select

from bot.sfox import pacing
from bot.sfox.pacing import LocalRateLimiter, RateLimit, SharedRateLimiter, Slot, hold_after_429
from bot.store import migrate
from bot.store.db import Store
from bot.store.schema import rate_slots

WINDOW, MARGIN, BOUND = 10.0, 0.2, 5.0
SPAN = WINDOW + MARGIN


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["local", "shared"])
def kind(request: pytest.FixtureRequest, tmp_path) -> Iterator[tuple[Clock, object]]:
    """A maker of limiters of one kind on one clock (the shared kind on a SQLite file)."""
    clock = Clock()
    if request.param == "local":
        yield (
            clock,
            lambda limit: LocalRateLimiter(
                limit, WINDOW, clock=clock, sleep=lambda s: None, margin=MARGIN, bound=BOUND
            ),
        )
        return
    store = Store.from_url(f"sqlite:///{tmp_path / 'w.db'}")
    migrate.upgrade(store.engine)
    yield (
        clock,
        lambda limit: SharedRateLimiter(
            store, limit, window=WINDOW, margin=MARGIN, bound=BOUND, clock=clock, sleep=lambda s: None
        ),
    )
    store.close()


def _take(limiter: RateLimit) -> Slot:
    slot = limiter.try_acquire()
    assert isinstance(slot, Slot), f"no slot: {slot} s to wait"
    slot.sent = True
    return slot


def test_a_slot_counts_while_in_flight_and_a_window_past_its_answer(kind):
    clock, make = kind
    limiter = make(1)
    slot = _take(limiter)
    clock.now += BOUND - 0.1  # in flight for almost its bound, long past one window
    assert isinstance(limiter.try_acquire(), float)
    slot.answered()
    answered = clock.now
    clock.now = answered + SPAN - 0.01
    assert limiter.try_acquire() == pytest.approx(0.01, abs=1e-6)
    clock.now = answered + SPAN
    assert isinstance(limiter.try_acquire(), Slot)


def test_a_slot_never_answered_counts_until_its_bound_then_no_longer(kind):
    clock, make = kind
    limiter = make(1)
    start = clock.now
    _take(limiter)  # its process dies: no answer is ever recorded
    clock.now = start + BOUND + SPAN - 0.01
    assert isinstance(limiter.try_acquire(), float)
    clock.now = start + BOUND + SPAN
    assert isinstance(limiter.try_acquire(), Slot)


def test_a_slot_given_back_unsent_frees_its_place_and_a_sent_one_is_answered(kind):
    clock, make = kind
    limiter = make(1)
    slot = limiter.try_acquire()
    assert isinstance(slot, Slot)
    slot.release()  # nothing was sent in it
    sent = _take(limiter)
    sent.release()  # sent: the same as answered now
    ended = clock.now
    clock.now += 1.0
    sent.answered()  # once only: a second end does not move it
    clock.now = ended + SPAN - 0.01
    assert isinstance(limiter.try_acquire(), float)
    clock.now = ended + SPAN
    assert isinstance(limiter.try_acquire(), Slot)


def test_a_full_window_says_when_a_slot_may_free(kind):
    """An answered slot frees at its end; one in flight at the soonest a span from now (were it
    answered at once), never later than its bound."""
    clock, make = kind
    alone = make(1)
    _take(alone)  # just sent: it may be answered at once, and free a span from now
    assert alone.try_acquire() == pytest.approx(SPAN)
    clock.now += SPAN + BOUND
    limiter = make(2)
    first = _take(limiter)
    first.answered()
    clock.now += 3.0
    _take(limiter)  # in flight, a bound + span from now
    assert limiter.try_acquire() == pytest.approx(SPAN - 3.0)  # the answered one, 3 s old
    clock.now += SPAN - 3.0 + 1.0  # the answered one is gone; the other is still in flight
    _take(limiter)
    assert limiter.try_acquire() == pytest.approx(3.0 + BOUND + SPAN - (SPAN + 1.0))  # its bound is sooner


@pytest.mark.parametrize(
    ("retry_after", "held"),
    [
        (600.0, 600.0),  # past the old 120 s cap: sFOX said so, and any call sooner earns a 429
        (7.0, 7.0),
        (0.0, pacing.MIN_HOLD_SECONDS),
        (None, pacing.DEFAULT_HOLD_SECONDS),
    ],
)
def test_a_429_holds_for_its_retry_after(kind, retry_after, held):
    clock, make = kind
    limiter = make(10)
    assert hold_after_429(limiter, retry_after) == held
    assert limiter.try_acquire() == pytest.approx(held)
    clock.now += held - 0.01
    assert limiter.acquire(timeout=0.0) is None
    clock.now += 0.01
    assert isinstance(limiter.try_acquire(), Slot)


def test_the_shared_window_sweeps_its_expired_slots_out_as_slots_are_taken(tmp_path):
    """Not on every call (that was a statement more while every replica waits on the gate), but
    often enough that the table holds little more than the slots still counting."""
    clock = Clock()
    store = Store.from_url(f"sqlite:///{tmp_path / 'sweep.db'}")
    migrate.upgrade(store.engine)
    limiter = SharedRateLimiter(store, 5, window=WINDOW, margin=MARGIN, bound=BOUND, clock=clock)
    try:
        for _ in range(10 * pacing.SWEEP_EVERY):  # one call a window: never full, each expires
            _take(limiter).answered()
            clock.now += SPAN + 0.1
        with store.reader() as conn:
            rows = conn.execute(select(func.count()).select_from(rate_slots)).scalar_one()
        assert 1 <= rows <= pacing.SWEEP_EVERY
    finally:
        store.close()
