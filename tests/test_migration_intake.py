"""Migration 0014_intake on a database with rows in it (SQLite and PostgreSQL): older requests
get no `requested_via` (asked by a person), the `intake` table matches the schema with its two
unique indexes, and it can be undone."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import insert, inspect, text
from sqlalchemy.exc import IntegrityError

from bot.store import migrate
from bot.store.db import Store
from bot.store.intake_schema import intake
from tests.migration_support import downgrade_to, insert_old_request, schema_left_behind, upgrade_to


def test_the_intake_table_and_requested_via_and_back(migration_url):
    store = Store.from_url(migration_url)
    upgrade_to(store, "0013_step")
    now = datetime.now(UTC)
    insert_old_request(store, "client_old", now, reason="before 0013")
    migrate.upgrade(store.engine)
    assert schema_left_behind(store, "intake", "requested_via") == []
    assert [r.requested_via for r in store.history()] == [None]
    row = {"idempotency_key": "k", "body_hash": "h", "command_id": 1, "received_at": now}
    with store.engine.begin() as conn:
        conn.execute(insert(intake).values(**row))
    with pytest.raises(IntegrityError), store.engine.begin() as conn:  # one row per key
        conn.execute(insert(intake).values(**{**row, "command_id": 2}))
    downgrade_to(store, "0013_step")
    assert "intake" not in inspect(store.engine).get_table_names()
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM requests")).scalar_one() == 1
    store.close()
