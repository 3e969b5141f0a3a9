"""The engine: SQLite tuned for concurrent writers (WAL, a busy timeout, IMMEDIATE write
transactions), or PostgreSQL with a pool."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.exc import DisconnectionError, OperationalError
from sqlalchemy.pool import StaticPool

from bot.store.errors import is_busy

SQLITE_BUSY_TIMEOUT_MS = 30_000
URGENT_POLL_SECONDS = 0.0005
PING_IDLE_SECONDS = 1.0
# Every conditional write is "did it change a row?", read from `rowcount`. SQLAlchemy (since
# 2.0.28) keeps the DBAPI's count only for UPDATE and DELETE unless asked: an INSERT ... SELECT
# (an approval recorded only while the request is pending) reads -1 on PostgreSQL, which is true,
# so an approval refused by the database was reported, and audited, as recorded.
_ROWCOUNT = {"preserve_rowcount": True}


def make_engine(url: str) -> Engine:
    """An engine tuned for this workload; on SQLite: WAL, a busy timeout and IMMEDIATE write
    transactions, so concurrent writers wait for each other instead of failing."""
    if not url.startswith("sqlite"):
        engine = create_engine(url, pool_size=10, max_overflow=20, execution_options=_ROWCOUNT)
        _ping_when_idle(engine)
        return engine
    memory = url in ("sqlite://", "sqlite:///:memory:")
    engine = create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
        poolclass=StaticPool if memory else None,
        execution_options=_ROWCOUNT,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves, below
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        if not memory:
            _enable_wal(cursor)
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        options = conn.get_execution_options()
        if "urgent_ms" in options:
            _begin_urgent(conn, int(options["urgent_ms"]))
            return
        # A writer that must not wait long says so.
        _busy_timeout(conn, int(options.get("busy_timeout_ms", SQLITE_BUSY_TIMEOUT_MS)))
        conn.exec_driver_sql("BEGIN" if options.get("readonly", False) else "BEGIN IMMEDIATE")

    return engine


def _ping_when_idle(engine: Engine) -> None:
    """Check a pooled PostgreSQL connection before use only when it sat idle for more than
    PING_IDLE_SECONDS: one that did may have been cut (a server restart, a failover, an idle
    timeout of a proxy), and is then replaced at once, as `pool_pre_ping` would. A connection
    handed back a moment ago is used as it is: pinged on every checkout, the thirty or so checkouts
    of one approval cost as many extra round trips. One cut within that moment fails the one
    statement that finds it, and SQLAlchemy then drops every connection of the pool as old."""

    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get("idle_since")
        if since is None or time.monotonic() - since <= PING_IDLE_SECONDS:
            return  # new, or back a moment ago
        try:
            dbapi_connection.execute("SELECT 1")
            dbapi_connection.rollback()  # psycopg opened a transaction for the ping: end it
        except Exception as exc:  # gone: the pool opens another and checks out again
            raise DisconnectionError() from exc


def _busy_timeout(conn: Connection, busy_ms: int) -> None:
    info = conn.connection.info
    if info.get("busy_timeout_ms", SQLITE_BUSY_TIMEOUT_MS) != busy_ms:
        conn.exec_driver_sql(f"PRAGMA busy_timeout={busy_ms}")
        info["busy_timeout_ms"] = busy_ms


def _begin_urgent(conn: Connection, budget_ms: int) -> None:
    """Take SQLite's write lock for a writer whose answer is due (the journal before an ack),
    trying again every URGENT_POLL_SECONDS. SQLite's own busy wait backs off 1, 2, 5, 10, 15,
    20, 25 ms... between tries, so a writer that arrives while another process's transaction
    runs sleeps long past its end (the ack's p99 was 60-90 ms behind busy workers); trying this
    often, it takes the lock within a fraction of a millisecond of its release, ahead of the
    workers' backing-off writers. Raises SQLite's busy error, nothing begun, past the budget."""
    _busy_timeout(conn, 0)
    raw = conn.connection.dbapi_connection
    assert raw is not None
    try:
        _while_busy(lambda: raw.execute("BEGIN IMMEDIATE"), budget_ms / 1000, URGENT_POLL_SECONDS)
    except sqlite3.OperationalError as exc:
        # As SQLAlchemy wraps what its own statements raise, for the callers' handlers.
        raise OperationalError("BEGIN IMMEDIATE", None, exc) from exc


def _while_busy(run: Callable[[], object], seconds: float, pause: float) -> None:
    """`run()`, tried again every `pause` s while SQLite answers busy, for at most `seconds`;
    then (or for any other error) what SQLite raised."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            run()
            return
        except sqlite3.OperationalError as exc:
            if not is_busy(exc) or time.monotonic() >= deadline:
                raise
        time.sleep(pause)


def _enable_wal(cursor: Any) -> None:
    """Switch a SQLite file to WAL. The switch needs a moment alone with the file, and SQLite
    answers "locked" at once (no busy wait) while another process is creating it, as when two
    replicas start together; WAL mode is then kept in the file, so only the first switch waits."""
    _while_busy(lambda: cursor.execute("PRAGMA journal_mode=WAL"), SQLITE_BUSY_TIMEOUT_MS / 1000, 0.05)
