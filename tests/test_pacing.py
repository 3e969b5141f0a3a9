"""The sFOX rate limit shared by replicas through the database (bot/sfox/pacing.py): takers with
their own engines (as separate replicas have) never get more than `limit` slots in any window,
on SQLite and PostgreSQL; a 429's hold stops everyone; and two bots sharing PostgreSQL, each
running a batch, stay under a fake sFOX that enforces the limit (zero 429s)."""

from __future__ import annotations

import itertools
import threading
import time
from functools import partial

import pytest
from sqlalchemy import delete, func, select, text

from bot.sfox.pacing import ALL_CALLS, LocalRateLimiter, RateLimit, SharedRateLimiter, Slot
from bot.slack.batch_card import BATCH_APPROVE
from bot.store import migrate
from bot.store.db import Store
from bot.store.schema import rate_gate, rate_slots
from tests.conftest import ALICE, BOB, CAROL
from tests.helpers import wait_until
from tests.threads import run_concurrently


def _store(url: str) -> Store:
    store = Store.from_url(url)
    migrate.upgrade(store.engine)
    return store


def _takers(
    url: str, replicas: int, threads: int, limit: int, window: float, want: int, seconds: float = 20.0
) -> list[float]:
    """Slot times taken by `threads` threads in each of `replicas` stores (engines) hammering the
    limiter until `want` slots are taken (or `seconds` pass, for a limiter that starves them):
    exactly the times the limiter recorded, each thread's own. Each slot is answered at once (a
    call that took no time). A condition, not a fixed span: on a busy machine the same slots just
    take longer to go through the database."""
    stores = [_store(url)] + [Store.from_url(url) for _ in range(replicas - 1)]
    local = threading.local()

    def clock() -> float:
        local.last = time.time()
        return local.last

    count = itertools.count(1)  # slots taken by all threads together (next() is atomic)
    enough = threading.Event()
    end = time.monotonic() + seconds

    def take(store: Store) -> list[float]:
        limiter = SharedRateLimiter(store, limit, window=window, margin=0.0, clock=clock)
        mine: list[float] = []
        while time.monotonic() < end and not enough.is_set():
            slot = limiter.acquire(timeout=max(0.0, end - time.monotonic()))
            if slot is not None:
                mine.append(local.last)
                slot.answered()
                if next(count) >= want:
                    enough.set()
        return mine

    try:
        each = run_concurrently(
            [partial(take, s) for s in stores for _ in range(threads)], timeout=seconds + 30
        )
    finally:
        for s in stores:
            s.close()
    for mine in each:  # one thread's slots come one after another
        assert mine == sorted(mine)
    return sorted(t for mine in each for t in mine)


def _assert_within(taken: list[float], limit: int, window: float) -> None:
    assert len(taken) > limit  # the window filled up at least once
    for i in range(len(taken) - limit):
        assert taken[i + limit] - taken[i] >= window, f"{limit + 1} slots within {window} s at {i}"


def test_replicas_share_one_window_sqlite(tmp_path):
    taken = _takers(f"sqlite:///{tmp_path / 'pace.db'}", replicas=2, threads=4, limit=15, window=0.5, want=45)
    _assert_within(taken, 15, 0.5)
    assert len(taken) >= 45  # and it is not starved: the window is used again and again


@pytest.mark.postgres
def test_replicas_share_one_window_postgres(postgres_url):
    taken = _takers(postgres_url, replicas=3, threads=4, limit=15, window=0.5, want=45)
    _assert_within(taken, 15, 0.5)
    assert len(taken) >= 45


@pytest.mark.postgres
def test_a_slot_starts_when_the_gate_is_held_not_when_it_was_asked_for(postgres_url):
    """The start is read on the database's clock once the gate row is locked: read before the
    wait (PostgreSQL evaluates a clock in the locking SELECT itself first), it would be as stale
    as the wait was long, and slots would be recorded out of order."""
    store = _store(postgres_url)
    limiter = SharedRateLimiter(store, 10)
    got: list[object] = []
    try:
        limiter.try_acquire()  # the gate row exists
        with store.engine.connect() as holder:
            holder.begin()
            holder.execute(select(rate_gate.c.id).where(rate_gate.c.id == ALL_CALLS).with_for_update())
            taker = threading.Thread(target=lambda: got.append(limiter.try_acquire()))
            taker.start()
            wait_until(lambda: _waiting_for_a_lock(store))
            released = float(
                holder.execute(text("SELECT extract(epoch FROM clock_timestamp())")).scalar_one()
            )
            holder.commit()
        taker.join(10)
        assert isinstance(got[0], Slot)
        with store.reader() as conn:
            newest = conn.execute(select(func.max(rate_slots.c.at))).scalar_one()
        assert newest >= released
    finally:
        store.close()


