"""What the migration tests share (their database is tests/conftest.py's `migration_url`):
moving it to a given revision either way, a request row written as an older schema would hold it,
and the schema differences a migration left in the columns and indexes it touched."""

from __future__ import annotations

from datetime import datetime, timedelta

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text

from bot.store import migrate
from bot.store.db import Store
from bot.store.schema import metadata

OLD_REQUEST = (
    "INSERT INTO requests (sfox_user_id, reason, requested_by, channel_id, status, "
    "required_approvals, created_at, expires_at, attempts, retryable) VALUES "
    "(:user, :reason, 'UALICE01', 'C0123', :status, :approvals, :now, :later, 0, false)"
)


def _move(store: Store, revision: str, step) -> None:
    config = migrate.alembic_config(store.engine.url.render_as_string(hide_password=False))
    with store.engine.begin() as conn:
        config.attributes["connection"] = conn
        step(config, revision)


def upgrade_to(store: Store, revision: str) -> None:
    _move(store, revision, command.upgrade)


def downgrade_to(store: Store, revision: str) -> None:
    _move(store, revision, command.downgrade)


def request_fields(user: str) -> dict[str, object]:
    """What the store needs to record a request for `user` (besides its times), the same for every
    migration test: asked by one person in one channel, one approval, nothing known of the user."""
    return {
        "sfox_user_id": user,
        "reason": "",
        "requested_by": "UALICE01",
        "channel_id": "C0123",
        "required_approvals": 1,
        "target_name": None,
        "target_email": None,
        "target_status": None,
    }


def insert_old_request(
    store: Store, user: str, now: datetime, *, status: str = "pending", approvals: int = 1, reason: str = ""
) -> None:
    """A request row with only the columns every revision has (written with plain SQL, so the
    current schema's defaults are not needed)."""
    naive = now.replace(tzinfo=None)
    with store.engine.begin() as conn:
        conn.execute(
            text(OLD_REQUEST),
            {
                "user": user,
                "reason": reason,
                "status": status,
                "approvals": approvals,
                "now": naive,
                "later": naive + timedelta(hours=1),
            },
        )


def schema_left_behind(store: Store, *words: str) -> list[object]:
    """The differences between the migrated database and the schema, in anything named by
    `words` (what a migration touched): none, when the migration and bot/store/schema.py agree."""
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    return [d for d in diff if any(w in repr(d) for w in words)]
