"""Migration 0017_intake_replay on a database with rows in it (SQLite and PostgreSQL): the
`intake_replay` table matches the schema (its digest the primary key, its expiry indexed), a
digest is taken once, expired ones are pruned, and it can be undone leaving the rest alone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert, inspect, text
from sqlalchemy.exc import IntegrityError

from bot.store import migrate
from bot.store.db import Store
from bot.store.intake_replay import SpentSignatures
from bot.store.intake_schema import intake_replay
from tests.migration_support import downgrade_to, insert_old_request, schema_left_behind, upgrade_to


def test_the_replay_table_takes_a_digest_once_and_back(migration_url):
    store = Store.from_url(migration_url)
    upgrade_to(store, "0015_stream")
    now = datetime.now(UTC)
    insert_old_request(store, "client_old", now, reason="before 0017")
    migrate.upgrade(store.engine)
    assert schema_left_behind(store, "intake_replay") == []
    spent = SpentSignatures(store)
    assert spent.spend("a" * 64, now + timedelta(minutes=6))
    assert not spent.spend("a" * 64, now + timedelta(minutes=6))  # the key is the replay rule
    with pytest.raises(IntegrityError), store.engine.begin() as conn:
        conn.execute(insert(intake_replay).values(digest="a" * 64, expires_at=now))
    assert spent.spend("b" * 64, now - timedelta(seconds=1))
    assert spent.prune(now) == 1  # only the expired one
    assert not spent.spend("a" * 64, now)
    downgrade_to(store, "0015_stream")
    assert "intake_replay" not in inspect(store.engine).get_table_names()
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM requests")).scalar_one() == 1
    store.close()
