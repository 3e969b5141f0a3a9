"""The Workflow Builder step `deactivate_sfox_account` (issue 20) through real HTTP: the fake Slack
sends a signed `function_executed`, the bot opens the request as the typed command would, and the
step is completed once with its outcome (or with why no request was opened)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.fakes.slack_functions import WORKFLOW_TOKEN_SECONDS
from bot.slack.steps import CALLBACK_ID
from tests.conftest import ALICE, BOB, MALLORY
from tests.helpers import wait_status, wait_until

MANIFEST = Path(__file__).resolve().parent.parent / "app.yaml"


@pytest.fixture(autouse=True)
def declared(fake_slack: Any) -> None:
    """The fake Slack knows the step as app.yaml declares it (its outputs are checked against it)."""
    fake_slack.functions.declared = yaml.safe_load(MANIFEST.read_text())["functions"]


def run_step(bot: Any, channel: str | None = "C0STEP001", ran_by: str | None = ALICE, **inputs: Any) -> str:
    """`ran_by` runs a workflow with the step; returns its execution id once Slack saw it
    acknowledged. Slack hands the step who ran it (its interactivity input); nobody types it."""
    sent = {"user_id": "client_1", "reason": "closed via form", **inputs}
    if channel:
        sent["channel"] = channel
    response = bot.driver.function_executed(CALLBACK_ID, sent, ran_by=ran_by)
    assert response.status_code == 200, response.text
    return str(response.extensions["execution_id"])


def completions(slack: Any, execution_id: str) -> list[tuple[str, str, Any]]:
    with slack.lock:
        return [c for c in slack.functions.completions if c[0] == execution_id]


def the_completion(slack: Any, execution_id: str) -> tuple[str, Any]:
    (done,) = wait_until(lambda: completions(slack, execution_id))
    return done[1], done[2]


def card_of(bot: Any, channel: str) -> Any:
    return bot.slack.wait_for(lambda: [c for c in bot.slack.cards() if c.channel == channel])[0]


def test_a_step_opens_a_card_and_completes_once_with_the_outcome(bot):
    execution = run_step(bot)
    card = card_of(bot, "C0STEP001")
    (record,) = bot.store.history(limit=1)
    assert record.requested_by == ALICE and record.reason == "closed via form"
    assert not completions(bot.slack, execution)  # pending: the workflow waits
    bot.driver.click(BOB, "sfox_approve", str(record.id), card.ts)
    wait_status(bot, record.id, "succeeded")
    method, outputs = the_completion(bot.slack, execution)
    assert method == "functions.completeSuccess"
    assert outputs["status"] == "succeeded" and outputs["request_id"] == record.id
    assert outputs["card_url"].startswith("https://") and card.ts.replace(".", "") in outputs["card_url"]
    bot.runtime.sweep()
    bot.runtime.wait_idle()
    assert len(completions(bot.slack, execution)) == 1


def test_a_denied_request_completes_the_step_with_denied(bot):
    execution = run_step(bot, channel="C0STEP002", user_id="client_3")
    card = card_of(bot, "C0STEP002")
    (record,) = bot.store.history(limit=1)
    bot.driver.click(BOB, "sfox_deny", str(record.id), card.ts, reason="not yet")
    assert the_completion(bot.slack, execution)[1]["status"] == "denied"


def test_a_blocked_account_completes_the_step_with_blocked_and_no_card(bot):
    execution = run_step(bot, channel="C0STEP003", user_id="client_2")
    method, outputs = the_completion(bot.slack, execution)
    assert method == "functions.completeSuccess"
    assert outputs["status"] == "blocked" and "card_url" not in outputs


@pytest.mark.parametrize(
    ("inputs", "words"),
    [
        ({"ran_by": MALLORY}, "cannot request deactivations"),  # the policy's own refusal
        ({"user_id": "bad id!"}, "not a valid sFOX user id"),
        ({"user_id": "client_404"}, "No such sFOX user: client_404"),  # unknown on sFOX
    ],
)
def test_no_request_opened_completes_the_step_with_the_reason_in_plain_words(bot, inputs, words):
    execution = run_step(bot, **inputs)
    method, error = the_completion(bot.slack, execution)
    assert method == "functions.completeError"
    assert words in error
    assert not any(mark in error for mark in ("`", "*", ":warning:", ":mag:", "<@"))
    assert not bot.slack.cards()


def test_no_channel_and_no_default_channel_is_an_error(bot):
    execution = run_step(bot, channel=None)
    method, error = the_completion(bot.slack, execution)
    assert method == "functions.completeError" and "SFOX_DEFAULT_CHANNEL" in error


def test_without_a_channel_the_card_goes_to_the_default_channel(make_bot):
    bot = make_bot(SFOX_DEFAULT_CHANNEL="C0DEFAULT1")
    run_step(bot, channel=None)
    card_of(bot, "C0DEFAULT1")


def test_a_repeated_function_executed_opens_nothing_new(make_bot, database_url):
    bot = make_bot()
    execution = run_step(bot, channel="C0STEP004")
    card = card_of(bot, "C0STEP004")
    first = bot.driver.function_executed(CALLBACK_ID, {}, execution_id=execution, retry=1)
    assert first.status_code == 200
    # The same execution, Slack's retry under a new event id, to another replica on the database.
    other = make_bot(DATABASE_URL=database_url)
    again = other.driver.function_executed(
        CALLBACK_ID, {"user_id": "client_1"}, execution_id=execution, retry=2
    )
    assert again.status_code == 200
    bot.runtime.wait_idle()
    other.runtime.wait_idle()
    assert len(list(bot.store.history(limit=10))) == 1 and bot.slack.cards() == [card]
    (record,) = bot.store.history(limit=1)
    bot.driver.click(BOB, "sfox_approve", str(record.id), card.ts)
    assert the_completion(bot.slack, execution)[1]["status"] == "succeeded"


def test_the_step_completes_after_the_workflow_token_expired(bot, fake_slack):
    """An approval hours later: the event's workflow token is dead by then (the fake refuses it
    with token_expired), so the completion goes with the bot token and Slack takes it."""
    execution = run_step(bot, channel="C0STEP005")
    card = card_of(bot, "C0STEP005")
    (record,) = bot.store.history(limit=1)
    started = fake_slack.clock()
    fake_slack.clock = lambda: started + WORKFLOW_TOKEN_SECONDS + 3600  # an hour after it expired
    token = fake_slack.functions.executions[execution].token
    assert fake_slack.functions.answer(
        "functions.completeSuccess", {"function_execution_id": execution, "outputs": {}}, f"Bearer {token}"
    ) == {"ok": False, "error": "token_expired"}
    fake_slack.refusals.clear()  # provoked above on purpose
    bot.driver.click(BOB, "sfox_approve", str(record.id), card.ts)
    method, outputs = the_completion(bot.slack, execution)
    assert (method, outputs["status"]) == ("functions.completeSuccess", "succeeded")


def test_a_restart_between_the_outcome_and_the_completion_still_completes_once(make_bot, database_url):
    bot = make_bot()
    execution = run_step(bot, channel="C0STEP006")
    card = card_of(bot, "C0STEP006")
    (record,) = bot.store.history(limit=1)
    bot.slack.fail("functions.completeSuccess", "internal_error", times=100)  # Slack down meanwhile
    bot.driver.click(BOB, "sfox_approve", str(record.id), card.ts)
    wait_status(bot, record.id, "succeeded")
    wait_until(lambda: any(m == "functions.completeSuccess" for m, _ in bot.slack.calls))
    bot.stop()
    assert not completions(bot.slack, execution)
    with bot.slack.lock:
        bot.slack.faults.clear()
    after = make_bot(DATABASE_URL=database_url)
    after.runtime.sweep()
    assert the_completion(after.slack, execution)[1]["status"] == "succeeded"
    after.runtime.sweep()
    assert len(completions(after.slack, execution)) == 1


def test_the_workflow_token_is_never_logged_nor_stored(bot, caplog, database_url):
    caplog.set_level(logging.DEBUG)
    execution = run_step(bot, channel="C0STEP007")
    card = card_of(bot, "C0STEP007")
    (record,) = bot.store.history(limit=1)
    bot.driver.click(BOB, "sfox_approve", str(record.id), card.ts)
    the_completion(bot.slack, execution)
    bot.runtime.wait_idle()
    token = bot.slack.functions.executions[execution].token
    assert token not in caplog.text
    database = Path(database_url.removeprefix("sqlite:///"))
    for file in (database, database.with_name(database.name + "-wal")):  # WAL: the newest writes
        assert not file.exists() or token.encode() not in file.read_bytes()
    assert "functions.completeSuccess" in caplog.text or "step completed" in caplog.text


def test_an_execution_whose_receiver_died_before_its_ack_is_carried_out_by_slacks_resend(bot):
    """Recorded, then the process died before journalling it: the event was never acknowledged,
    so Slack sends it again, and that re-send takes the execution over once its hold ran out."""
    with bot.slack.lock:
        execution = bot.slack.functions.start(CALLBACK_ID, ran_by=ALICE).id
    long_ago = datetime.now(UTC) - timedelta(minutes=1)
    assert bot.store.receive_step(execution, long_ago, timedelta(seconds=10)) is not None
    inputs = {"user_id": "client_1", "channel": "C0STEP008"}
    assert (
        bot.driver.function_executed(CALLBACK_ID, inputs, execution_id=execution, retry=1).status_code == 200
    )
    card = card_of(bot, "C0STEP008")
    (record,) = bot.store.history(limit=1)
    bot.driver.click(BOB, "sfox_approve", str(record.id), card.ts)
    assert the_completion(bot.slack, execution)[1]["status"] == "succeeded"
