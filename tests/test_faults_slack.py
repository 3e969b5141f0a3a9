"""Slack misbehaving, injected through the real HTTP fake: a card that cannot be posted leaves no
request able to fire, and messages that fail after the DELETE are kept and sent later."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from bot.store.schema import outbox
from tests.conftest import ALICE, BOB, CAROL
from tests.helpers import buttons, card_text, open_request, wait_status, wait_until


@pytest.mark.parametrize(
    ("error", "status", "headers", "advice"),
    [
        ("not_in_channel", 200, {}, "invite me with `/invite @sFOX Deactivate`"),
        ("channel_not_found", 200, {}, "I cannot see this channel"),
        ("ratelimited", 429, {"Retry-After": "0"}, "Slack is rate limiting me: wait a minute"),
        ("internal_error", 500, {}, "try again in a minute"),
        (None, 503, {}, "try again in a minute"),
    ],
    ids=["not_in_channel", "channel_not_found", "ratelimited-429", "500", "503-empty"],
)
def test_card_not_posted_tells_the_requester_and_leaves_nothing_to_fire(bot, error, status, headers, advice):
    # More failures than the Slack client tries by itself (5xx twice again; a 429 for as long as
    # its Retry-After waits add up to 30 s, at most 30 times), so the post fails for good.
    bot.slack.fail("chat.postMessage", error, status=status, times=100, headers=headers)
    response = bot.driver.command(ALICE, "client_1 offboarding")
    assert response.status_code == 200
    text = bot.driver.ephemeral_for(response.extensions["response_name"])[0]
    assert "could not post the approval card" in text
    assert advice in text
    assert "nothing can be approved by mistake" in text
    assert bot.slack.cards() == []

    record = next(iter(bot.store.history()))
    assert record.status == "failed" and not record.retryable and record.message_ts is None
    assert bot.store.open_request_for("client_1") is None
    assert "card_failed" in [e.kind for e in bot.store.events_for(record.id)]

    # Even a (forged-by-Slack) click for that request id cannot fire it, nor can a sweep.
    # Slack sends a click only from a message it holds (the bot then takes it for the card and
    # updates it): here a bot message in the channel that the bot never learnt the ts of.
    stray = bot.slack.lost_post(bot.driver.channel_id, "a message with the request's button")
    click = bot.driver.click(BOB, "sfox_approve", str(record.id), stray)
    assert "has failed" in bot.driver.ephemeral_for(click.extensions["response_name"])[0]
    bot.runtime.workflow.sweep()
    assert bot.store.get(record.id).status == "failed"
    assert bot.sfox.requests("DELETE") == []

    # Once Slack works again, a new request for the same user is possible.
    bot.slack.faults.clear()
    again, _ = open_request(bot, ALICE, "client_1 second try")
    assert again.id != record.id and again.status == "pending"


def _unsent(bot, request_id):
    with bot.store.engine.connect() as conn:
        rows = conn.execute(
            select(outbox.c.kind, outbox.c.last_error, outbox.c.attempts).where(
                outbox.c.request_id == request_id, outbox.c.sent_at.is_(None)
            )
        ).all()
    return rows


def _later(minutes: float):
    return lambda: datetime.now(UTC) + timedelta(minutes=minutes)


def test_slack_failing_after_the_delete_loses_nothing(bot, caplog):
    record, card = open_request(bot, ALICE, "client_1 offboarding")
    bot.slack.fail("chat.update", "internal_error", times=1000)
    bot.slack.fail("chat.postMessage", "internal_error", times=1000)
    with caplog.at_level(logging.WARNING, logger="sfox_bot.workflow"):
        assert bot.driver.click(BOB, "sfox_approve", str(record.id), card.ts).status_code == 200
        done = wait_status(bot, record.id, "succeeded")
        wait_until(lambda: any(r.getMessage() == "slack message not delivered" for r in caplog.records))
    assert done.http_status == 200 and bot.sfox.deletes["client_1"] == 1
    bot.runtime.jobs.shutdown(wait=True)  # background delivery attempts are over; sweeps from here
    bot.runtime.delivery.stop(timeout=10)

    # Slack shows nothing of the outcome yet, but the database owes it, and says why it is late.
    assert bot.slack.thread(card.ts) == []
    assert buttons(bot.slack.message(card.ts)) == ["sfox_approve", "sfox_deny"]
    owed = wait_until(lambda: (rows := _unsent(bot, record.id)) and any(r.last_error for r in rows) and rows)
    assert {r.kind for r in owed} == {"card", "reply", "dm"}  # dm: the requester's (issue 13)
    assert "internal_error" in {r.last_error for r in owed}
    assert "slack_failed" in [e.kind for e in bot.store.events_for(record.id)]

    # A sweep while Slack still fails changes nothing and loses nothing.
    wf = bot.runtime.workflow
    wf.now = _later(10)
    assert wf.sweep()["delivered"] == 0
    assert len(_unsent(bot, record.id)) == len(owed)

    # Slack recovers; the next sweep (after the retry delay) delivers everything, in order.
    bot.slack.faults.clear()
    wf.now = _later(60)
    assert wf.sweep()["delivered"] == len(owed)
    assert _unsent(bot, record.id) == []
    final = bot.slack.message(card.ts)
    assert buttons(final) == [] and "Deactivated on sFOX" in card_text(final)
    replies = [m.text for m in bot.slack.thread(card.ts)]
    assert len(replies) == 1 and "is deactivated" in replies[0]
    assert bot.store.get(record.id).status == "succeeded"


def test_card_that_cannot_be_updated_any_more_does_not_block_the_reply(bot):
    """chat.update answering message_not_found (the card was deleted) will never work: give up on
    that one message, record it, and still post the outcome in the thread."""
    record, card = open_request(bot, ALICE, "client_1 offboarding")
    bot.slack.fail("chat.update", "message_not_found", times=1000)
    bot.driver.click(CAROL, "sfox_approve", str(record.id), card.ts)
    wait_status(bot, record.id, "succeeded")
    replies = bot.slack.wait_for(lambda: bot.slack.thread(card.ts))
    assert "is deactivated" in replies[0].text
    wait_until(lambda: _unsent(bot, record.id) == [])  # the requester's DM follows the reply
    details = [e.detail for e in bot.store.events_for(record.id) if e.kind == "slack_failed"]
    assert details and all("message_not_found" in d for d in details)
