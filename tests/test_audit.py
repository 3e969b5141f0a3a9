"""The audit trail's hash chain: an untouched trail verifies; every kind of tampering done with
plain SQL (triggers dropped first, as an attacker would) is named by `sfox-bot audit verify`; the
database itself refuses UPDATE and DELETE; the migration chains events recorded before it."""

from __future__ import annotations

import hashlib
import io
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic import command
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import text
from sqlalchemy.exc import DatabaseError

from bot.audit import chain as audit
from bot.audit import verify as audit_verify
from bot.cli.main import main
from bot.config import setting_names
from bot.store import migrate
from bot.store.db import Store
from bot.store.records import Event

KEY = "audit-key-0123456789-SECRET"
OTHER_KEY = "another-key-0123456789-abc"
README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgresql":
        return str(request.getfixturevalue("postgres_url"))
    return f"sqlite:///{tmp_path / 'audit.db'}"


def fill(url: str, key: str | None = None, requests: int = 4) -> Store:
    """A migrated database with a trail of 3 events per request (12 by default)."""
    store = Store.from_url(url, key)
    migrate.upgrade(store.engine, key)
    now = datetime(2026, 12, 1, 9, 30, 0, 123456, tzinfo=UTC)
    for i in range(requests):
        record = store.create_request(
            sfox_user_id=f"client_{i}",
            reason=f"reason {i} \u00e9\u2713",
            requested_by="UALICE01",
            channel_id="C0123TEST",
            required_approvals=1,
            target_name=None,
            target_email=None,
            target_status=None,
            now=now + timedelta(seconds=i),
            ttl=timedelta(hours=1),
        )
        store.add_approval(record.id, "UBOB0002", now + timedelta(seconds=i, microseconds=7))
        store.record_event(
            record.id,
            now + timedelta(seconds=i, milliseconds=1),
            Event("sfox_delete", "UBOB0002", {"attempts": 1}, http_status=200, duration_ms=12),
        )
    return store


def sql(store: Store, *statements: str, **params: object) -> None:
    with store.engine.begin() as conn:
        for statement in statements:
            conn.execute(text(statement), params)


def drop_triggers(store: Store) -> None:
    if store.engine.dialect.name == "postgresql":
        sql(store, "DROP TRIGGER events_append_only ON events")
    else:
        sql(store, "DROP TRIGGER events_no_update", "DROP TRIGGER events_no_delete")


def hash_of(store: Store, seq: int) -> str:
    with store.engine.connect() as conn:
        return str(conn.execute(text("SELECT hash FROM events WHERE seq = :s"), {"s": seq}).scalar_one())


def verify(store: Store, key: str | None = None, *anchors: tuple[int, str]) -> str:
    return audit_verify.verify(store.engine, key, anchors).line()


# -- an untouched trail ------------------------------------------------------------------------


def test_an_untouched_trail_verifies(url):
    store = fill(url)
    try:
        seq, digest = audit.head(store.engine)
        assert seq == 12 and digest == hash_of(store, 12)
        assert verify(store) == f"audit ok: 12 events, head 12 {digest}"
        assert verify(store, None, (5, hash_of(store, 5)), (12, digest)).startswith("audit ok")
        events = store.events_for(1)
        assert [e.seq for e in events] == [1, 2, 3]
        assert events[0].prev_hash == audit.GENESIS and events[1].prev_hash == events[0].hash
    finally:
        store.close()


def test_an_empty_trail_verifies(tmp_path):
    store = Store.from_url(f"sqlite:///{tmp_path / 'empty.db'}")
    migrate.upgrade(store.engine)
    assert verify(store) == f"audit ok: 0 events, head 0 {audit.GENESIS}"
    store.close()


def test_canonical_encoding_is_the_documented_one():
    event = {
        "seq": 7,
        "request_id": 3,
        "at": datetime(2026, 12, 1, 10, 0, 0, tzinfo=UTC),
        "kind": "approved",
        "actor": "UBOB0002",
        "http_status": None,
        "duration_ms": None,
        "detail": '{"reason": "caf\u00e9"}',
    }
    body = audit.canonical(event)
    assert body == (
        b'{"actor":"UBOB0002","at":"2026-12-01T10:00:00.000000Z","detail":"{\\"reason\\": \\"caf\\u00e9\\"}",'
        b'"duration_ms":null,"http_status":null,"kind":"approved","request_id":3,"seq":7}'
    )
    assert audit.link(audit.GENESIS, body, None) == hashlib.sha256(audit.GENESIS.encode() + body).hexdigest()


