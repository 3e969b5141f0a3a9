"""Socket Mode: the same Runtime, driven through Bolt's real Socket Mode adapter over a real
WebSocket (bot.fakes.socket_mode) instead of signed HTTP requests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from slack_bolt.adapter.socket_mode import SocketModeHandler

from bot.config import load_settings
from bot.fakes.slack_driver import SlackDriver
from bot.fakes.socket_mode import FakeSocketMode
from bot.runtime.bootstrap import build_runtime
from bot.store import migrate
from bot.store.db import Store
from tests.conftest import ALICE, BOB, MALLORY, bot_env
from tests.helpers import wait_until
from tests.ops_support import cli, socket_click, socket_command


@pytest.fixture
def socket_mode(fake_slack) -> Iterator[FakeSocketMode]:
    with FakeSocketMode() as server:
        fake_slack.socket_url = server.url
        yield server


def socket_env(fake_slack, fake_sfox, database_url: str, **overrides: str) -> dict[str, str]:
    env = bot_env(fake_slack, fake_sfox, database_url, SLACK_APP_TOKEN=fake_slack.app_token, **overrides)
    del env["SLACK_SIGNING_SECRET"]  # not needed without a public URL
    return env


def test_an_approval_end_to_end_over_socket_mode(fake_slack, fake_sfox, socket_mode, database_url):
    settings = load_settings(socket_env(fake_slack, fake_sfox, database_url)).require_for_run()
    assert settings.socket_mode
    store = Store.from_url(settings.database_url)
    migrate.upgrade(store.engine)
    runtime = build_runtime(settings, store=store)
    handler = SocketModeHandler(runtime.app, settings.slack_app_token)
    driver = SlackDriver("http://unused", "unused", fake_slack)  # only builds Slack's payloads
    try:
        handler.connect()
        socket_mode.wait_connected()

        refused = socket_command(socket_mode, driver, MALLORY, "client_1")
        assert "not on the sFOX approver list" in refused["text"]

        ack = socket_command(socket_mode, driver, ALICE, "client_1 leaving the company")
        assert ack["response_type"] == "ephemeral" and "Looking up" in ack["text"]
        card = fake_slack.wait_for(lambda: fake_slack.cards())[0]
        record = wait_until(lambda: next(store.history(limit=1), None))
        assert record.status == "pending" and record.requested_by == ALICE

        _, name = socket_click(socket_mode, driver, ALICE, "sfox_approve", str(record.id), card.ts)
        assert "second admin" in driver.ephemeral_for(name)[0]

        ack, _ = socket_click(socket_mode, driver, BOB, "sfox_approve", str(record.id), card.ts)
        assert ack == {}
        done = wait_until(lambda: (r := store.get(record.id)) and r.status == "succeeded" and r)
        assert done.approved_by == (BOB,)
        assert fake_sfox.deletes["client_1"] == 1
        replies = fake_slack.wait_for(lambda: fake_slack.thread(card.ts))
        assert "deactivated" in replies[0].text
    finally:
        handler.close()
        runtime.shutdown()
        driver.close()


def test_run_says_in_one_line_when_slack_refuses_the_app_token(fake_slack, fake_sfox, socket_mode, tmp_path):
    env = socket_env(fake_slack, fake_sfox, f"sqlite:///{tmp_path / 'bot.db'}")
    env["SLACK_APP_TOKEN"] = "xapp-wrong"
    result = cli("run", env=env, cwd=tmp_path)
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("sfox-bot: Slack refused the Socket Mode connection (invalid_auth)")
    assert "Traceback" not in result.stderr
    assert "xapp-wrong" not in result.stderr + result.stdout


@pytest.mark.slow
def test_socket_mode_serves_healthz_readyz_and_metrics_on_metrics_port(
    fake_slack, fake_sfox, socket_mode, tmp_path
):
    from tests.ops_support import SFOX_BOT, HttpBot, free_port

    port = free_port()
    env = socket_env(fake_slack, fake_sfox, f"sqlite:///{tmp_path / 'bot.db'}")
    env.update({"HOST": "127.0.0.1", "METRICS_PORT": str(port)})
    bot = HttpBot([SFOX_BOT, "run"], env, tmp_path, port)
    try:
        bot.wait_ready()
        assert bot.wait_ready("/readyz").json() == {"status": "ready", "role": "all"}
        metrics = bot.wait_ready("/metrics").text
        assert "sfox_bot_requests" in metrics and "sfox_bot_sweep_last_success_timestamp_seconds" in metrics
        assert bot.terminate() == 0
    finally:
        bot.kill()


@pytest.mark.slow
def test_socket_mode_with_workers_the_socket_process_acks_and_a_worker_does_the_work(
    fake_slack, fake_sfox, socket_mode, tmp_path
):
    """`sfox-bot run` in Socket Mode with the tiers: the socket process is the web role (it acks
    over the socket and says so on its metrics port), a worker posts the card and sends the one
    DELETE."""
    from tests.ops_support import SFOX_BOT, HttpBot, free_port

    port = free_port()
    url = f"sqlite:///{tmp_path / 'bot.db'}"
    env = socket_env(fake_slack, fake_sfox, url, SFOX_WORKERS="1")
    env.update({"HOST": "127.0.0.1", "METRICS_PORT": str(port)})
    bot = HttpBot([SFOX_BOT, "run"], env, tmp_path, port)
    driver = SlackDriver("http://unused", "unused", fake_slack)  # only builds Slack's payloads
    store = Store.from_url(url)
    try:
        ready = bot.wait_ready("/readyz").json()
        assert ready["role"] == "web" and "workers" in ready
        socket_mode.wait_connected()
        ack = socket_command(socket_mode, driver, ALICE, "client_1 leaving the company")
        assert ack["response_type"] == "ephemeral" and "Looking up" in ack["text"]
        card = fake_slack.wait_for(lambda: fake_slack.cards())[0]
        record = wait_until(lambda: (r := next(store.history(limit=1), None)) and r.message_ts and r)
        ack, _ = socket_click(socket_mode, driver, BOB, "sfox_approve", str(record.id), card.ts)
        assert ack == {}
        wait_until(lambda: (r := store.get(record.id)) and r.status == "succeeded", 20)
        assert fake_sfox.deletes["client_1"] == 1
        metrics = bot.wait_ready("/metrics").text
        assert 'sfox_bot_role{role="web"} 1.0' in metrics
        assert wait_until(lambda: bot.wait_ready("/readyz").json()["workers"]["last_taken_at"])
        assert bot.terminate() == 0
    finally:
        bot.kill()
        driver.close()
        store.close()
