"""Migration 0009_mfa on a database with an audit trail in it (SQLite and PostgreSQL): the MFA
tables are created as bot/store/schema.py describes them, `events.request_id` takes an event about
a person, the chain recorded before still verifies and goes on, the trail stays append-only
(SQLite rebuilds `events`, so its triggers are made again), and it can be undone only while the
trail holds no event about a person. And the replay rule holds between racing writers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import partial

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.exc import DBAPIError

from bot.audit import verify as audit_verify
from bot.store import migrate
from bot.store.db import Store
from bot.store.mfa_enrolling import MfaEnrolling
from bot.store.mfa_verifying import MfaVerifying
from bot.store.records import Event
from bot.store.schema import metadata
from tests.threads import run_concurrently

KEY = "audit-key-0123456789"


@pytest.fixture(params=["sqlite", "postgres"])
def url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'm.db'}"
    request.applymarker(pytest.mark.postgres)
    return request.getfixturevalue("postgres_url")


def _to(store: Store, revision: str, down: bool = False) -> None:
    config = migrate.alembic_config(store.engine.url.render_as_string(hide_password=False))
    config.attributes["audit_key"] = KEY
    with store.engine.begin() as conn:
        config.attributes["connection"] = conn
        (command.downgrade if down else command.upgrade)(config, revision)


def test_upgrade_keeps_the_chain_and_takes_events_about_people(url):
    store = Store.from_url(url, KEY)
    _to(store, "0008_commands")
    now = datetime.now(UTC)
    with store.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO requests (sfox_user_id, reason, requested_by, channel_id, status, "
                "required_approvals, created_at, expires_at, attempts, retryable) VALUES "
                "('client_old', 'before 0009', 'UALICE01', 'C0123', 'pending', 1, :now, :later, 0, false)"
            ),
            {"now": now.replace(tzinfo=None), "later": (now + timedelta(hours=1)).replace(tzinfo=None)},
        )
    request_id = 1
    store.record_event(request_id, now, Event("approved", "UBOB0002"))  # an event chained before 0009
    before = audit_verify.verify(store.engine, KEY)
    assert before.ok and before.count == 1

    migrate.upgrade(store.engine, KEY)
    assert migrate.current_revision(store.engine) == migrate.head_revision()
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    new = ("mfa_", "step_up", "request_id")
    assert [d for d in diff if any(name in repr(d) for name in new)] == []
    assert {"mfa_enrolments", "mfa_used_codes", "mfa_failures"} <= set(
        inspect(store.engine).get_table_names()
    )

    assert MfaEnrolling(store).enrol("UBOB0002", "sealed-token", 123, now)  # an event about a person
    report = audit_verify.verify(store.engine, KEY)
    assert report.ok and report.count == 2, report.line()
    [person] = [e for e in audit_verify.export_rows(store.engine) if e["request_id"] is None]
    assert person["kind"] == "mfa_enrolled"
    # Still append-only after SQLite's rebuild of the table.
    for statement in ("UPDATE events SET kind = 'x'", "DELETE FROM events"):
        with pytest.raises(DBAPIError, match="append-only"), store.engine.begin() as conn:
            conn.execute(text(statement))

    # The trail now holds an event about a person: going back would need to drop it.
    with pytest.raises(RuntimeError, match="cannot downgrade below 0009_mfa"):
        _to(store, "0008_commands", down=True)
    store.close()


def test_downgrade_without_events_about_people(url):
    store = Store.from_url(url, KEY)
    migrate.upgrade(store.engine, KEY)
    _to(store, "0008_commands", down=True)
    names = set(inspect(store.engine).get_table_names())
    assert not names & {"mfa_enrolments", "mfa_used_codes", "mfa_failures"}
    [request_id] = [c for c in inspect(store.engine).get_columns("events") if c["name"] == "request_id"]
    assert request_id["nullable"] is False
    store.close()


def test_of_racing_writers_one_spends_a_code(url):
    store = Store.from_url(url, KEY)
    migrate.upgrade(store.engine, KEY)
    codes = MfaVerifying(store)
    now = datetime.now(UTC)
    results = run_concurrently([partial(codes.spend, "UBOB0002", 4242, now)] * 8)
    assert sorted(results) == [False] * 7 + [True]

    # The lock-out is set, and audited, once, however the fifth wrong code arrives.
    enrolling = MfaEnrolling(store)
    assert enrolling.enrol("UBOB0002", "sealed", 1, now)
    window, lock = timedelta(minutes=10), timedelta(minutes=10)
    locked = [
        codes.wrong_code("UBOB0002", now + timedelta(seconds=i), limit=5, window=window, lock_for=lock)
        for i in range(6)
    ]
    assert locked[:4] == [None] * 4 and locked[4] is not None
    kinds = [e["kind"] for e in audit_verify.export_rows(store.engine)]
    assert kinds.count("mfa_locked") == 1
    store.close()


def test_wrong_codes_racing_lock_a_person_once(url):
    """Three wrong codes, then eight at once: the one that makes five sees the others (the
    enrolment row is locked while counting), so the lock is set, and audited, exactly once."""
    store = Store.from_url(url, KEY)
    migrate.upgrade(store.engine, KEY)
    codes = MfaVerifying(store)
    now = datetime.now(UTC)
    assert MfaEnrolling(store).enrol("UCAROL03", "sealed", 1, now)
    window, lock = timedelta(minutes=10), timedelta(minutes=10)
    for _ in range(3):
        assert codes.wrong_code("UCAROL03", now, limit=5, window=window, lock_for=lock) is None
    results = run_concurrently(
        [partial(codes.wrong_code, "UCAROL03", now, limit=5, window=window, lock_for=lock)] * 8
    )
    assert sorted(results, key=lambda r: r is not None) == [None] * 7 + [now + lock], results
    kinds = [e["kind"] for e in audit_verify.export_rows(store.engine)]
    assert kinds.count("mfa_locked") == 1
    assert MfaEnrolling(store).get("UCAROL03").locked_until == now + lock
    store.close()


def test_used_steps_and_wrong_codes_do_not_pile_up(tmp_path):
    from sqlalchemy import func, select

    from bot.store.schema import mfa_failures, mfa_used_codes

    store = Store.from_url(f"sqlite:///{tmp_path / 'p.db'}")
    migrate.upgrade(store.engine)
    codes = MfaVerifying(store)
    now = datetime.now(UTC)
    assert codes.spend("UBOB0002", 1, now) and codes.spend("UBOB0002", 2, now)
    assert not codes.spend("UBOB0002", 2, now + timedelta(hours=1))  # still a replay an hour on
    window, lock = timedelta(minutes=10), timedelta(minutes=10)
    codes.wrong_code("UBOB0002", now, limit=5, window=window, lock_for=lock)
    later = now + timedelta(days=2)
    assert codes.spend("UBOB0002", 3, later)
    codes.wrong_code("UBOB0002", later, limit=5, window=window, lock_for=lock)
    with store.engine.connect() as conn:
        assert list(conn.execute(select(mfa_used_codes.c.step))) == [(3,)]
        assert conn.execute(select(func.count()).select_from(mfa_failures)).scalar_one() == 1
    store.close()