_text = st.text(st.characters(codec="utf-8"), max_size=40)
_int = st.integers(min_value=0, max_value=2**53)


@settings(max_examples=300, deadline=None)
@given(
    seq=_int,
    request_id=_int,
    at=st.datetimes(min_value=datetime(1970, 1, 1), timezones=st.just(UTC)),
    kind=_text,
    actor=st.none() | _text,
    http_status=st.none() | _int,
    duration_ms=st.none() | _int,
    detail=st.none() | _text,
)
def test_the_fast_encoding_is_exactly_sorted_key_json(**event):
    """`canonical` is written out for speed; it must be byte for byte the documented JSON."""
    reference = {**event, "at": event["at"].strftime("%Y-%m-%dT%H:%M:%S.%fZ")}
    expected = json.dumps(reference, sort_keys=True, separators=(",", ":")).encode()
    assert audit.canonical(event) == expected


# -- the database refuses changes --------------------------------------------------------------


def test_the_database_refuses_update_and_delete_of_events(url):
    store = fill(url, requests=1)
    try:
        for statement in (
            "UPDATE events SET actor = 'UMALLORY' WHERE seq = 1",
            "DELETE FROM events WHERE seq = 3",
            "DELETE FROM events",
        ):
            with pytest.raises(DatabaseError, match="append-only"):
                sql(store, statement)
        if store.engine.dialect.name == "postgresql":
            with pytest.raises(DatabaseError, match="append-only"):
                sql(store, "TRUNCATE events")
        assert verify(store).startswith("audit ok: 3 events")
    finally:
        store.close()


# -- tampering, and what verify says -----------------------------------------------------------


def test_one_field_edited(url):
    store = fill(url)
    try:
        drop_triggers(store)
        sql(store, "UPDATE events SET actor = 'UMALLORY' WHERE seq = 5")
        line = verify(store)
        assert line.startswith("audit FAILED at seq 5: edited:"), line
    finally:
        store.close()


def test_one_event_deleted(url):
    store = fill(url)
    try:
        drop_triggers(store)
        sql(store, "DELETE FROM events WHERE seq = 5")
        line = verify(store)
        assert line.startswith("audit FAILED at seq 5: missing: seq 5 missing"), line
    finally:
        store.close()


def test_the_first_event_deleted(url):
    store = fill(url)
    try:
        drop_triggers(store)
        sql(store, "DELETE FROM events WHERE seq = 1")
        assert verify(store).startswith("audit FAILED at seq 1: missing"), verify(store)
    finally:
        store.close()


def forge_insert_after(store: Store, seq: int, key: str | None = None) -> None:
    """What an attacker does to slip in an event after `seq`: renumber the later ones and insert a
    well-formed event linked to `seq` (hashed with `key`, or plain SHA-256 without it)."""
    prev = hash_of(store, seq)
    forged = {
        "seq": seq + 1,
        "request_id": 1,
        "at": datetime(2026, 12, 1, 9, 30, 5, tzinfo=UTC),
        "kind": "approved",
        "actor": "UMALLORY",
        "http_status": None,
        "duration_ms": None,
        "detail": None,
    }
    digest = audit.link(prev, audit.canonical(forged), audit.key_bytes(key))
    sql(
        store,
        "UPDATE events SET seq = -seq WHERE seq > :s",
        "UPDATE events SET seq = 1 - seq WHERE seq < 0",
        "INSERT INTO events (request_id, at, kind, actor, seq, prev_hash, hash) "
        "VALUES (1, :at, 'approved', 'UMALLORY', :n, :p, :h)",
        s=seq,
        at=datetime(2026, 12, 1, 9, 30, 5),
        n=seq + 1,
        p=prev,
        h=digest,
    )


def test_one_event_inserted(url):
    store = fill(url)
    try:
        drop_triggers(store)
        forge_insert_after(store, 5)
        line = verify(store)
        assert line.startswith("audit FAILED at seq 6: inserted: seq 6 was inserted"), line
    finally:
        store.close()


def test_one_event_inserted_into_a_keyed_chain(url):
    store = fill(url, KEY)
    try:
        drop_triggers(store)
        forge_insert_after(store, 5)  # the attacker does not have the key
        line = verify(store, KEY)
        assert line.startswith("audit FAILED at seq 6: inserted"), line
    finally:
        store.close()


def test_an_event_appended_behind_the_bots_back(url):
    store = fill(url)
    try:
        drop_triggers(store)
        forge_insert_after(store, 12)
        line = verify(store)
        assert line.startswith(
            "audit FAILED at seq 13: inserted: the chain goes on after the recorded head"
        ), line
    finally:
        store.close()


