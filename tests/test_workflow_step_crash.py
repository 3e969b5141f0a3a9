"""The Workflow Builder step across a kill (real `sfox-bot run` processes, bot/crashpoints.py):
the outcome recorded but the step not completed yet, and the completion taken by Slack but not
recorded. Either way the workflow sees exactly one completion."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from bot.slack.steps import CALLBACK_ID
from tests.conftest import ALICE, BOB, bot_env
from tests.crash_support import BotProcess, View
from tests.helpers import wait_status, wait_until

pytestmark = pytest.mark.slow
MANIFEST = Path(__file__).resolve().parent.parent / "app.yaml"


@pytest.fixture
def processes(fake_slack, fake_sfox, database_url, tmp_path) -> Iterator[Any]:
    fake_slack.functions.declared = yaml.safe_load(MANIFEST.read_text())["functions"]
    env = bot_env(fake_slack, fake_sfox, database_url, SFOX_SWEEP_INTERVAL_SECONDS="0.2")
    started: list[BotProcess] = []

    def start(name: str, crash: str | None = None) -> tuple[BotProcess, View]:
        bot = BotProcess(env, tmp_path, name, crash=crash)
        started.append(bot)
        return bot, View(bot.url, database_url, fake_slack, fake_sfox)

    yield start
    for bot in started:
        bot.stop()


def _approved_step(view: View, channel: str) -> tuple[str, int]:
    """A step's request opened and approved in the first process; its execution and request ids."""
    inputs = {"user_id": "client_1", "reason": "form", "channel": channel}
    execution = str(
        view.driver.function_executed(CALLBACK_ID, inputs, ran_by=ALICE).extensions["execution_id"]
    )
    card = view.slack.wait_for(lambda: [c for c in view.slack.cards() if c.channel == channel])[0]
    record = wait_until(lambda: (r := next(iter(view.store.history(limit=1)), None)) and r.message_ts and r)
    with contextlib.suppress(httpx.TransportError):
        view.driver.click(BOB, "sfox_approve", str(record.id), card.ts)
    return execution, record.id


def _taken(slack: Any, execution: str) -> list[Any]:
    with slack.lock:
        return [c for c in slack.functions.completions if c[0] == execution]


def test_outcome_recorded_then_killed_still_completes_the_step_once(processes, fake_slack):
    first, view = processes("first", crash="outcome_recorded")
    execution, request_id = _approved_step(view, "C0CRASH01")
    first.wait_crashed("outcome_recorded")
    assert view.store.get(request_id).status == "succeeded" and not _taken(fake_slack, execution)
    processes("second")  # its first sweep sends what is owed, the completion among it
    (done,) = wait_until(lambda: _taken(fake_slack, execution), timeout=20)
    assert done[1] == "functions.completeSuccess" and done[2]["status"] == "succeeded"


def test_step_completed_then_killed_is_not_completed_twice(processes, fake_slack):
    first, view = processes("first", crash="step_completed")
    execution, request_id = _approved_step(view, "C0CRASH02")
    first.wait_crashed("step_completed")
    assert len(_taken(fake_slack, execution)) == 1  # Slack has it; the bot has not recorded it
    processes("second")
    # After the completion's lease, it is sent again, answered execution_not_in_running_state,
    # and counted as delivered: nothing stays owed, and Slack saw one completion.
    wait_until(lambda: view.store.step_for_request(request_id).completed_at is not None, timeout=30)
    wait_status(view, request_id, "succeeded")
    assert len(_taken(fake_slack, execution)) == 1
    with fake_slack.lock:
        again = [args for method, args in fake_slack.calls if method == "functions.completeSuccess"]
    assert len(again) == 2
