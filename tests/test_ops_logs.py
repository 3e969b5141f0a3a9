"""Logs: one line per event, JSON with LOG_FORMAT=json, the fields ops search by, never a secret."""

from __future__ import annotations

import io
import json
import logging

import pytest

from bot.fakes.slack_driver import SlackDriver
from bot.logs import configure
from bot.store.db import Store
from tests.conftest import ALICE, BOB, BOT_TOKEN, SFOX_KEY, SIGNING_SECRET, bot_env
from tests.helpers import wait_until
from tests.ops_support import json_lines, start_run

SECRETS = (BOT_TOKEN, SIGNING_SECRET, SFOX_KEY)


@pytest.mark.slow
def test_json_logs_of_a_real_process(fake_slack, fake_sfox, tmp_path):
    db = f"sqlite:///{tmp_path / 'bot.db'}"
    env = bot_env(
        fake_slack,
        fake_sfox,
        db,
        LOG_FORMAT="json",
        LOG_LEVEL="DEBUG",
        SFOX_APPROVER_GROUP="S0ADMINS",
    )
    # A hostile or buggy Slack echoes the bot token back in an error: it must not reach the log.
    fake_slack.fail("usergroups.users.list", error=f"invalid token {BOT_TOKEN}")
    bot = start_run(env, tmp_path)
    driver = SlackDriver(bot.url, SIGNING_SECRET, fake_slack)
    store = Store.from_url(db)
    try:
        driver.command("UDAVE004", "client_3")  # group lookup fails: refused, logged
        driver.command(ALICE, "client_1 leaving")
        card = fake_slack.wait_for(lambda: fake_slack.cards())[0]
        record = wait_until(lambda: next(store.history(limit=1), None))
        driver.click(BOB, "sfox_approve", str(record.id), card.ts)
        wait_until(lambda: (r := store.get(record.id)) and r.status == "succeeded")
        fake_slack.wait_for(lambda: fake_slack.thread(card.ts))
    finally:
        assert bot.terminate() == 0
        store.close()
        driver.close()

    output = bot.output
    for secret in SECRETS:
        assert secret not in output
    lines = json_lines(output)  # every line, gunicorn's included, is one JSON object
    assert all({"ts", "level", "logger", "event"} <= set(line) for line in lines)
    assert any(line["logger"].startswith("gunicorn") for line in lines)

    def find(event: str) -> dict:
        return next(line for line in lines if line["event"] == event)

    opened = find("request opened")
    assert (opened["request_id"], opened["sfox_user_id"], opened["actor"]) == (record.id, "client_1", ALICE)
    claimed = find("request claimed")
    assert (claimed["request_id"], claimed["actor"]) == (record.id, BOB)
    finished = find("request succeeded")
    assert finished["request_id"] == record.id and finished["sfox_user_id"] == "client_1"
    assert (finished["status"], finished["http_status"]) == ("succeeded", 200)
    group = next(line for line in lines if line["logger"] == "sfox_bot.approvers")
    assert group["level"] == "warning" and group["usergroup"] == "S0ADMINS"
    assert group["slack_error"] == "invalid token [REDACTED]"


def test_every_path_a_secret_could_take_into_a_line_is_scrubbed(monkeypatch):
    stream = io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    try:
        configure("INFO", "json", SECRETS)
        log = logging.getLogger("sfox_bot.test")
        log.info("message %s", SFOX_KEY, extra={"detail": f"token={BOT_TOKEN}", "n": 3})
        try:
            raise RuntimeError(f"signed with {SIGNING_SECRET}\nsecond line")
        except RuntimeError:
            log.exception("failed")
    finally:
        root.handlers[:], root.level = saved
    text = stream.getvalue()
    for secret in SECRETS:
        assert secret not in text
    first, second = (json.loads(line) for line in text.splitlines())
    assert first["event"] == "message [REDACTED]" and first["detail"] == "token=[REDACTED]"
    assert first["n"] == 3
    assert "signed with [REDACTED]" in second["exception"]


def test_text_format_is_one_line_per_event_with_fields(monkeypatch):
    stream = io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    try:
        configure("INFO", "text", SECRETS)
        logging.getLogger("sfox_bot.test").info(
            "request succeeded", extra={"request_id": 7, "sfox_user_id": "client_1", "status": "succeeded"}
        )
    finally:
        root.handlers[:], root.level = saved
    (line,) = stream.getvalue().splitlines()
    assert "request succeeded request_id=7 sfox_user_id=client_1 status=succeeded" in line
