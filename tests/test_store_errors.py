"""The store tells a busy database from a broken statement by the error's code, on a real SQLite
file and a real PostgreSQL (bot/store/errors.py)."""

from __future__ import annotations

import sqlite3

import psycopg
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from bot.store.errors import is_busy


def test_sqlite_locked_is_busy_and_a_bad_statement_is_not(tmp_path):
    path = tmp_path / "busy.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE t (x INTEGER)")
    holder.execute("BEGIN IMMEDIATE")
    other = sqlite3.connect(path, timeout=0, isolation_level=None)
    with pytest.raises(sqlite3.OperationalError) as locked:
        other.execute("BEGIN IMMEDIATE")
    assert is_busy(locked.value)
    with pytest.raises(sqlite3.OperationalError) as wrong:
        other.execute("SELECT nope FROM t")
    assert not is_busy(wrong.value)
    holder.execute("ROLLBACK")
    holder.close()
    other.close()


@pytest.mark.postgres
def test_postgres_lock_timeout_is_busy_through_sqlalchemy(postgres_url):
    engine = create_engine(postgres_url)
    try:
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE IF NOT EXISTS busy_probe (id int PRIMARY KEY)"))
            conn.execute(text("INSERT INTO busy_probe VALUES (1) ON CONFLICT DO NOTHING"))
        with engine.connect() as holder, holder.begin():
            holder.execute(text("SELECT id FROM busy_probe WHERE id = 1 FOR UPDATE"))
            with engine.connect() as other, other.begin():
                other.exec_driver_sql("SET LOCAL lock_timeout = 50")
                with pytest.raises(OperationalError) as waited:
                    other.execute(text("SELECT id FROM busy_probe WHERE id = 1 FOR UPDATE"))
                assert isinstance(waited.value.orig, psycopg.errors.LockNotAvailable)
                assert is_busy(waited.value)
        with engine.connect() as conn, pytest.raises(Exception) as wrong:
            conn.execute(text("SELECT nope FROM busy_probe"))
        assert not is_busy(wrong.value)
    finally:
        with engine.begin() as conn:
            conn.execute(text("DROP TABLE IF EXISTS busy_probe"))
        engine.dispose()
