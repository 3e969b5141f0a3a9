"""Migration 0008_commands on a database with rows in it (SQLite and PostgreSQL): the command
journal is created as bot/store/schema.py describes it, requests and batches asked before it keep
working with no command, a command links to one request at most, and it can be undone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError

from bot.store import migrate
from bot.store.batches import BatchStore
from bot.store.db import Store
from bot.store.schema import metadata


@pytest.fixture(params=["sqlite", "postgres"])
def url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'm.db'}"
    request.applymarker(pytest.mark.postgres)
    return request.getfixturevalue("postgres_url")


def columns(store: Store, table: str) -> set[str]:
    return {c["name"] for c in inspect(store.engine).get_columns(table)}


def test_upgrade_adds_the_journal_and_keeps_older_rows(url):
    store = Store.from_url(url)
    config = migrate.alembic_config(store.engine.url.render_as_string(hide_password=False))
    with store.engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0007_outcomes")
    now = datetime.now(UTC).replace(tzinfo=None)
    with store.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO requests (sfox_user_id, reason, requested_by, channel_id, status, "
                "required_approvals, created_at, expires_at, attempts, retryable) VALUES "
                "('client_old', 'before 0008', 'UALICE01', 'C0123', 'pending', 1, :now, :later, 0, false)"
            ),
            {"now": now, "later": now + timedelta(hours=1)},
        )
        conn.execute(
            text(
                "INSERT INTO batches (requested_by, channel_id, reason, status, required_approvals, "
                "created_at, expires_at, balances_skipped) VALUES "
                "('UALICE01', 'C0123', 'before 0008', 'pending', 1, :now, :later, false)"
            ),
            {"now": now, "later": now + timedelta(hours=1)},
        )
    migrate.upgrade(store.engine)
    assert migrate.current_revision(store.engine) == migrate.head_revision()
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    new = ("commands", "command_id", "uq_requests_command", "uq_batches_command")
    assert [d for d in diff if any(name in repr(d) for name in new)] == []
    [old] = list(store.history())
    assert old.sfox_user_id == "client_old" and old.command_id is None
    batch = BatchStore(store).get(1)
    assert batch is not None and batch.command_id is None

    # One request per command: a second row naming the same command is refused.
    insert = text(
        "INSERT INTO requests (sfox_user_id, reason, requested_by, channel_id, status, required_approvals, "
        "created_at, expires_at, attempts, retryable, command_id) VALUES "
        "(:uid, 'r', 'UALICE01', 'C0123', 'blocked', 1, :now, :now, 0, false, 7)"
    )
    with store.engine.begin() as conn:
        conn.execute(insert, {"uid": "client_a", "now": now})
    with pytest.raises(IntegrityError), store.engine.begin() as conn:
        conn.execute(insert, {"uid": "client_b", "now": now})

    # Undone, the journal and the links go and the rows stay.
    with store.engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0007_outcomes")
    assert "commands" not in inspect(store.engine).get_table_names()
    assert "command_id" not in columns(store, "requests")
    assert "command_id" not in columns(store, "batches")
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM requests")).scalar_one() == 2
        assert conn.execute(text("SELECT count(*) FROM batches")).scalar_one() == 1
    store.close()
