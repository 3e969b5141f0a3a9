"""Migration 0011_schedule on a database with rows in it (SQLite and PostgreSQL): requests from
before it have no time and are claimed at once as before, `scheduled` joins the one-open-request
index, and it can be undone (refused while a request is scheduled)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import inspect, text, update

from bot.store import migrate
from bot.store.db import Store
from bot.store.errors import AlreadyOpen
from bot.store.schema import requests
from tests.migration_support import (
    downgrade_to,
    insert_old_request,
    request_fields,
    schema_left_behind,
    upgrade_to,
)


def _ask(store: Store, user: str, now: datetime, run_at: datetime | None = None):
    return store.create_request(**request_fields(user), now=now, ttl=timedelta(hours=1), run_at=run_at)


def test_older_rows_run_at_once_scheduled_is_open_and_it_can_be_undone(migration_url):
    store = Store.from_url(migration_url)
    upgrade_to(store, "0010_policy")
    now = datetime.now(UTC)
    insert_old_request(store, "client_old", now, reason="before 0011")
    migrate.upgrade(store.engine)
    assert schema_left_behind(store, "run_at", "uq_requests_open_user") == []
    old = store.get(1)
    assert old.run_at is None
    assert store.add_approval(1, "UBOB0002", now) and store.claim(1, now, actor="UBOB0002")

    later = _ask(store, "client_later", now, run_at=now + timedelta(days=2))
    assert later.expires_at == later.run_at
    assert not store.claim(later.id, now)  # a request for later is never claimed at once
    assert store.add_approval(later.id, "UBOB0002", now)
    assert store.schedule(later.id, now, "scheduled", actor="UBOB0002")
    with pytest.raises(AlreadyOpen):  # scheduled is open: one request per user still
        _ask(store, "client_later", now)

    with pytest.raises(RuntimeError, match="scheduled"):
        downgrade_to(store, "0010_policy")
    with store.engine.begin() as conn:
        conn.execute(update(requests).where(requests.c.id == later.id).values(status="cancelled"))
    downgrade_to(store, "0010_policy")
    for table in ("requests", "batches"):
        assert "run_at" not in {c["name"] for c in inspect(store.engine).get_columns(table)}
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM requests")).scalar_one() == 2
    store.close()
