"""Migration 0007_outcomes on a database with rows in it (SQLite and PostgreSQL): the failed
users a batch would claim again get their typed outcome from what the older code wrote (the
never-sent error text, the 429), every other row reads as no kind recorded, a Slack message
given up before is marked `gave_up`; and it can be undone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from alembic import command
from sqlalchemy import inspect, text

from bot.slack.dms import DirectMessages
from bot.store import migrate
from bot.store.db import Store
from bot.store.outcomes import CLAIM_AGAIN, Outcome


@pytest.fixture(params=["sqlite", "postgres"])
def url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'm.db'}"
    request.applymarker(pytest.mark.postgres)
    return request.getfixturevalue("postgres_url")


LEGACY = {
    # sfox_user_id: (status, http_status, error) as the code before 0007 wrote them
    "never_sent": ("failed", 200, "the bot stopped before sending the DELETE; nothing was sent to sFOX"),
    "limited": ("failed", 429, "sFOX is rate limiting us (429); try again in a minute"),
    "refused": ("failed", 500, "sFOX had an internal error (500); try again later"),
    # Settled rows of any other kind keep no recorded kind.
    "done": ("succeeded", 200, None),
}


def test_upgrade_types_the_outcomes_of_existing_rows(url):
    store = Store.from_url(url)
    config = migrate.alembic_config(store.engine.url.render_as_string(hide_password=False))
    with store.engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0006_visibility")
    now = datetime.now(UTC).replace(tzinfo=None)
    with store.engine.begin() as conn:
        for uid, (status, http_status, error) in LEGACY.items():
            conn.execute(
                text(
                    "INSERT INTO requests (sfox_user_id, reason, requested_by, channel_id, message_ts, "
                    "status, required_approvals, created_at, expires_at, attempts, retryable, "
                    "http_status, error) VALUES (:uid, 'before 0007', 'UALICE01', 'C0123', '1.0', "
                    ":status, 1, :now, :later, 1, :retryable, :http_status, :error)"
                ),
                {
                    "uid": uid,
                    "status": status,
                    "now": now,
                    "later": now + timedelta(hours=1),
                    "retryable": status == "failed",
                    "http_status": http_status,
                    "error": error,
                },
            )
        ids = dict(conn.execute(text("SELECT sfox_user_id, id FROM requests")).all())
        for request_id, last_error in (
            (ids["refused"], "gave up: channel_not_found"),
            (ids["done"], "ratelimited"),
        ):
            conn.execute(
                text(
                    "INSERT INTO outbox (request_id, kind, text, created_at, sent_at, attempts, last_error) "
                    "VALUES (:id, 'reply', 'x', :now, :now, 1, :error)"
                ),
                {"id": request_id, "now": now, "error": last_error},
            )
    migrate.upgrade(store.engine)
    assert migrate.current_revision(store.engine) == migrate.head_revision()
    rows = {r.sfox_user_id: r for r in store.history(limit=None)}
    assert rows["never_sent"].outcome is Outcome.STOPPED_BEFORE_SENDING
    assert rows["limited"].outcome is Outcome.RATE_LIMITED
    assert rows["refused"].outcome is None and rows["done"].outcome is None
    assert {uid for uid, r in rows.items() if r.outcome in CLAIM_AGAIN} == {"never_sent", "limited"}
    dms = DirectMessages(None, store)  # type: ignore[arg-type]  # only its database read is used
    assert dms._thread_lost(rows["refused"]) and not dms._thread_lost(rows["done"])
    # Undone, the columns go and the rows stay.
    with store.engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0006_visibility")
    assert "outcome" not in {c["name"] for c in inspect(store.engine).get_columns("requests")}
    assert "gave_up" not in {c["name"] for c in inspect(store.engine).get_columns("outbox")}
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM requests")).scalar_one() == len(LEGACY)
    store.close()
