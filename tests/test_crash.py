"""Real processes: `sfox-bot run` killed with SIGKILL between the claim and sFOX's answer, then
restarted; and the expiry sweep, both inside `sfox-bot run` and as `sfox-bot sweep` on its own."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest

from bot.fakes.sfox_api import Fault
from tests.conftest import ALICE, BOB, bot_env
from tests.crash_support import SFOX_BOT, BotProcess, View
from tests.helpers import buttons, card_text, open_request, wait_status, wait_until

pytestmark = pytest.mark.slow


@pytest.fixture
def processes() -> Iterator[list[BotProcess]]:
    started: list[BotProcess] = []
    yield started
    for p in started:
        p.stop()


@pytest.mark.parametrize("applied", [True, False], ids=["delete-applied", "delete-not-applied"])
def test_killed_between_claim_and_answer_is_reconciled_after_restart(
    fake_slack, fake_sfox, database_url, tmp_path, processes, applied
):
    env = bot_env(
        fake_slack,
        fake_sfox,
        database_url,
        SFOX_TIMEOUT_SECONDS="1",  # claims older than 1 + 5 s (CLAIM_GRACE_SECONDS) are abandoned
        SFOX_SWEEP_INTERVAL_SECONDS="0.2",
    )
    first = BotProcess(env, tmp_path, "first")
    processes.append(first)
    view = View(first.url, database_url, fake_slack, fake_sfox)
    record, card = open_request(view, ALICE, "client_1 offboarding")

    killed = threading.Event()

    def kill_mid_delete(seen) -> None:
        """sFOX receives the DELETE (and, in one variant, carries it out); before any answer leaves,
        the bot process dies. The connection is then dropped, so no answer ever arrives."""
        if seen.method != "DELETE" or killed.is_set():
            return
        if applied:
            fake_sfox.answer("DELETE", urlsplit(seen.raw_path).path, seen.headers.get("authorization"))
        first.kill()
        killed.set()

    fake_sfox.on_request = kill_mid_delete
    fake_sfox.script(Fault("DELETE", drop=True))
    with contextlib.suppress(httpx.TransportError):  # it may die before its ack reaches Slack
        view.driver.click(BOB, "sfox_approve", str(record.id), card.ts)
    assert killed.wait(15), first.output()
    assert first.proc.returncode == -signal.SIGKILL
    left = view.store.get(record.id)
    assert left.status == "executing"  # what the dead process left behind
    assert ("client_1" in fake_sfox.deactivated) is applied

    second = BotProcess(env, tmp_path, "second")
    processes.append(second)
    expected = "succeeded" if applied else "failed"
    done = wait_status(view, record.id, "succeeded", "failed", timeout=30)
    assert done.status == expected, second.output()
    kinds = [e.kind for e in view.store.events_for(record.id)]
    assert "reconcile_started" in kinds and "reconciled" in kinds
    assert len(fake_sfox.requests("DELETE")) == 1  # never a second, blind DELETE

    # A card update the killed process had leased holds the reply back until its lease ends (15 s).
    replies = fake_slack.wait_for(lambda: fake_slack.thread(card.ts), timeout=40)
    if applied:
        assert "confirmed: sFOX no longer knows the account" in replies[-1].text
        final = fake_slack.wait_for(lambda: "Deactivated on sFOX" in card_text(fake_slack.message(card.ts)))
        assert final and buttons(fake_slack.message(card.ts)) == []
    else:
        assert "still exists" in replies[-1].text and "Retry" in replies[-1].text
        fake_slack.wait_for(lambda: buttons(fake_slack.message(card.ts)) == ["sfox_retry"])
        assert done.retryable


def test_periodic_sweep_in_run_expires_unattended_requests(
    fake_slack, fake_sfox, database_url, tmp_path, processes
):
    env = bot_env(
        fake_slack, fake_sfox, database_url, SFOX_REQUEST_TTL_SECONDS="1", SFOX_SWEEP_INTERVAL_SECONDS="0.2"
    )
    bot = BotProcess(env, tmp_path, "run")
    processes.append(bot)
    view = View(bot.url, database_url, fake_slack, fake_sfox)
    record, card = open_request(view, ALICE, "client_1 nobody looks")
    assert buttons(card) == ["sfox_approve", "sfox_deny"]
    # Nobody clicks; the sweeper alone must notice.
    wait_status(view, record.id, "expired", timeout=15)
    updated = fake_slack.wait_for(
        lambda: (m := fake_slack.message(card.ts)) and "Expired" in card_text(m) and m, timeout=15
    )
    assert buttons(updated) == []
    assert [e.kind for e in view.store.events_for(record.id)][-1] == "expired"
    assert fake_sfox.requests("DELETE") == []


def test_sweep_command_alone_expires_reconciles_and_delivers(make_bot, fake_slack, fake_sfox, tmp_path):
    bot = make_bot(SFOX_REQUEST_TTL_SECONDS="1")
    stale, stale_card = open_request(bot, ALICE, "client_1 nobody looks")

    # A second request ends `unknown`: DELETE reset, and sFOX unreachable for the follow-up read.
    unsure, unsure_card = open_request(bot, ALICE, "client_3 flaky")
    fake_sfox.script(Fault("DELETE", reset=True), *[Fault("GET", status=503)] * 3)
    bot.driver.click(BOB, "sfox_approve", str(unsure.id), unsure_card.ts)
    wait_until(lambda: "reconcile_failed" in [e.kind for e in bot.store.events_for(unsure.id)])
    assert bot.store.get(unsure.id).status == "unknown"
    bot.runtime.jobs.shutdown(wait=True)  # the in-process bot is idle from here on

    wait_until(lambda: time.time() > stale.expires_at.timestamp() + 0.2, timeout=5)
    assert bot.store.get(stale.id).status == "pending"  # expired in time, but nobody noticed yet

    env = bot_env(fake_slack, fake_sfox, bot.runtime.settings.database_url)
    full_env = {"PATH": os.environ.get("PATH", ""), **env}
    result = subprocess.run(
        [SFOX_BOT, "sweep"], env=full_env, cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "expired: 1" in result.stdout and "reconciled: 1" in result.stdout

    assert bot.store.get(stale.id).status == "expired"
    expired_card = fake_slack.message(stale_card.ts)
    assert "Expired" in card_text(expired_card) and buttons(expired_card) == []
    settled = bot.store.get(unsure.id)
    assert settled.status == "failed" and settled.retryable
    assert "still exists" in fake_slack.thread(unsure_card.ts)[-1].text
    assert len(fake_sfox.requests("DELETE")) == 1

    again = subprocess.run(
        [SFOX_BOT, "sweep"], env=full_env, cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert again.returncode == 0 and "expired: 0, reconciled: 0" in again.stdout
