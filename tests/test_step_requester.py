"""Issue 32, part 1: the Workflow Builder step's requester is the person who ran the workflow, as
Slack reports it (the step's `interactivity` input, its `interactor.id`), never a name the
workflow's author typed. Before, Bob (an approver who may add the step) built a workflow whose
`requester` was Alice, ran it, and approved the card "requested by @Alice" himself: one person,
one DELETE. Through real HTTP: the fake Slack sends the signed `function_executed` with the
interactivity object as Slack's reference shows it."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bot.slack.steps import CALLBACK_ID, INTERACTIVITY_INPUT
from bot.store.schema import commands, steps
from tests.conftest import ALICE, BOB
from tests.helpers import wait_status
from tests.test_workflow_step import card_of, completions, declared, run_step, the_completion  # noqa: F401

POINTER = "1234567890123.4567890123456.78a90bc12d3e4f567g89h0i1j23k4l56"


def journalled(bot: Any) -> int:
    with bot.store.transaction() as conn:
        return len(conn.execute(commands.select()).all())


def interactivity(**interactor: Any) -> dict[str, Any]:
    return {"interactor": {"secret": "s3cr3t-" + "x" * 40, **interactor}, "interactivity_pointer": POINTER}


def assert_opened_nothing(bot: Any) -> None:
    bot.runtime.wait_idle()
    assert not list(bot.store.history()) and journalled(bot) == 0
    assert not bot.slack.cards() and not bot.sfox.requests()


def test_bob_cannot_name_alice_as_the_requester_and_approve_it_himself(bot):
    """The attack: Bob runs a workflow whose step names Alice. Nothing is opened: had a card
    been posted, Bob's Approve would have been the only one it needed."""
    execution = run_step(bot, ran_by=BOB, requester=ALICE, channel="C0REQ0001")
    bot.runtime.wait_idle()
    for card in bot.slack.cards():  # the attack's second half, had there been a card
        record = next(iter(bot.store.history(limit=1)))
        bot.driver.click(BOB, "sfox_approve", str(record.id), card.ts)
        bot.runtime.wait_idle()
    assert not bot.sfox.requests("DELETE") and not bot.sfox.deactivated
    method, error = the_completion(bot.slack, execution)
    assert method == "functions.completeError"
    assert "UALICE01" in error and "UBOB0002 ran the workflow" in error
    assert "the person who runs the workflow" in error and "Nothing was requested" in error
    assert_opened_nothing(bot)


def test_the_person_who_ran_it_is_the_requester_and_never_its_approver(bot):
    run_step(bot, ran_by=BOB, channel="C0REQ0002")
    card = card_of(bot, "C0REQ0002")
    (record,) = bot.store.history(limit=1)
    assert record.requested_by == BOB
    bot.driver.click(BOB, "sfox_approve", str(record.id), card.ts)  # his own: not counted
    bot.runtime.wait_idle()
    assert bot.store.get(record.id).status == "pending" and not bot.sfox.requests("DELETE")
    bot.driver.click(ALICE, "sfox_approve", str(record.id), card.ts)
    assert wait_status(bot, record.id, "succeeded").approved_by == (ALICE,)


def test_an_old_requester_input_naming_the_runner_is_accepted(bot):
    """A workflow built before the change that filled `requester` with the person who ran it."""
    run_step(bot, ran_by=ALICE, requester=ALICE, channel="C0REQ0003")
    card_of(bot, "C0REQ0003")
    assert next(iter(bot.store.history(limit=1))).requested_by == ALICE


@pytest.mark.parametrize(
    ("given", "words"),
    [
        (None, "no interactivity input"),  # a workflow built before the step had one
        ("UALICE01", "not Slack's interactivity"),
        ({"interactivity_pointer": POINTER}, "not Slack's interactivity"),
        ({"interactor": "UALICE01", "interactivity_pointer": POINTER}, "not Slack's interactivity"),
        (interactivity(), "not Slack's interactivity"),  # no id
        ({"interactor": {"id": ALICE, "secret": "s"}}, "not Slack's interactivity"),  # no pointer
        (interactivity(id="alice"), "'alice' is not a Slack user id"),
        (interactivity(id="UALICE01\n"), "is not a Slack user id"),
        (interactivity(id="C0123ABCD"), "is not a Slack user id"),
        (interactivity(id=42), "not Slack's interactivity"),
    ],
)
def test_a_step_whose_requester_cannot_be_proven_opens_nothing(bot, given, words):
    extra = {} if given is None else {"interactivity": given}
    execution = run_step(bot, ran_by=None, channel="C0REQ0004", requester=ALICE, **extra)
    method, error = the_completion(bot.slack, execution)
    assert method == "functions.completeError"
    assert words in error and "Nothing was requested" in error, error
    assert "s3cr3t" not in error
    assert_opened_nothing(bot)


