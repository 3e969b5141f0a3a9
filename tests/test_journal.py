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
from sqlalchemy import event, insert, select, update

from bot.fakes.polling import poll
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


class _Begins:
    """Counts the write transactions each SQLite connection of an engine asked for (SQLite's trace
    callback sees every statement started, a BEGIN that found the database busy included)."""

    def __init__(self, store: Store) -> None:
        self.count = 0
        self._lock = threading.Lock()
        event.listen(store.engine, "connect", self._on_connect)
        store.engine.dispose()  # every connection from now on is traced

    def _on_connect(self, dbapi_connection, _record) -> None:
        dbapi_connection.set_trace_callback(self._traced)

    def _traced(self, statement: str) -> None:
        if statement.startswith("BEGIN IMMEDIATE"):
            with self._lock:
                self.count += 1


def _hold(path) -> sqlite3.Connection:
    held = sqlite3.connect(path, isolation_level=None, timeout=30)
    held.execute("BEGIN IMMEDIATE")  # another process's write transaction
    return held


@pytest.mark.engines("sqlite", why="SQLite's busy wait is what the urgent writer does without")
def test_a_write_before_an_ack_keeps_trying_for_the_lock_another_process_holds(journal, tmp_path):
    """SQLite's own busy wait sleeps 1, 2, 5 ... 100 ms between tries, so an ack's write that met a
    worker's transaction slept long past its end; the journal's write tries again and again, and
    so takes the lock as soon as it is let go. Held here until it has tried twenty times."""
    begins = _Begins(journal.store)
    held = _hold(tmp_path / "bot.db")
    try:
        recording = threading.Thread(target=lambda: results.append(journal.record(row(1))))
        results: list[object] = []
        recording.start()
        assert poll(lambda: begins.count >= 20, 10), f"tried {begins.count} times"
    finally:
        held.execute("ROLLBACK")
        held.close()
    recording.join(10)
    assert len(results) == 1, "the write gave up"
    with journal.store.reader() as conn:
        assert [r.requester for r in conn.execute(select(commands))] == ["U0000001"]


@pytest.mark.engines("sqlite", why="the busy timeout is a setting of each SQLite connection")
def test_after_an_urgent_write_gave_up_the_next_writer_waits_for_the_lock_again(journal, tmp_path):
    """The urgent writer turns SQLite's busy wait off while it tries; its connection goes back to
    the pool, and the next transaction on it must wait for other writers as before, not fail."""
    begins = _Begins(journal.store)
    held = _hold(tmp_path / "bot.db")
    outcome: list[object] = []
    try:
        with pytest.raises(Busy), journal.store.quick_transaction(0.05) as conn:
            conn.execute(
                insert(commands).values(
                    **row(1), received_at=datetime.now(UTC), lease_until=datetime.now(UTC)
                )
            )
        tried = begins.count

        def patient() -> None:
            try:
                with journal.store.transaction() as conn:
                    conn.execute(
                        insert(commands).values(
                            **row(2), received_at=datetime.now(UTC), lease_until=datetime.now(UTC)
                        )
                    )
                outcome.append("written")
            except Exception as exc:
                outcome.append(exc)

        writer = threading.Thread(target=patient)
        writer.start()
        assert poll(lambda: begins.count > tried, 10)  # it asked, and is waiting
        assert not outcome, outcome  # still waiting, not refused
    finally:
        held.execute("ROLLBACK")
        held.close()
    writer.join(30)
    assert outcome == ["written"]


@pytest.mark.engines("postgres", why="lock_timeout and statement_timeout are PostgreSQL's")
def test_an_urgent_write_stuck_behind_a_lock_gives_up_and_leaves_no_bound_behind(journal):
    """The write before an ack bounds its own wait for locks (Busy, nothing written), and only
    its own: the same pooled connection's next transaction is not bounded by it."""
    store = journal.store
    row_id, _ = journal.record(row(1))
    holder = store.engine.connect()
    holder.begin()
    holder.execute(select(commands.c.id).where(commands.c.id == row_id).with_for_update())
    try:
        with pytest.raises(Busy), store.quick_transaction(0.2) as conn:
            conn.execute(update(commands).where(commands.c.id == row_id).values(posts=1))
    finally:
        holder.rollback()
        holder.close()
    store.engine.dispose()  # one connection in the pool from here: the next two are the same
    with store.quick_transaction(0.2) as conn:
        bound = conn.exec_driver_sql("SHOW lock_timeout").scalar_one()
        assert bound.endswith("ms") and 0 < int(bound[:-2]) <= 200, bound  # what is left of 0.2 s
    with store.transaction() as conn:
        assert conn.exec_driver_sql("SHOW lock_timeout").scalar_one() == "0"
        assert conn.exec_driver_sql("SHOW statement_timeout").scalar_one() == "0"
    with store.reader() as conn:
        assert conn.execute(select(commands.c.posts)).scalar_one() == 0
