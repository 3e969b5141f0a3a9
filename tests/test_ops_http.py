"""HTTP mode: /healthz and /readyz, and the WSGI entry points under a real gunicorn."""

from __future__ import annotations

import httpx
import pytest

from bot.config import load_settings
from bot.fakes.slack_driver import SlackDriver
from bot.store import migrate
from bot.store.db import Store
from tests.conftest import ALICE, BOB, SIGNING_SECRET, bot_env, start_bot
from tests.helpers import wait_until
from tests.ops_support import HttpBot, cli, free_port, gunicorn_argv


def test_healthz_and_readyz_when_all_is_well(bot):
    assert httpx.get(bot.url + "/healthz").json() == {"status": "ok"}
    ready = httpx.get(bot.url + "/readyz")
    assert ready.status_code == 200 and ready.json() == {"status": "ready", "role": "all"}


def test_readyz_is_503_until_migrations_are_at_head(fake_slack, fake_sfox, database_url):
    settings = load_settings(bot_env(fake_slack, fake_sfox, database_url))
    bot = start_bot(settings, fake_slack, fake_sfox, migrate_first=False)
    try:
        assert httpx.get(bot.url + "/healthz").status_code == 200  # alive, just not ready
        ready = httpx.get(bot.url + "/readyz")
        assert ready.status_code == 503
        assert ready.json()["status"] == "migrations not at head"
        migrate.upgrade(bot.store.engine)
        assert httpx.get(bot.url + "/readyz").status_code == 200
    finally:
        bot.stop()


def test_readyz_is_503_when_the_database_is_unreachable(fake_slack, fake_sfox):
    url = "postgresql+psycopg://postgres@127.0.0.1:9/nowhere"
    settings = load_settings(bot_env(fake_slack, fake_sfox, url))
    bot = start_bot(settings, fake_slack, fake_sfox, migrate_first=False)
    try:
        assert httpx.get(bot.url + "/healthz").status_code == 200
        ready = httpx.get(bot.url + "/readyz", timeout=30)
        assert ready.status_code == 503
        assert ready.json()["status"] == "database unreachable"
        assert "127.0.0.1" not in ready.text  # says what, not where
    finally:
        bot.stop()


def test_unknown_paths_and_methods(bot):
    assert httpx.get(bot.url + "/nope").status_code == 404
    assert httpx.get(bot.url + "/slack/events").status_code == 405


@pytest.mark.slow
@pytest.mark.parametrize("target", ["bot.wsgi:create_app()", "bot.wsgi:app"])
def test_bring_your_own_gunicorn(target, fake_slack, fake_sfox, tmp_path):
    """`gunicorn 'bot.wsgi:create_app()'` serves the same app: ready, and an approval goes through."""
    db = f"sqlite:///{tmp_path / 'bot.db'}"
    env = bot_env(fake_slack, fake_sfox, db)
    assert cli("migrate", env=env, cwd=tmp_path).returncode == 0
    port = free_port()
    argv = gunicorn_argv(port, target, "--worker-class", "gthread", "--threads", "8")
    server = HttpBot(argv, env, tmp_path, port, name="gunicorn")
    try:
        server.wait_ready()
        assert httpx.get(server.url + "/readyz").json() == {"status": "ready", "role": "all"}
        driver = SlackDriver(server.url, SIGNING_SECRET, fake_slack)
        assert driver.command(ALICE, "client_1 leaving").status_code == 200
        card = fake_slack.wait_for(lambda: fake_slack.cards())[0]
        store = Store.from_url(db)
        record = next(store.history(limit=1))
        assert driver.click(BOB, "sfox_approve", str(record.id), card.ts).status_code == 200
        wait_until(lambda: (r := store.get(record.id)) and r.status == "succeeded")
        assert fake_sfox.deletes["client_1"] == 1
        store.close()
        driver.close()
    finally:
        assert server.terminate() == 0, server.output


@pytest.mark.slow
def test_create_app_refuses_an_unmigrated_database(fake_slack, fake_sfox, tmp_path):
    env = bot_env(fake_slack, fake_sfox, f"sqlite:///{tmp_path / 'bot.db'}")
    port = free_port()
    argv = gunicorn_argv(port, "bot.wsgi:create_app()")
    server = HttpBot(argv, env, tmp_path, port, name="gunicorn")
    try:
        assert server.proc.wait(60) != 0
    finally:
        server.kill()
    assert "sfox-bot: the database schema is not at head: run `sfox-bot migrate` first" in server.output
    assert "Traceback" not in server.output
