"""Migration 0015_stream on a database with a trail in it (SQLite and PostgreSQL): the stream's one
row starts at cursor 0, so a webhook set afterwards receives every event from seq 1, older ones
included; the migrated table matches what the code describes; and it can be undone."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import inspect

from bot.audit.stream import batch_after
from bot.audit.stream_cursor import read_state, take_lease
from bot.store import migrate
from bot.store.db import Store
from tests.migration_support import downgrade_to, schema_left_behind, upgrade_to
from tests.stream_support import append_events

LEASE = timedelta(seconds=30)


def test_the_stream_starts_at_seq_1_and_can_be_undone(migration_url):
    store = Store.from_url(migration_url)
    upgrade_to(store, "0014_intake")
    append_events(store, 4)  # a trail recorded before the stream existed
    migrate.upgrade(store.engine)
    assert schema_left_behind(store, "audit_stream") == []
    state = read_state(store)
    assert (state.cursor, state.head, state.lag, state.holder, state.failures) == (0, 4, 4, None, 0)
    assert [seq for seq, _ in batch_after(store, state.cursor)] == [1, 2, 3, 4]
    assert take_lease(store, "replica-one", state.oldest_unsent_at, LEASE) is not None

    downgrade_to(store, "0014_intake")
    assert "audit_stream" not in inspect(store.engine).get_table_names()
    migrate.upgrade(store.engine)  # and again: the stream starts over (at least once)
    assert read_state(store).cursor == 0
    store.close()
