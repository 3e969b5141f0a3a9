"""Concurrent appends build one chain: two processes on one SQLite file and two replicas on one
PostgreSQL database, each with several threads, append at once; the chain verifies with no gap
and no fork. (The trail of a full `sfox-bot demo` run is verified in tests/test_demo.py.)"""

from __future__ import annotations

import multiprocessing
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import pytest
from sqlalchemy import text

from bot.audit import chain as audit
from bot.audit import verify as audit_verify
from bot.store import migrate
from bot.store.db import Store
from bot.store.records import Event
from tests.threads import run_concurrently

pytestmark = pytest.mark.slow

THREADS = 3
ROUNDS = 15  # each round: create a request, approve it, record an event: 3 events


def _writer(url: str, tag: str, start: Any, results: Any) -> None:
    """One replica: THREADS threads appending through the Store, as the bot's would."""
    store = Store.from_url(url)

    def work(thread: int) -> int:
        for i in range(ROUNDS):
            now = datetime.now(UTC)
            record = store.create_request(
                sfox_user_id=f"{tag}_{thread}_{i}",
                reason="race",
                requested_by="UALICE01",
                channel_id="C0123TEST",
                required_approvals=1,
                target_name=None,
                target_email=None,
                target_status=None,
                now=now,
                ttl=timedelta(hours=1),
            )
            assert store.add_approval(record.id, "UBOB0002", now)
            store.record_event(record.id, now, Event("note", detail=tag))
        return ROUNDS

    start.wait(60)
    began = time.time()
    done = run_concurrently([partial(work, t) for t in range(THREADS)])
    assert done == [ROUNDS] * THREADS
    results.put((tag, began, time.time()))
    store.close()


def _race(url: str) -> None:
    store = Store.from_url(url)
    migrate.upgrade(store.engine)
    ctx = multiprocessing.get_context("spawn")
    start, results = ctx.Barrier(3), ctx.Queue()
    procs = [ctx.Process(target=_writer, args=(url, f"p{i}", start, results)) for i in range(2)]
    for p in procs:
        p.start()
    start.wait(60)
    windows = [results.get(timeout=180) for _ in procs]
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    try:
        expected = 2 * THREADS * ROUNDS * 3
        report = audit_verify.verify(store.engine)
        assert report.ok and report.count == expected, report.line()
        with store.engine.connect() as conn:
            seqs = [r[0] for r in conn.execute(text("SELECT seq FROM events ORDER BY seq"))]
            links = Counter(r[0] for r in conn.execute(text("SELECT prev_hash FROM events")))
            tags = [
                r[0] for r in conn.execute(text("SELECT detail FROM events WHERE kind = 'note' ORDER BY seq"))
            ]
        assert seqs == list(range(1, expected + 1))  # no gap, no duplicate
        assert max(links.values()) == 1  # no fork: no two events follow the same one
        assert audit.head(store.engine) == (expected, report.head_hash)
        # The two writers really overlapped in time (which one appends when is up to the scheduler).
        (_, began_a, ended_a), (_, began_b, ended_b) = windows
        assert max(began_a, began_b) < min(ended_a, ended_b)
        assert set(tags) == {"p0", "p1"}
    finally:
        store.close()


def test_two_processes_append_to_one_chain_on_sqlite(tmp_path):
    _race(f"sqlite:///{tmp_path / 'race.db'}")


@pytest.mark.postgres
def test_two_replicas_append_to_one_chain_on_postgres(postgres_url):
    _race(postgres_url)
