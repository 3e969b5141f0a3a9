"""The audit stream's settings (each mistake named, the secret never echoed) and `sfox-bot audit
stream`: the webhook's host (never its path or the secret), the cursor, the chain's head, the lag,
the lease's holder and the failures, as the person on call reads them."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from bot.audit.chain import head
from bot.audit.stream import AuditStream
from bot.cli.check import run_checks
from bot.config import ConfigError, load_settings
from bot.store import migrate
from bot.store.db import Store
from tests.stream_support import WEBHOOK_SECRET, Receiver, append_events
from tests.test_audit import cli_run  # noqa: F401 - the fixture: `sfox-bot ARGS` in this process

STAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z"
URL = "https://siem.example.com/ingest/T0KEN"


def test_the_webhook_settings():
    settings = load_settings(
        {"SFOX_AUDIT_WEBHOOK_URL": URL, "SFOX_AUDIT_WEBHOOK_SECRET": WEBHOOK_SECRET}, dotenv=False
    )
    assert (settings.audit_webhook_url, settings.audit_webhook_lease_seconds) == (URL, 30.0)
    assert WEBHOOK_SECRET in settings.secrets() and WEBHOOK_SECRET not in repr(settings)
    assert load_settings({}, dotenv=False).audit_webhook_url is None  # off by default


def test_the_secret_is_required_with_the_url_and_check_shows_the_host_only():
    settings = load_settings({"SFOX_AUDIT_WEBHOOK_URL": URL}, dotenv=False)
    missing = {e.setting: e.problem for e in settings.missing_for_run()}
    assert missing["SFOX_AUDIT_WEBHOOK_SECRET"] == "is required when SFOX_AUDIT_WEBHOOK_URL is set"
    env = {"SFOX_AUDIT_WEBHOOK_URL": URL, "SFOX_AUDIT_WEBHOOK_SECRET": WEBHOOK_SECRET}
    rows = {row.name: row for row in run_checks(env, online=False)}
    assert rows["SFOX_AUDIT_WEBHOOK_URL"].detail == "set (host siem.example.com)"
    assert rows["SFOX_AUDIT_WEBHOOK_SECRET"].detail == "set (hidden)"
    rows = {row.name: row for row in run_checks({"SFOX_AUDIT_WEBHOOK_URL": URL}, online=False)}
    assert not rows["SFOX_AUDIT_WEBHOOK_SECRET"].ok and rows["SFOX_AUDIT_WEBHOOK_URL"].ok


@pytest.mark.parametrize(
    ("env", "setting", "problem"),
    [
        (
            {"SFOX_AUDIT_WEBHOOK_URL": URL, "SFOX_AUDIT_WEBHOOK_SECRET": "short-s3cr3t"},
            "SFOX_AUDIT_WEBHOOK_SECRET",
            "at least 32 characters",
        ),
        ({"SFOX_AUDIT_WEBHOOK_URL": "siem.example.com/in"}, "SFOX_AUDIT_WEBHOOK_URL", "http(s) URL"),
        (
            {"SFOX_AUDIT_WEBHOOK_URL": "https://u:s3cr3t@siem/"},
            "SFOX_AUDIT_WEBHOOK_URL",
            "without credentials",
        ),
        ({"SFOX_AUDIT_WEBHOOK_LEASE_SECONDS": "0"}, "SFOX_AUDIT_WEBHOOK_LEASE_SECONDS", "between 1 and 3600"),
    ],
)
def test_a_bad_webhook_setting_is_named(env, setting, problem):
    with pytest.raises(ConfigError) as caught:
        load_settings(env, dotenv=False)
    assert caught.value.setting == setting and problem in caught.value.problem
    assert "s3cr3t" not in str(caught.value)


def test_audit_stream_shows_cursor_head_lag_lease_and_failures(cli_run, tmp_path):  # noqa: F811
    url = f"sqlite:///{tmp_path / 'stream.db'}"
    store = Store.from_url(url)
    migrate.upgrade(store.engine)
    env = {"DATABASE_URL": url}
    code, out, err = cli_run("audit", "stream", env=env)
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        "webhook: not set (SFOX_AUDIT_WEBHOOK_URL)",
        "cursor: seq 0",
        f"head: seq 0 {'0' * 64}",
        "lag: none",
        "lease: free",
    ]

    receiver = Receiver(script=[200, 503])
    try:
        append_events(store, 5, datetime.now(UTC) - timedelta(minutes=2))
        stream = AuditStream(
            store,
            receiver.url,
            WEBHOOK_SECRET,
            now=lambda: datetime.now(UTC),
            batch_max=3,
            holder="web-1:42:ab",
        )
        assert stream.run() == 3  # seq 1-3 acknowledged, then a 503
        stream.close()
    finally:
        receiver.close()
    env.update(SFOX_AUDIT_WEBHOOK_URL=receiver.url, SFOX_AUDIT_WEBHOOK_SECRET=WEBHOOK_SECRET)
    code, out, err = cli_run("audit", "stream", env=env)
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0] == "webhook: 127.0.0.1"
    assert re.fullmatch(rf"cursor: seq 3 \(last acknowledged at {STAMP}\)", lines[1])
    assert lines[2] == f"head: seq 5 {head(store.engine)[1]}"
    assert re.fullmatch(rf"lag: 2 events, the oldest from {STAMP} \(1[12]\d s ago\)", lines[3])
    assert re.fullmatch(rf"lease: held by web-1:42:ab until {STAMP}", lines[4])
    assert re.fullmatch(rf"failures: 1 in a row, the last: HTTP 503; next try at {STAMP}", lines[5])
    assert "T0KEN" not in out and WEBHOOK_SECRET not in out  # the path may carry a token
    store.close()
