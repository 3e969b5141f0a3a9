"""Migration 0018_callback_attempts on a database with intake rows in it (SQLite and PostgreSQL):
each older callback gets its state (not sent yet: owed; sent: delivered; given up by the older
code: abandoned; no callback_url: none), the column matches the schema, and it can be undone."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import inspect, text

from bot.store import migrate
from bot.store.db import Store
from tests.migration_support import downgrade_to, schema_left_behind, upgrade_to

OLD_INTAKE = (
    "INSERT INTO intake (idempotency_key, body_hash, command_id, received_at, callback_url, "
    "callback_attempts, callback_sent_at, callback_error) VALUES "
    "(:key, 'h', :command, :now, :url, :attempts, :sent, :error)"
)


def test_older_callbacks_get_their_state_and_back(migration_url):
    store = Store.from_url(migration_url)
    upgrade_to(store, "0015_stream")
    now = datetime.now(UTC).replace(tzinfo=None)
    rows = {
        "none": (None, 0, None, None),
        "owed": ("https://partner.example/a", 3, None, "http 503"),
        "delivered": ("https://partner.example/b", 1, now, None),
        "abandoned": ("https://partner.example/c", 1, now, "gave up: http 410"),
    }
    with store.engine.begin() as conn:
        for command, (key, (url, attempts, sent, error)) in enumerate(rows.items(), start=1):
            conn.execute(
                text(OLD_INTAKE),
                {
                    "key": key,
                    "command": command,
                    "now": now,
                    "url": url,
                    "attempts": attempts,
                    "sent": sent,
                    "error": error,
                },
            )
    migrate.upgrade(store.engine)
    assert schema_left_behind(store, "callback_state") == []
    with store.engine.connect() as conn:
        states = dict(conn.execute(text("SELECT idempotency_key, callback_state FROM intake")).all())
    assert states == {"none": None, "owed": "owed", "delivered": "delivered", "abandoned": "abandoned"}
    downgrade_to(store, "0015_stream")
    columns = {c["name"] for c in inspect(store.engine).get_columns("intake")}
    assert "callback_state" not in columns and "callback_sent_at" in columns
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM intake")).scalar_one() == 4
    store.close()