def test_a_route_without_its_gate_row_gets_one_and_its_slot(tmp_path):
    """A database migrated by hand may lack the gate row: the first slot writes it."""
    store = _store(f"sqlite:///{tmp_path / 'gate.db'}")
    try:
        with store.transaction() as conn:
            conn.execute(delete(rate_gate))
        assert isinstance(SharedRateLimiter(store, 5).try_acquire(), Slot)
        with store.reader() as conn:
            assert conn.execute(select(rate_gate.c.id, rate_gate.c.blocked_until)).all() == [(ALL_CALLS, 0.0)]
    finally:
        store.close()


def _waiting_for_a_lock(store: Store) -> bool:
    with store.engine.connect() as conn:
        return bool(
            conn.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
                )
            ).scalar_one()
        )


def test_a_hold_closes_the_gate_for_everyone(tmp_path):
    url = f"sqlite:///{tmp_path / 'hold.db'}"
    one, two = _store(url), Store.from_url(url)
    now = [1000.0]  # the limiters' own clock: the hold is measured on it, not against the machine

    def sleep(seconds: float) -> None:
        now[0] += seconds

    try:
        SharedRateLimiter(one, 100, clock=lambda: now[0]).hold(0.6)
        other = SharedRateLimiter(two, 100, clock=lambda: now[0], sleep=sleep)
        assert other.try_acquire() == pytest.approx(0.6)  # another store (replica) sees the hold
        now[0] += 0.2
        assert other.try_acquire() == pytest.approx(0.4)
        assert other.acquire(timeout=0.1) is None  # the hold outlasts the wait allowed: no slot
        assert now[0] == 1000.2  # and it gave up at once, without waiting in vain
        assert other.acquire(timeout=2.0) is not None  # it waits the hold out, then takes a slot
        assert now[0] == pytest.approx(1000.6)
    finally:
        one.close()
        two.close()


def test_the_local_limiter_keeps_the_same_window_and_hold_as_the_shared_one():
    """Both kinds are one `RateLimit`: a full window gives up at once when the next slot is
    further than the wait allowed (the balance route's 3 s), and a hold closes it."""
    now = [100.0]
    local: RateLimit = LocalRateLimiter(2, 10.0, clock=lambda: now[0], sleep=lambda s: None, margin=0.0)
    for _ in range(2):
        slot = local.acquire(timeout=3.0)
        assert slot is not None
        slot.answered()
    started = time.monotonic()
    assert local.acquire(timeout=3.0) is None  # the next slot is 10 s away: no waiting in vain
    assert time.monotonic() - started < 0.5
    assert local.try_acquire() == 10.0
    now[0] += 10.0
    slot = local.try_acquire()
    assert isinstance(slot, Slot)
    slot.release()  # never sent: its place is free again at once
    local.hold(5.0)
    assert local.try_acquire() == 5.0 and local.acquire(timeout=1.0) is None
    now[0] += 5.0
    assert local.acquire(timeout=0.0) is not None


@pytest.mark.postgres
@pytest.mark.slow
def test_two_replicas_running_batches_at_once_stay_under_sfox_limit(postgres_url, make_bot, fake_sfox):
    """Two bots on one PostgreSQL, each running its own batch, against a fake sFOX that answers
    429 past 60 calls in any 10 s: no call is refused, and every user is DELETEd once."""
    first = make_bot(DATABASE_URL=postgres_url, SFOX_RATE_LIMIT_PER_10S="60", SFOX_BALANCE_CHECK="off")
    second = make_bot(DATABASE_URL=postgres_url, SFOX_RATE_LIMIT_PER_10S="60", SFOX_BALANCE_CHECK="off")
    groups = [[f"pace{g}_{i:02d}" for i in range(30)] for g in (1, 2)]
    for uid in groups[0] + groups[1]:
        fake_sfox.add_user(uid)
    fake_sfox.rate_limit = (60, 10.0)
    cards = []
    for bot, ids, requester in ((first, groups[0], ALICE), (second, groups[1], CAROL)):
        before = len(bot.slack.cards())
        bot.driver.command(requester, "batch " + ",".join(ids))
        cards.append(wait_until(lambda b=bot, n=before: b.slack.cards()[n:], timeout=30)[0])
    for bot, card in zip((first, second), cards, strict=True):
        batch_id = card.text.split("#", 1)[1].split(" ", 1)[0]
        bot.driver.click(BOB, BATCH_APPROVE, batch_id, card.ts)
    for card in cards:
        wait_until(lambda c=card: [m for m in first.slack.thread(c.ts) if "finished" in m.text], timeout=60)
    assert fake_sfox.rate_limited == 0
    assert dict(fake_sfox.deletes) == {uid: 1 for uid in groups[0] + groups[1]}
