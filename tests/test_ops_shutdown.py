"""Graceful shutdown: SIGTERM while the sFOX DELETE is in flight. The process must wait for the
answer, record the outcome (and tell Slack) before it exits, in every way the bot is run."""

from __future__ import annotations

import sys
from collections.abc import Callable

import pytest

from bot.fakes.sfox_api import Fault
from bot.fakes.slack_driver import SlackDriver
from bot.fakes.socket_mode import FakeSocketMode
from bot.store.db import Store
from tests.conftest import ALICE, BOB, SIGNING_SECRET, bot_env
from tests.helpers import wait_until
from tests.ops_support import (
    SFOX_BOT,
    HttpBot,
    Process,
    cli,
    free_port,
    gunicorn_argv,
    socket_click,
    socket_command,
    start_run,
)

pytestmark = pytest.mark.slow

DELETE_SECONDS = 3.0


def assert_recorded_after_sigterm(
    proc: Process,
    store: Store,
    fake_slack,
    fake_sfox,
    command: Callable[[str, str], object],
    click: Callable[[str, str, str, str], object],
) -> None:
    fake_sfox.script(Fault(method="DELETE", delay=DELETE_SECONDS))
    command(ALICE, "client_1 leaving")
    card = fake_slack.wait_for(lambda: fake_slack.cards())[0]
    record = wait_until(lambda: next(store.history(limit=1), None))
    click(BOB, "sfox_approve", str(record.id), card.ts)
    wait_until(lambda: fake_sfox.requests("DELETE"))  # the call is out; sFOX answers in 3 s

    assert proc.terminate(timeout=60) == 0, proc.output

    done = store.get(record.id)
    assert done is not None and done.status == "succeeded", proc.output
    assert done.http_status == 200
    kinds = [e.kind for e in store.events_for(record.id)]
    assert "sfox_delete" in kinds
    assert fake_sfox.deletes["client_1"] == 1
    assert any("deactivated" in m.text for m in fake_slack.thread(card.ts)), "thread reply lost"


def test_sigterm_during_the_delete_under_sfox_bot_run(fake_slack, fake_sfox, tmp_path):
    db = f"sqlite:///{tmp_path / 'bot.db'}"
    bot = start_run(bot_env(fake_slack, fake_sfox, db), tmp_path)
    driver = SlackDriver(bot.url, SIGNING_SECRET, fake_slack)
    store = Store.from_url(db)
    try:
        assert_recorded_after_sigterm(bot, store, fake_slack, fake_sfox, driver.command, driver.click)
        assert "worker stopping: finishing in-flight sFOX calls" in bot.output
    finally:
        bot.kill()
        store.close()
        driver.close()


def test_sigterm_during_the_delete_under_your_own_gunicorn(fake_slack, fake_sfox, tmp_path):
    db = f"sqlite:///{tmp_path / 'bot.db'}"
    env = bot_env(fake_slack, fake_sfox, db)
    assert cli("migrate", env=env, cwd=tmp_path).returncode == 0
    port = free_port()
    argv = gunicorn_argv(port, "bot.wsgi:create_app()", "--worker-class", "gthread", "--threads", "4")
    server = HttpBot(argv, env, tmp_path, port, name="gunicorn")
    driver = SlackDriver(server.url, SIGNING_SECRET, fake_slack)
    store = Store.from_url(db)
    try:
        server.wait_ready()
        assert_recorded_after_sigterm(server, store, fake_slack, fake_sfox, driver.command, driver.click)
    finally:
        server.kill()
        store.close()
        driver.close()


def test_sigterm_during_the_delete_in_socket_mode(fake_slack, fake_sfox, tmp_path):
    db = f"sqlite:///{tmp_path / 'bot.db'}"
    env = bot_env(fake_slack, fake_sfox, db, SLACK_APP_TOKEN=fake_slack.app_token)
    del env["SLACK_SIGNING_SECRET"]
    driver = SlackDriver("http://unused", "unused", fake_slack)
    store = Store.from_url(db)
    with FakeSocketMode() as socket_mode:
        fake_slack.socket_url = socket_mode.url
        bot = Process([SFOX_BOT, "run"], env, tmp_path)
        try:
            socket_mode.wait_connected(timeout=30)
            assert_recorded_after_sigterm(
                bot,
                store,
                fake_slack,
                fake_sfox,
                lambda user, text: socket_command(socket_mode, driver, user, text),
                lambda user, action, value, ts: socket_click(socket_mode, driver, user, action, value, ts),
            )
            assert "shutting down: finishing in-flight sFOX calls" in bot.output
        finally:
            bot.kill()
            store.close()
            driver.close()


def test_a_process_that_does_not_stop_on_sigterm_is_reported_with_its_threads_stacks(tmp_path):
    """The helper every shutdown test uses: a hang says where it hangs instead of only timing out."""
    script = "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nprint('up', flush=True)\ntime.sleep(60)\n"
    proc = Process([sys.executable, "-c", script], {}, tmp_path, name="stuck")
    proc.wait_for_output("up")
    with pytest.raises(AssertionError) as stuck:
        proc.terminate(timeout=0.5)
    assert "not stopped 0.5 s after SIGTERM" in str(stuck.value)
    assert "time.sleep" in str(stuck.value) or 'File "<string>", line 4' in str(stuck.value)
    proc.kill()
