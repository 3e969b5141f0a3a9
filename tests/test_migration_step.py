"""Migration 0013_step on a database with rows in it (SQLite and PostgreSQL): the steps table is
created as bot/store/schema.py describes it, an execution is recorded once (the unique key a
repeated `function_executed` meets on any replica), requests asked before it owe no completion,
and it can be undone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import inspect

from bot.store import migrate
from bot.store.db import Store
from tests.migration_support import downgrade_to, insert_old_request, schema_left_behind, upgrade_to


def test_steps_are_recorded_once_and_the_migration_can_be_undone(migration_url):
    store = Store.from_url(migration_url)
    upgrade_to(store, "0012_watch")
    now = datetime.now(UTC)
    insert_old_request(store, "client_old", now, reason="before 0013")
    migrate.upgrade(store.engine)
    assert schema_left_behind(store, "steps") == []
    (old,) = store.history(limit=1)
    assert store.step_for_request(old.id) is None  # typed before: no step to complete
    first = store.receive_step("Fx0000000001", now, timedelta(seconds=10))
    assert first is not None
    assert store.receive_step("Fx0000000001", now, timedelta(seconds=10)) is None  # a repeat: nothing
    store.step_opened(first, 41)
    assert store.step_for_command(41).execution_id == "Fx0000000001"
    downgrade_to(store, "0012_watch")
    assert "steps" not in inspect(store.engine).get_table_names()
    migrate.upgrade(store.engine)
    assert "steps" in inspect(store.engine).get_table_names()  # and redone, with what came after
    store.close()