def test_the_refusal_is_owed_until_slack_takes_it_sent_by_each_sweep_past_its_lease_then_never_again(
    bot, monkeypatch
):
    """Slack fails the step's completeError three ways (an error, a 503 the client itself tries
    three times, ratelimited): the runtime's own sweep sends it again each time the failed try's
    hold on it (SEND_LEASE_SECONDS, on the bot's clock) has run out, never while it lasts; once
    Slack took it, no later sweep sends it again."""
    from bot.runtime.steps import SEND_LEASE_SECONDS

    method = "functions.completeError"
    bot.slack.fail(method, "internal_error", times=1)
    bot.slack.fail(method, None, status=503, times=3)
    bot.slack.fail(method, "ratelimited", status=429, times=1, headers={"Retry-After": "1"})
    execution = run_step(bot, ran_by=None, channel="C0REQ0005")
    bot.runtime.wait_idle()
    workflow = bot.runtime.workflow
    tick = timedelta(milliseconds=1)

    def sent() -> int:
        with bot.slack.lock:
            return sum(1 for m, _ in bot.slack.calls if m == method)

    def held_until() -> datetime:
        """Until when the last try holds it, as that try wrote it (the bot's clock)."""
        with bot.store.transaction() as conn:
            (until,) = conn.execute(select(steps.c.lease_until)).one()
        return until if until.tzinfo else until.replace(tzinfo=UTC)

    def sweep_at(when: datetime) -> int:
        monkeypatch.setattr(workflow, "now", lambda: when)
        return bot.runtime.sweep()["steps_refused"]

    assert sent() == 1 and not completions(bot.slack, execution)  # internal_error, at once
    first = held_until()
    assert sweep_at(first - timedelta(seconds=1)) == 0 and sent() == 1  # its hold still lasts
    tried = first + tick
    assert sweep_at(tried) == 0 and sent() == 4  # a 503, three times (the client's retries)
    assert held_until() == tried + timedelta(seconds=SEND_LEASE_SECONDS)
    assert sweep_at(tried + timedelta(seconds=1)) == 0 and sent() == 4  # another sweep soon after
    assert sweep_at(held_until()) == 0 and sent() == 4  # not before it has run out
    assert sweep_at(held_until() + tick) == 0 and sent() == 5  # ratelimited
    assert not completions(bot.slack, execution)
    assert sweep_at(held_until() + tick) == 1 and sent() == 6  # taken
    method_done, error = the_completion(bot.slack, execution)
    assert method_done == method and "no interactivity input" in error
    taken = workflow.now()
    for later in (timedelta(seconds=SEND_LEASE_SECONDS + 1), timedelta(hours=1), timedelta(days=1)):
        assert sweep_at(taken + later) == 0
    assert sent() == 6 and len(completions(bot.slack, execution)) == 1


def test_the_interactors_secret_is_never_logged_nor_stored(bot, caplog, database_url):
    caplog.set_level(logging.DEBUG)
    execution = run_step(bot, ran_by=ALICE, channel="C0REQ0006")
    card = card_of(bot, "C0REQ0006")
    (record,) = bot.store.history(limit=1)
    bot.driver.click(BOB, "sfox_approve", str(record.id), card.ts)
    the_completion(bot.slack, execution)
    bot.runtime.wait_idle()
    secret = bot.slack.functions.executions[execution].interactivity["interactor"]["secret"]
    assert secret not in caplog.text
    database = Path(database_url.removeprefix("sqlite:///"))
    for file in (database, database.with_name(database.name + "-wal")):
        assert not file.exists() or secret.encode() not in file.read_bytes()


def test_the_fake_hands_the_step_who_ran_it_as_slacks_reference_shows_it(fake_slack):
    """The event the tests send: Slack's interactivity object in the declared input, the same
    one again when Slack re-sends the execution, and none for an execution nobody ran."""
    functions = fake_slack.functions
    execution, event = functions.executed_event(CALLBACK_ID, {"user_id": "client_1"}, None, ALICE)
    given = event["inputs"][INTERACTIVITY_INPUT]
    assert set(given) == {"interactor", "interactivity_pointer"} and set(given["interactor"]) == {
        "id",
        "secret",
    }
    assert given["interactor"]["id"] == ALICE and given["interactor"]["secret"]
    assert given["interactivity_pointer"].count(".") == 2
    (declared_input,) = [p for p in event["function"]["input_parameters"] if p["name"] == INTERACTIVITY_INPUT]
    assert declared_input == {**declared_input, "type": "slack#/types/interactivity", "is_required": True}
    _, again = functions.executed_event(CALLBACK_ID, {}, execution.id, None)
    assert again["inputs"][INTERACTIVITY_INPUT] == given
    _, nobody = functions.executed_event(CALLBACK_ID, {"user_id": "client_1"}, None, None)
    assert INTERACTIVITY_INPUT not in nobody["inputs"]