def test_two_events_swapped(url):
    store = fill(url)
    try:
        drop_triggers(store)
        sql(
            store,
            "UPDATE events SET seq = -1 WHERE seq = 5",
            "UPDATE events SET seq = 5 WHERE seq = 6",
            "UPDATE events SET seq = 6 WHERE seq = -1",
        )
        line = verify(store)
        assert line.startswith("audit FAILED at seq 5: reordered: seq 5 and seq 6 are swapped"), line
    finally:
        store.close()


def test_a_broken_link(url):
    store = fill(url)
    try:
        drop_triggers(store)
        sql(store, "UPDATE events SET prev_hash = :h WHERE seq = 8", h="ab" * 32)
        assert verify(store).startswith("audit FAILED at seq 8: broken link"), verify(store)
    finally:
        store.close()


def test_a_truncated_tail_is_caught_by_an_anchor(url):
    store = fill(url)
    try:
        anchor = (12, hash_of(store, 12))
        earlier = (10, hash_of(store, 10))
        drop_triggers(store)
        sql(store, "DELETE FROM events WHERE seq > 10")
        # Without covering its tracks, the recorded head gives it away.
        assert verify(store).startswith("audit FAILED at seq 11: truncated"), verify(store)
        # An attacker who also moves the head back leaves a chain that holds together ...
        sql(store, "UPDATE audit_head SET seq = 10, hash = :h", h=earlier[1])
        assert verify(store).startswith("audit ok: 10 events")
        assert verify(store, None, earlier).startswith("audit ok")
        # ... which the anchor posted earlier does not match.
        line = verify(store, None, earlier, anchor)
        assert line.startswith("audit FAILED at seq 12: truncated: the anchor names seq 12"), line
    finally:
        store.close()


def test_a_rewritten_chain_is_caught_by_an_anchor(url):
    """Who holds the key (or, without a key, anyone) can rewrite the whole chain consistently;
    only an anchor kept outside the database shows it."""
    store = fill(url)
    try:
        anchor = (6, hash_of(store, 6))
        drop_triggers(store)
        sql(store, "UPDATE events SET actor = 'UMALLORY' WHERE seq = 5")
        rehash(store, from_seq=5, key=None)
        assert verify(store).startswith("audit ok: 12 events")
        line = verify(store, None, anchor)
        assert line.startswith("audit FAILED at seq 6: anchor mismatch"), line
    finally:
        store.close()


def rehash(store: Store, from_seq: int, key: str | None) -> None:
    with store.engine.begin() as conn:
        rows = conn.execute(
            text(
                "SELECT seq, request_id, at, kind, actor, http_status, duration_ms, detail "
                "FROM events WHERE seq >= :s ORDER BY seq"
            ),
            {"s": from_seq},
        ).mappings()
        prev = conn.execute(text("SELECT hash FROM events WHERE seq = :s"), {"s": from_seq - 1}).scalar_one()
        for row in list(rows):
            event = dict(row)
            if isinstance(event["at"], str):
                event["at"] = datetime.fromisoformat(event["at"])
            digest = audit.link(prev, audit.canonical(event), audit.key_bytes(key))
            conn.execute(
                text("UPDATE events SET prev_hash = :p, hash = :h WHERE seq = :s"),
                {"p": prev, "h": digest, "s": row["seq"]},
            )
            prev = digest
        conn.execute(text("UPDATE audit_head SET hash = :h"), {"h": prev})


def test_a_wrong_key(url):
    store = fill(url, KEY)
    try:
        assert verify(store, KEY).startswith("audit ok: 12 events")
        for wrong in (OTHER_KEY, None):
            line = verify(store, wrong)
            assert line.startswith("audit FAILED at seq 1: wrong key"), line
    finally:
        store.close()


def test_an_edit_rehashed_without_the_key(url):
    store = fill(url, KEY)
    try:
        drop_triggers(store)
        sql(store, "UPDATE events SET actor = 'UMALLORY' WHERE seq = 5")
        rehash(store, from_seq=5, key=None)
        line = verify(store, KEY)
        assert line.startswith("audit FAILED at seq 5: wrong key"), line
    finally:
        store.close()


# -- the migration -----------------------------------------------------------------------------


