"""Migration 0012_watch on a database with rows in it (SQLite and PostgreSQL): the open-request
index is rebuilt with `watching` in it (a watch holds its user like an open request), older rate
slots stay in the all-calls window, the balance route gets its gate, and it can be undone (an
open watch is closed as cancelled)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError

from bot.store import migrate
from bot.store.db import Store
from bot.store.errors import AlreadyOpen
from tests.migration_support import (
    downgrade_to,
    insert_old_request,
    request_fields,
    schema_left_behind,
    upgrade_to,
)


def _watch(store: Store, user: str, now: datetime):
    return store.start_watch(
        until=now + timedelta(days=14), first_read_at=now, **request_fields(user), now=now
    )


def test_watching_joins_the_open_index_and_can_be_undone(migration_url):
    store = Store.from_url(migration_url)
    upgrade_to(store, "0011_schedule")
    now = datetime.now(UTC)
    insert_old_request(store, "client_open", now, reason="before 0012")
    with store.engine.begin() as conn:
        conn.execute(text("INSERT INTO rate_slots (at) VALUES (1.0)"))
    migrate.upgrade(store.engine)
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT route FROM rate_slots")).scalar_one() == 1
        assert conn.execute(text("SELECT count(*) FROM rate_gate WHERE id = 2")).scalar_one() == 1
    assert schema_left_behind(store, "watch", "route") == []
    with pytest.raises(AlreadyOpen):  # the pending request from before holds its user
        _watch(store, "client_open", now)
    watched = _watch(store, "client_funded", now)
    assert watched.status == "watching" and watched.watch_next_at == now
    with pytest.raises(AlreadyOpen):  # and a watch holds its own
        _watch(store, "client_funded", now)

    downgrade_to(store, "0011_schedule")
    columns = {c["name"] for c in inspect(store.engine).get_columns("requests")}
    assert not {"watch_next_at", "watch_read_at"} & columns
    assert "route" not in {c["name"] for c in inspect(store.engine).get_columns("rate_slots")}
    with store.engine.connect() as conn:
        status = conn.execute(text("SELECT status FROM requests WHERE id = :id"), {"id": watched.id})
        assert status.scalar_one() == "cancelled"
    # The index is the narrower one again: a second pending request for the user is refused.
    with pytest.raises(IntegrityError):
        insert_old_request(store, "client_open", now)
    store.close()
