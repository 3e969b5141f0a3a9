"""`sfox-bot history|show|migrate` as real processes, on a database filled through the real bot:
the JSON has exactly the fields the issue lists, newest first; CSV and table say the same."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.fakes.sfox_api import NONZERO
from bot.requests.history import HISTORY_FIELDS
from bot.store import migrate
from bot.store.db import Store
from bot.store.outcomes import Outcome
from bot.store.records import Event
from tests.conftest import ALICE, BOB, CAROL
from tests.helpers import open_request, wait_status
from tests.support import drain, later_ephemerals

SFOX_BOT = str(Path(sys.executable).parent / "sfox-bot")
FIELDS = [
    "id",
    "sfox_user_id",
    "status",
    "reason",
    "requested_by",
    "approved_by",
    "denied_by",
    "channel_id",
    "message_ts",
    "created_at",
    "decided_at",
    "completed_at",
    "http_status",
    "error",
    "balances",
    "batch_id",  # issue 12: null for a single request
    "run_at",  # issue 19: null unless asked with --at
    "watch_read_at",  # issue 19: null unless watched (--when-empty)
    "requested_via",  # issue 20: null unless asked through the intake API
]
# The issue-2 statuses, plus `unknown` (issue 3: the DELETE went out and no answer came), plus
# `blocked` (issue 11: the target held funds, so no card was posted).
STATUSES = {"pending", "denied", "expired", "executing", "succeeded", "failed", "unknown", "blocked"}


def cli(*args: str, database_url: str, cwd: Path, module: bool = False) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "bot", *args] if module else [SFOX_BOT, *args]
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(cwd), "DATABASE_URL": database_url}
    return subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=60)


@pytest.fixture
def filled(bot, fake_sfox):
    """Six requests, oldest first: succeeded, failed (422: funds arrived after the card), blocked
    (funds before any card), denied, pending, outcome unknown."""
    cards = {}
    ok, cards["ok"] = open_request(bot, ALICE, "client_1 left the company")
    bot.driver.click(BOB, "sfox_approve", str(ok.id), cards["ok"].ts)
    wait_status(bot, ok.id, "succeeded")
    bad, cards["bad"] = open_request(bot, ALICE, "client_late has balances")
    bot.driver.click(CAROL, "sfox_approve", str(bad.id), cards["bad"].ts)
    wait_status(bot, bad.id, "failed")
    later_ephemerals(bot, bot.driver.command(BOB, "client_2 holds funds"))
    blocked = next(r for r in bot.store.history(limit=1) if r.sfox_user_id == "client_2")
    no, cards["no"] = open_request(bot, BOB, "client_3 =cmd|' /C calc'!A0")
    bot.driver.click(CAROL, "sfox_deny", str(no.id), cards["no"].ts)
    wait_status(bot, no.id, "denied")
    fake_sfox.add_user("client_4")
    waiting, cards["waiting"] = open_request(bot, CAROL, "client_4")
    fake_sfox.add_user("client_5")
    lost, cards["lost"] = open_request(bot, ALICE, "client_5 lost answer")
    drain(bot)
    # An outcome nobody knows yet (the DELETE was sent, no answer came, the check is pending).
    store = bot.store
    now = datetime.now(UTC)
    assert store.add_approval(lost.id, BOB, now) and store.claim(lost.id, now, actor=BOB)
    assert store.finish(
        lost.id,
        now,
        status="unknown",
        http_status=None,
        error="sFOX did not answer in time",
        retryable=False,
        outcome=Outcome.UNKNOWN,
        event=Event("sfox_delete"),
        reply="…",
    )
    records = {"ok": ok, "bad": bad, "blocked": blocked, "no": no, "waiting": waiting, "lost": lost}
    return bot, records, cards


def history_json(bot, tmp_path, *extra: str, module: bool = False) -> list[dict]:
    done = cli(
        "history",
        "--format",
        "json",
        *extra,
        database_url=bot.runtime.settings.database_url,
        cwd=tmp_path,
        module=module,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_history_json_has_exactly_the_issue_fields_newest_first(filled, tmp_path):
    bot, records, cards = filled
    rows = history_json(bot, tmp_path)
    assert tuple(FIELDS) == HISTORY_FIELDS
    order = ("lost", "waiting", "no", "blocked", "bad", "ok")
    assert [r["id"] for r in rows] == [records[k].id for k in order]
    for row in rows:
        assert list(row) == FIELDS
        assert row["status"] in STATUSES
        assert isinstance(row["approved_by"], list)
        for key in ("created_at", "decided_at", "completed_at"):
            assert row[key] is None or datetime.fromisoformat(row[key]).tzinfo is not None
    by_user = {r["sfox_user_id"]: r for r in rows}

    ok = by_user["client_1"]
    assert ok["status"] == "succeeded" and ok["reason"] == "left the company"
    assert ok["requested_by"] == ALICE and ok["approved_by"] == [BOB] and ok["denied_by"] is None
    assert ok["channel_id"] == cards["ok"].channel and ok["message_ts"] == cards["ok"].ts
    assert ok["decided_at"] and ok["completed_at"] and ok["created_at"] <= ok["completed_at"]
    assert (ok["http_status"], ok["error"]) == (200, None)
    assert ok["balances"] == [{"currency": "usd", "balance": 0}, {"currency": "btc", "balance": 0}]

    bad = by_user["client_late"]
    assert (bad["status"], bad["http_status"], bad["error"]) == ("failed", 422, NONZERO)
    assert bad["approved_by"] == [CAROL]
    assert bad["balances"] == [{"currency": "usd", "balance": 0}]  # as read before the card

    blocked = by_user["client_2"]
    assert (blocked["status"], blocked["requested_by"], blocked["http_status"]) == ("blocked", BOB, None)
    assert blocked["message_ts"] is None and blocked["approved_by"] == [] and blocked["completed_at"]
    assert "USD 1250 (100 held), BTC 0.5" in blocked["error"]
    assert blocked["balances"] == [
        {"currency": "usd", "balance": 1250},
        {"currency": "btc", "balance": 0.5},
        {"currency": "eth", "balance": 0},
    ]

    no = by_user["client_3"]
    assert (no["status"], no["denied_by"], no["approved_by"], no["http_status"]) == (
        "denied",
        CAROL,
        [],
        None,
    )
    assert no["requested_by"] == BOB
    assert no["balances"] == []  # read: client_3 has no currency at all
    for row in rows:
        # The bot reads at most 4 balances per 10 s: the last requests may find no free slot.
        assert row["balances"] is None or isinstance(row["balances"], list)

    waiting = by_user["client_4"]
    assert (waiting["status"], waiting["decided_at"], waiting["completed_at"]) == ("pending", None, None)
    assert waiting["reason"] == ""

    lost = by_user["client_5"]
    assert lost["status"] == "unknown"  # sent, outcome still being settled by a lookup
    assert lost["error"] == "sFOX did not answer in time" and lost["completed_at"] is None


def test_history_limit_and_python_m_bot(filled, tmp_path):
    bot, records, _ = filled
    rows = history_json(bot, tmp_path, "--limit", "2", module=True)
    assert [r["id"] for r in rows] == [records["lost"].id, records["waiting"].id]


def test_history_csv_says_the_same_as_json(filled, tmp_path):
    bot, _, _ = filled
    url = bot.runtime.settings.database_url
    done = cli("history", "--format", "csv", database_url=url, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    table = list(csv.reader(io.StringIO(done.stdout)))
    assert table[0] == FIELDS
    as_json = history_json(bot, tmp_path)
    assert len(table) == 1 + len(as_json)
    for row, obj in zip(table[1:], as_json, strict=True):
        values = dict(zip(FIELDS, row, strict=True))
        assert values["id"] == str(obj["id"]) and values["status"] == obj["status"]
        assert values["approved_by"] == ";".join(obj["approved_by"])
        assert values["http_status"] == ("" if obj["http_status"] is None else str(obj["http_status"]))
        assert values["error"] == (obj["error"] or "")
        shown = ";".join(f"{b['currency']} {b['balance']}" for b in obj["balances"] or [])
        assert values["balances"] == shown
    reasons = {dict(zip(FIELDS, r, strict=True))["sfox_user_id"]: r[3] for r in table[1:]}
    assert reasons["client_3"].startswith("'=")  # not run as a spreadsheet formula


def test_history_table_and_default_format(filled, tmp_path):
    bot, records, _ = filled
    url = bot.runtime.settings.database_url
    done = cli("history", "--format", "table", database_url=url, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split()[:4] == ["id", "created_at", "status", "sfox_user_id"]
    assert len(lines) == 1 + len(records)
    assert lines[1].split()[0] == str(records["lost"].id)
    assert "client_late" in done.stdout and "422" in done.stdout and "Can not disable account" in done.stdout
    assert "blocked    client_2" in done.stdout and "holds funds" in done.stdout
    # Not a terminal: JSON by default.
    default = cli("history", database_url=url, cwd=tmp_path)
    assert json.loads(default.stdout) == history_json(bot, tmp_path)


def test_history_of_an_empty_database(tmp_path):
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    store = Store.from_url(url)
    migrate.upgrade(store.engine)
    store.close()
    assert json.loads(cli("history", "--format", "json", database_url=url, cwd=tmp_path).stdout) == []
    assert (
        "(no requests recorded)" in cli("history", "--format", "table", database_url=url, cwd=tmp_path).stdout
    )
    assert cli("history", "--format", "csv", database_url=url, cwd=tmp_path).stdout.strip() == ",".join(
        FIELDS
    )


def test_history_of_an_unmigrated_database_is_one_line(tmp_path):
    done = cli("history", database_url=f"sqlite:///{tmp_path / 'new.db'}", cwd=tmp_path)
    assert done.returncode != 0
    assert len(done.stderr.strip().splitlines()) == 1 and "sfox-bot migrate" in done.stderr


def test_show_prints_the_trail(filled, tmp_path):
    bot, records, _ = filled
    url = bot.runtime.settings.database_url
    done = cli("show", str(records["bad"].id), "--format", "json", database_url=url, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    assert shown["status"] == "failed" and shown["error"] == NONZERO
    kinds = [e["kind"] for e in shown["events"]]
    assert kinds == ["requested", "card_posted", "approved", "claimed", "sfox_call_started", "sfox_delete"]
    call = shown["events"][-1]
    assert call["http_status"] == 422 and call["duration_ms"] is not None and NONZERO in call["detail"]
    text = cli("show", str(records["bad"].id), database_url=url, cwd=tmp_path).stdout
    assert "sfox_delete" in text and "http=422" in text
    blocked = cli("show", str(records["blocked"].id), "--format", "json", database_url=url, cwd=tmp_path)
    shown = json.loads(blocked.stdout)
    assert shown["status"] == "blocked" and "USD 1250 (100 held), BTC 0.5" in shown["error"]
    assert [e["kind"] for e in shown["events"]] == ["requested", "blocked"]
    assert "USD 1250 (100 held), BTC 0.5" in shown["events"][-1]["detail"]
    text = cli("show", str(records["blocked"].id), database_url=url, cwd=tmp_path).stdout
    assert "blocked" in text and "usd 1250" in text
    missing = cli("show", "999", database_url=url, cwd=tmp_path)
    assert missing.returncode == 1 and missing.stderr.strip() == "sfox-bot: no request with id 999"


def test_migrate_works_from_any_directory_with_the_default_database(tmp_path):
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path)}
    done = subprocess.run(
        [SFOX_BOT, "migrate"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"database at revision {migrate.head_revision()}"
    assert (tmp_path / "sfox-bot.db").exists()
    again = subprocess.run(
        [SFOX_BOT, "migrate"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert again.returncode == 0, again.stderr
