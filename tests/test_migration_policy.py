"""Migration 0010_policy on a database with rows in it (SQLite and PostgreSQL): requests, batches
and approvals from before it read as one stage of their `required_approvals` that every approval
may fill, can still be approved and claimed, and it can be undone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

from bot.policy import quorum, rules
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


def test_older_rows_read_as_one_stage_and_still_claim(url):
    store = Store.from_url(url)
    config = migrate.alembic_config(store.engine.url.render_as_string(hide_password=False))
    with store.engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0009_mfa")
    now = datetime.now(UTC)
    naive = now.replace(tzinfo=None)
    with store.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO requests (sfox_user_id, reason, requested_by, channel_id, status, "
                "required_approvals, created_at, expires_at, attempts, retryable) VALUES "
                "('client_old', 'before 0009', 'UALICE01', 'C0123', 'pending', 2, :now, :later, 0, false)"
            ),
            {"now": naive, "later": naive + timedelta(hours=1)},
        )
        conn.execute(
            text("INSERT INTO approvals (request_id, approver, created_at) VALUES (1, 'UBOB0002', :now)"),
            {"now": naive},
        )
        conn.execute(
            text(
                "INSERT INTO batches (requested_by, channel_id, reason, status, required_approvals, "
                "created_at, expires_at, balances_skipped) VALUES "
                "('UALICE01', 'C0123', 'before 0009', 'pending', 1, :now, :later, false)"
            ),
            {"now": naive, "later": naive + timedelta(hours=1)},
        )
    migrate.upgrade(store.engine)
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert [d for d in diff if "stages" in repr(d)] == []
    old = store.get(1)
    assert old.stages is None and old.approval_stages == (None,)
    assert rules.tally(old) == "1 of 2 approvals" and not quorum.quorum_met(old)
    assert not store.claim(1, now)
    assert store.add_approval(1, "UCAROL03", now)  # stages None: the one stage
    assert store.claim(1, now, actor="UCAROL03")
    batch = BatchStore(store).get(1)
    assert batch.stages is None and rules.tally(batch) == "0 of 1 approvals"

    with store.engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0009_mfa")
    for table in ("requests", "batches", "approvals", "batch_approvals"):
        assert "stages" not in {c["name"] for c in inspect(store.engine).get_columns(table)}
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM approvals")).scalar_one() == 2
    store.close()
