"""Issue 19: fifty watched users, two replicas on one database: every watch's due read is taken by
one replica only (one balance read per user), and all reads together keep the balance route's
limit, which the fake sFOX enforces on that route alone (no 429). The route's window is scaled
down from 10 s to 0.3 s so the test takes seconds, as tests/test_pacing.py does."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

import pytest

from bot.sfox.balances import WATCH_LIMIT, watch_reader
from bot.sfox.pacing import BALANCE_ROUTE, SharedRateLimiter
from bot.store.schema import WATCHING
from tests.conftest import ALICE
from tests.helpers import wait_until

USERS = [f"watched_{i:02d}" for i in range(50)]
WINDOW = 0.3
ROUTE_LIMIT = 5  # sFOX's "about 5 per 10 s", scaled


def _watch_everyone(store) -> None:
    now = datetime.now(UTC)
    for uid in USERS:
        store.start_watch(
            until=now.replace(year=now.year + 1),
            first_read_at=now,  # due at once, all of them
            sfox_user_id=uid,
            reason="load",
            requested_by=ALICE,
            channel_id="C0WATCH09",
            required_approvals=1,
            target_name=None,
            target_email=None,
            target_status="VERIFIED",
            now=now,
        )


@pytest.fixture
def shared_url(database_url):
    """The replicas' one database, on both engines (database_url)."""
    return database_url


@pytest.mark.slow
def test_fifty_watches_on_two_replicas_keep_the_route_limit(make_bot, fake_sfox, shared_url):
    for uid in USERS:
        fake_sfox.add_user(uid, balance=10)  # never withdrawn: every read finds funds
    fake_sfox.balance_limit = (ROUTE_LIMIT, WINDOW)
    replicas = [make_bot(DATABASE_URL=shared_url, SFOX_WATCH_INTERVAL_SECONDS="3600") for _ in range(2)]
    _watch_everyone(replicas[0].store)
    reads: Counter[int] = Counter()
    for n, bot in enumerate(replicas):
        limiter = SharedRateLimiter(bot.store, WATCH_LIMIT, window=WINDOW, margin=0.05, route=BALANCE_ROUTE)
        check = watch_reader(bot.runtime.sfox, bot.store, limiter).check

        def counted(uid, check=check, n=n):
            reads[n] += 1
            return check(uid)

        bot.runtime.workflow.watch_reader = counted
    for bot in replicas:
        bot.runtime.watch.start()
    store = replicas[0].store
    wait_until(
        lambda: all(r.watch_read_at > r.created_at for r in store.history(limit=None, status=WATCHING)),
        timeout=60,
    )
    per_user = Counter(uid for uid, _ in fake_sfox.balance_reads)
    assert per_user == Counter({uid: 1 for uid in USERS})  # one read per due slot, never two
    assert fake_sfox.rate_limited == 0
    # As sFOX counts them, on arrival: never more than its limit in any window. (The limiter allows
    # the watches WATCH_LIMIT slots per window; arrivals lag their slots by a variable delay on a
    # loaded machine, so the test holds the reads to the route's own limit, not to that share.)
    times = sorted(t for _, t in fake_sfox.balance_reads)
    for i in range(len(times) - ROUTE_LIMIT):
        assert times[i + ROUTE_LIMIT] - times[i] >= WINDOW, f"over the route's limit at read {i}"
    assert sum(reads.values()) == 50 and all(reads[n] > 0 for n in (0, 1))  # both replicas read