def test_the_migration_chains_existing_events_in_their_order(url):
    """Events recorded before 0002_audit are chained by id, with the key, and verify."""
    store = Store.from_url(url)
    config = migrate.alembic_config(url)
    try:
        with store.engine.begin() as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, "0001")
        old = [
            (
                1,
                datetime(2026, 1, 1, 12, 0, 0, 999999),
                "requested",
                "UALICE01",
                None,
                None,
                '{"reason": "x"}',
            ),
            (1, datetime(2026, 1, 1, 12, 0, 1), "approved", "UBOB0002", None, None, None),
            (1, datetime(2026, 1, 1, 12, 0, 0, 5), "sfox_delete", None, 200, 31, '{"attempts": 1}'),
        ]
        with store.engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO requests (sfox_user_id, reason, requested_by, channel_id, status, "
                    "required_approvals, created_at, expires_at, attempts, retryable) VALUES "
                    "('client_1', 'x', 'UALICE01', 'C0123TEST', 'succeeded', 1, :t, :t, 1, false)"
                ),
                {"t": datetime(2026, 1, 1, 12, 0, 0)},
            )
            for row in old:
                conn.execute(
                    text(
                        "INSERT INTO events (request_id, at, kind, actor, http_status, duration_ms, detail) "
                        "VALUES (:r, :at, :k, :a, :h, :d, :detail)"
                    ),
                    dict(zip(("r", "at", "k", "a", "h", "d", "detail"), row, strict=True)),
                )
        migrate.upgrade(store.engine, KEY)
        assert verify(store, KEY).startswith("audit ok: 3 events")
        assert verify(store).startswith("audit FAILED at seq 1: wrong key")
        assert [e.kind for e in store.events_for(1)] == ["requested", "approved", "sfox_delete"]
        keyed = Store.from_url(url, KEY)
        keyed.record_event(1, datetime.now(UTC), Event("reconciled"))
        keyed.close()
        assert verify(store, KEY).startswith("audit ok: 4 events, head 4 ")
    finally:
        store.close()


def test_the_migration_downgrades_and_upgrades_again(tmp_path):
    url = f"sqlite:///{tmp_path / 'down.db'}"
    store = fill(url, requests=1)
    config = migrate.alembic_config(url)
    with store.engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0001")
    with store.engine.begin() as conn:
        conn.execute(text("UPDATE events SET actor = 'UCAROL03' WHERE id = 2"))  # no trigger now
    migrate.upgrade(store.engine)
    assert verify(store).startswith("audit ok: 3 events")
    store.close()


# -- the commands ------------------------------------------------------------------------------


