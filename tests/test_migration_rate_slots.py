"""Migration 0019_rate_slot_answers on a database with slots in it (SQLite and PostgreSQL): a slot
taken by the older code keeps its meaning (it counts for the window and margin from `at`), the
table matches the schema, and it can be undone."""

from __future__ import annotations

from sqlalchemy import inspect, text

from bot.store import migrate
from bot.store.db import Store
from tests.migration_support import downgrade_to, schema_left_behind, upgrade_to


def test_older_slots_count_as_they_did_and_back(migration_url):
    store = Store.from_url(migration_url)
    upgrade_to(store, "0018_callback_attempts")
    with store.engine.begin() as conn:
        conn.execute(text("INSERT INTO rate_slots (at, route) VALUES (1000.5, 1), (1001.0, 2)"))
    migrate.upgrade(store.engine)
    assert schema_left_behind(store, "rate_slots") == []
    with store.engine.connect() as conn:
        rows = conn.execute(
            text("SELECT at, route, answered_at, counts_until FROM rate_slots ORDER BY at")
        ).all()
    assert [tuple(r) for r in rows] == [(1000.5, 1, None, 1010.7), (1001.0, 2, None, 1011.2)]
    downgrade_to(store, "0018_callback_attempts")
    columns = {c["name"] for c in inspect(store.engine).get_columns("rate_slots")}
    assert columns == {"id", "at", "route"}
    indexes = {i["name"] for i in inspect(store.engine).get_indexes("rate_slots")}
    assert indexes == {"ix_rate_slots_at", "ix_rate_slots_route_at"}
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM rate_slots")).scalar_one() == 2
    store.close()
