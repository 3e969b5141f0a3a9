"""Migration 0003_balances: adds the nullable `balances` column to a database with requests in it,
which keep working (their balances read as not read), and can be undone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from alembic import command
from sqlalchemy import inspect, text

from bot.requests.history import history_row
from bot.store import migrate
from bot.store.db import Store


@pytest.fixture(params=["sqlite", "postgres"])
def url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'm.db'}"
    request.applymarker(pytest.mark.postgres)
    return request.getfixturevalue("postgres_url")


def columns(store: Store) -> set[str]:
    return {c["name"] for c in inspect(store.engine).get_columns("requests")}


def test_upgrade_from_the_initial_schema_keeps_requests(url):
    store = Store.from_url(url)
    config = migrate.alembic_config(store.engine.url.render_as_string(hide_password=False))
    with store.engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0001")
    assert "balances" not in columns(store)
    now = datetime.now(UTC).replace(tzinfo=None)
    with store.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO requests (sfox_user_id, reason, requested_by, channel_id, status, "
                "required_approvals, created_at, expires_at, attempts, retryable) VALUES "
                "('client_old', 'before 0003', 'UALICE01', 'C0123', 'pending', 1, :now, :later, 0, false)"
            ),
            {"now": now, "later": now + timedelta(hours=1)},
        )
    migrate.upgrade(store.engine)
    assert migrate.current_revision(store.engine) == migrate.head_revision()
    assert "balances" in columns(store)
    old = next(iter(store.history()))
    assert old.sfox_user_id == "client_old" and old.balances is None
    assert history_row(old)["balances"] is None
    # Undone, the column goes and the row stays.
    with store.engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0001")
    assert "balances" not in columns(store)
    store.close()
