"""The engine: SQLite tuned for concurrent writers (WAL, a busy timeout, IMMEDIATE write
transactions), or PostgreSQL with a pool."""

from __future__ import annotations

import sqlite3
import time
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.pool import StaticPool

from bot.store.errors import is_busy

SQLITE_BUSY_TIMEOUT_MS = 30_000
# Every conditional write is "did it change a row?", read from `rowcount`. SQLAlchemy (since
# 2.0.28) keeps the DBAPI's count only for UPDATE and DELETE unless asked: an INSERT ... SELECT
# (an approval recorded only while the request is pending) reads -1 on PostgreSQL, which is true,
# so an approval refused by the database was reported, and audited, as recorded.
_ROWCOUNT = {"preserve_rowcount": True}


def make_engine(url: str) -> Engine:
    """An engine tuned for this workload; on SQLite: WAL, a busy timeout and IMMEDIATE write
    transactions, so concurrent writers wait for each other instead of failing."""
    if not url.startswith("sqlite"):
        return create_engine(
            url, pool_pre_ping=True, pool_size=10, max_overflow=20, execution_options=_ROWCOUNT
        )
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
        # A writer that must not wait long (e.g. the click journal, before an ack) says so.
        busy_ms = int(options.get("busy_timeout_ms", SQLITE_BUSY_TIMEOUT_MS))
        info = conn.connection.info
        if info.get("busy_timeout_ms", SQLITE_BUSY_TIMEOUT_MS) != busy_ms:
            conn.exec_driver_sql(f"PRAGMA busy_timeout={busy_ms}")
            info["busy_timeout_ms"] = busy_ms
        conn.exec_driver_sql("BEGIN" if options.get("readonly", False) else "BEGIN IMMEDIATE")

    return engine


def _enable_wal(cursor: Any) -> None:
    """Switch a SQLite file to WAL. The switch needs a moment alone with the file, and SQLite
    answers "locked" at once (no busy wait) while another process is creating it, as when two
    replicas start together; WAL mode is then kept in the file, so only the first switch waits."""
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if not is_busy(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)
