"""The journal every "recorded before the ack" shares (bot/runtime/journal.py) and the store's
write queue under it: rows recorded at the same moment are written together and each gets its own
id; a batch the database cannot take in time is refused whole and writes nothing; a write before
an ack goes before writers that can wait."""

from __future__ import annotations

import sqlite3
import threading
from datetime import UTC, datetime, timedelta
from functools import partial

import pytest
from sqlalchemy import select

from bot.runtime.journal import Journal
from bot.store import migrate
from bot.store.base import WriteLock
from bot.store.db import Store
from bot.store.errors import Busy
from bot.store.schema import commands
from tests.threads import run_concurrently


@pytest.fixture
def journal(database_url):
    store = Store.from_url(database_url)
    migrate.upgrade(store.engine)
    yield Journal(store, commands, timedelta(seconds=15), lambda: datetime.now(UTC))
    store.close()


def row(n: int) -> dict[str, object]:
    return {
        "kind": "request",
        "requester": f"U{n:07d}",
        "channel_id": "C1",
        "command": f'{{"n": {n}}}',
        "posts": 0,
    }


def at_once(n: int, work) -> list[object]:
    """Run `work(i)` on n threads released together; each result, or the exception raised (the
    refusals are what some of these tests assert)."""

    def one(i: int) -> object:
        try:
            return work(i)
        except Exception as exc:
            return exc

    return run_concurrently([partial(one, i) for i in range(n)])


def test_rows_recorded_at_once_are_each_written_with_their_own_id(journal):
    results = at_once(40, lambda i: journal.record(row(i)))
    ids = [r[0] for r in results]
    assert len(set(ids)) == 40
    with journal.store.reader() as conn:
        written = {r.id: r.requester for r in conn.execute(select(commands))}
    assert written == {row_id: f"U{i:07d}" for i, row_id in enumerate(ids)}


@pytest.mark.engines("sqlite", why="the lock another process holds is SQLite's one file lock")
def test_rows_the_database_cannot_take_in_time_are_refused_and_nothing_is_written(journal, tmp_path):
    held = sqlite3.connect(tmp_path / "bot.db", isolation_level=None, timeout=30)
    held.execute("BEGIN IMMEDIATE")  # another process holds the database
    try:
        results = at_once(10, lambda i: journal.record(row(i)))
    finally:
        held.execute("ROLLBACK")
        held.close()
    assert all(isinstance(r, Busy) for r in results), results
    with journal.store.reader() as conn:
        assert conn.execute(select(commands)).all() == []


def test_a_write_before_an_ack_goes_before_writers_that_can_wait():
    lock = WriteLock()
    lock.acquire()
    order: list[str] = []
    queued = threading.Barrier(3)

    def writer(name: str, urgent: bool) -> None:
        queued.wait()
        assert lock.acquire(10, urgent=urgent)
        order.append(name)
        lock.release()

    normal = threading.Thread(target=writer, args=("normal", False))
    normal.start()
    urgent = threading.Thread(target=writer, args=("urgent", True))
    urgent.start()
    queued.wait()
    # Both are waiting (or about to): whichever queued first, the urgent one goes first.
    while lock._urgent_waiting == 0:
        threading.Event().wait(0.001)
    lock.release()
    normal.join()
    urgent.join()
    assert order == ["urgent", "normal"]


def test_an_urgent_writer_that_gives_up_lets_the_others_go():
    lock = WriteLock()
    lock.acquire()
    assert lock.acquire(0.05, urgent=True) is False
    lock.release()
    assert lock.acquire(1)  # not held back by the urgent writer that left
    lock.release()