@pytest.fixture
def cli_run(monkeypatch, tmp_path):
    """`sfox-bot ARGS` in this process with exactly `env` as its settings; (code, stdout, stderr)."""

    def run(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
        for name in setting_names():
            monkeypatch.delenv(name, raising=False)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        monkeypatch.chdir(tmp_path)
        out, err = io.StringIO(), io.StringIO()
        monkeypatch.setattr("sys.stdout", out)
        monkeypatch.setattr("sys.stderr", err)
        try:
            code = main(list(args))
        except SystemExit as exc:
            code = int(exc.code or 0)
        monkeypatch.undo()
        return code, out.getvalue(), err.getvalue()

    return run


def test_verify_head_and_export_commands(cli_run, tmp_path):
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    store = fill(url, KEY)
    env = {"DATABASE_URL": url, "SFOX_AUDIT_KEY": KEY}
    head = f"12 {hash_of(store, 12)}"
    assert cli_run("audit", "head", env=env) == (0, head + "\n", "")
    assert cli_run("audit", "verify", env=env) == (0, f"audit ok: 12 events, head {head}\n", "")
    code, out, _ = cli_run("audit", "verify", "--anchor", head.replace(" ", ":"), env=env)
    assert code == 0 and out.startswith("audit ok")
    code, out, _ = cli_run("audit", "verify", "--anchor", f"13:{'0' * 64}", env=env)
    assert code == 1 and out.startswith("audit FAILED at seq 13: truncated")
    code, out, err = cli_run("audit", "verify", env={"DATABASE_URL": url, "SFOX_AUDIT_KEY": OTHER_KEY})
    assert code == 1 and out.startswith("audit FAILED at seq 1: wrong key")
    assert KEY not in out + err and OTHER_KEY not in out + err
    for bad in ("12", "x:abc", f"0:{'0' * 64}", "12:xyz"):
        code, _, err = cli_run("audit", "verify", "--anchor", bad, env=env)
        assert code == 2 and "--anchor" in err and len(err.strip().splitlines()) == 1

    code, out, _ = cli_run("audit", "export", env=env)
    lines = [json.loads(line) for line in out.splitlines()]
    assert [e["seq"] for e in lines] == list(range(1, 13))
    assert set(lines[0]) == set(audit.EXPORT_FIELDS)
    assert lines[0]["at"] == "2026-12-01T09:30:00.123456Z" and lines[0]["prev_hash"] == audit.GENESIS
    code, out, _ = cli_run("audit", "export", "--request", "2", "--format", "csv", env=env)
    rows = out.splitlines()
    assert rows[0] == ",".join(audit.EXPORT_FIELDS) and [r.split(",")[0] for r in rows[1:]] == ["4", "5", "6"]
    code, out, _ = cli_run("audit", "export", "--since", "2026-12-01T09:30:02", env=env)
    assert [json.loads(line)["seq"] for line in out.splitlines()] == [7, 8, 9, 10, 11, 12]
    code, _, err = cli_run("audit", "export", "--request", "99", env=env)
    assert code == 1 and err == "sfox-bot: no request with id 99\n"
    code, _, err = cli_run("audit", "export", "--since", "yesterday", env=env)
    assert code == 2 and "--since" in err
    code, out, _ = cli_run("audit", env=env)
    assert code == 2 and "verify" in out and "export" in out
    store.close()


def test_show_adds_each_events_seq(cli_run, tmp_path):
    url = f"sqlite:///{tmp_path / 'show.db'}"
    fill(url).close()
    code, out, _ = cli_run("show", "2", "--format", "json", env={"DATABASE_URL": url})
    assert code == 0 and [e["seq"] for e in json.loads(out)["events"]] == [4, 5, 6]
    code, out, _ = cli_run("show", "2", env={"DATABASE_URL": url})
    trail = out.split("events:")[1].strip().splitlines()
    assert [line.split()[0] for line in trail] == ["#4", "#5", "#6"]


def readme_snippet() -> str:
    section = README[README.index("## Audit trail\n") :]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_readmes_receiver_side_check_verifies_an_export_and_catches_an_edit(cli_run, tmp_path):
    url = f"sqlite:///{tmp_path / 'export.db'}"
    store = fill(url, KEY)
    env = {"DATABASE_URL": url, "SFOX_AUDIT_KEY": KEY}
    _, full, _ = cli_run("audit", "export", env=env)
    namespace: dict = {}
    exec(readme_snippet(), namespace)  # noqa: S102 - the README's own code, run as a reader would
    check = namespace["verify_export"]
    assert check(full.splitlines(), key=KEY.encode()) == (12, hash_of(store, 12))
    # A later export --since continues from what the receiver already checked.
    _, tail, _ = cli_run("audit", "export", "--since", "2026-12-01T09:30:02", env=env)
    assert check(tail.splitlines(), key=KEY.encode(), start=(6, hash_of(store, 6)))[0] == 12
    edited = full.replace('"actor": "UBOB0002"', '"actor": "UMALLORY"', 1)
    with pytest.raises(ValueError, match="seq 2"):
        check(edited.splitlines(), key=KEY.encode())
    dropped = full.splitlines()
    del dropped[4]
    with pytest.raises(ValueError, match="seq 5: missing"):
        check(dropped, key=KEY.encode())
    with pytest.raises(ValueError, match="seq 1"):
        check(full.splitlines(), key=b"wrong")
    store.close()


def test_the_audit_key_is_a_secret(cli_run, tmp_path):
    from bot.config import ConfigError, load_settings

    settings = load_settings({"SFOX_AUDIT_KEY": KEY}, dotenv=False)
    assert KEY in settings.secrets() and KEY not in repr(settings)
    with pytest.raises(ConfigError, match="SFOX_AUDIT_KEY: must be at least 16 characters") as exc:
        load_settings({"SFOX_AUDIT_KEY": "short"}, dotenv=False)
    assert "short" not in str(exc.value)
    url = f"sqlite:///{tmp_path / 'secret.db'}"
    store = fill(url, KEY)
    with store.engine.connect() as conn:
        for table in ("events", "audit_head", "audit_anchor"):
            assert KEY not in repr(conn.execute(text(f"SELECT * FROM {table}")).all())  # noqa: S608
    store.close()
    code, out, err = cli_run("check", env={"DATABASE_URL": url, "SFOX_AUDIT_KEY": KEY})
    assert KEY not in out + err and "SFOX_AUDIT_KEY" in out


def test_the_migrated_audit_tables_match_what_the_code_describes(url):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from bot.store.schema import metadata

    store = Store.from_url(url)
    migrate.upgrade(store.engine)
    try:
        with store.engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), metadata)
    finally:
        store.close()
    audit_tables = ("events", "audit_head", "audit_anchor")
    assert [d for d in diff if any(t in repr(d) for t in audit_tables)] == []
