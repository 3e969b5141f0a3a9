"""Issue 32, part 3: a batch's users are never single requests. Through real HTTP: a batch
approved and then paused keeps its users off the App Home, a forged single-request Approve (on
the card's button or the Home's) of one of its users is refused and sends nothing, the batch
stays paused and its card true; and a batch resumed after its users' time ran out sends none of
those it would have claimed again (the batch's own retry, bounded like its approval)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import update

from bot.batches import running
from bot.slack.batch_card import BATCH_APPROVE, BATCH_CANCEL, BATCH_PAUSE, BATCH_RESUME
from bot.slack.home import HOME_APPROVE
from bot.store.outcomes import Outcome
from bot.store.schema import requests
from tests.conftest import ALICE, BOB, CAROL
from tests.helpers import buttons, card_text, wait_until
from tests.mfa_support import enrol, stepped_bot
from tests.support import Gate
from tests.test_batches import add_users, ask, batch_id_of
from tests.test_home import home_buttons, home_text, opened_home

USERS = 30


@pytest.fixture
def paused(make_bot, fake_sfox, monkeypatch):
    """A 30-user batch approved by Bob, paused by Carol while its first DELETEs were held (as in
    tests/test_batches.py's pause test): the users not started yet stay `pending`, each with Bob's
    approval on its row."""
    monkeypatch.setattr(running, "TICK_SECONDS", 0.02)  # the runner sees the pause at once
    bot = make_bot(SFOX_BALANCE_CHECK="off", SFOX_TIMEOUT_SECONDS="60")
    ids = add_users(fake_sfox, USERS)
    _answer, card, _ = ask(bot, ALICE, "batch " + ",".join(ids) + " cohort closed")
    bid = batch_id_of(card)
    with Gate(fake_sfox, "DELETE", hold_seconds=60) as deletes:
        bot.driver.click(BOB, BATCH_APPROVE, str(bid), card.ts)
        deletes.wait_holding()
        bot.driver.click(CAROL, BATCH_PAUSE, str(bid), card.ts)
        wait_until(lambda: "Paused" in card_text(bot.slack.message(card.ts)))
        deletes.open()  # those in flight finish; no other is sent while paused
        wait_until(lambda: bot.runtime.batches.records.get(bid).runner is None, timeout=30)
    waiting = [r for r in rows(bot, bid) if r.status == "pending"]
    assert waiting and all(r.approved_by == (BOB,) for r in waiting)
    return bot, bid, card, waiting


def rows(bot, bid):
    return list(bot.store.history(limit=None, batch_id=bid))


def test_a_paused_batchs_users_are_not_on_the_app_home_and_cannot_be_approved_one_by_one(paused):
    bot, bid, card, waiting = paused
    sent = len(bot.sfox.requests("DELETE"))
    view = opened_home(bot, CAROL)
    assert home_buttons(view) == []
    assert "Nothing is waiting for your approval." in home_text(view)
    assert not any(r.sfox_user_id in home_text(view) for r in waiting)

    one, two = waiting[0], waiting[1]
    # Forged: a single request's Approve naming a batch user's row, from the Home and on the card.
    bot.driver.home_click(CAROL, HOME_APPROVE, str(one.id))
    told = wait_until(lambda: (v := bot.slack.home(CAROL)) and f"batch #{bid}" in home_text(v) and v)
    assert f"Request #{one.id} is one user of batch #{bid}" in home_text(told)
    click = bot.driver.click(CAROL, "sfox_approve", str(two.id), card.ts)
    answer = bot.driver.ephemeral_for(click.extensions["response_name"])[0]
    assert f"Request #{two.id} is one user of batch #{bid}" in answer
    deny = bot.driver.click(CAROL, "sfox_deny", str(two.id), card.ts)
    assert bot.driver.modal_for(deny.extensions["response_name"]) is None  # no reason asked for
    assert f"batch #{bid}" in bot.driver.ephemeral_for(deny.extensions["response_name"])[0]

    for row in (one, two):
        current = bot.store.get(row.id)
        assert current.status == "pending" and current.approved_by == (BOB,)
    assert len(bot.sfox.requests("DELETE")) == sent
    assert bot.runtime.batches.records.get(bid).status == "paused"
    assert "Paused" in card_text(bot.slack.message(card.ts))
    assert buttons(bot.slack.message(card.ts)) == [BATCH_RESUME, BATCH_CANCEL]


def test_a_batch_resumed_after_its_time_sends_none_it_would_claim_again(paused):
    """A user sFOX rate-limited waits to be claimed again by the batch itself, but only while the
    batch's approval holds (its users' 7 days, like the pending ones): a Resume long after sends
    nothing for it, and the batch finishes with it failed."""
    bot, bid, card, waiting = paused
    sent = len(bot.sfox.requests("DELETE"))
    limited = waiting[0]
    past = bot.runtime.workflow.now() - timedelta(seconds=1)
    with bot.store.engine.begin() as conn:
        conn.execute(
            update(requests)
            .where(requests.c.batch_id == bid, requests.c.status == "pending")
            .values(expires_at=past)
        )
        conn.execute(
            update(requests)
            .where(requests.c.id == limited.id)
            .values(status="failed", retryable=True, outcome=Outcome.RATE_LIMITED, error="429")
        )
    bot.runtime.workflow.sweep()  # the users whose time ran out expire
    bot.driver.click(CAROL, BATCH_RESUME, str(bid), card.ts)
    wait_until(lambda: bot.runtime.batches.records.get(bid).status == "done", timeout=30)
    assert len(bot.sfox.requests("DELETE")) == sent
    assert bot.store.get(limited.id).status == "failed"
    assert [e.kind for e in bot.store.events_for(limited.id)].count("retry_claimed") == 0


def test_with_step_up_a_forged_approve_of_a_batchs_user_asks_for_no_code(make_bot, fake_sfox):
    """Not approved yet, under step-up: the single Approve of one of its users opens no code
    modal (no code could make it count) and is answered as any such click."""
    bot = stepped_bot(make_bot, SFOX_BALANCE_CHECK="off")
    enrol(bot, BOB)
    ids = add_users(fake_sfox, 2)
    _answer, card, _ = ask(bot, ALICE, "batch " + ",".join(ids) + " cohort closed")
    bid = batch_id_of(card)
    row = rows(bot, bid)[0]
    click = bot.driver.click(BOB, "sfox_approve", str(row.id), card.ts, confirm=False)
    assert bot.driver.modal_for(click.extensions["response_name"]) is None
    told = bot.driver.ephemeral_for(click.extensions["response_name"])[0]
    assert f"Request #{row.id} is one user of batch #{bid}" in told
    assert bot.store.get(row.id).approved_by == () and fake_sfox.requests("DELETE") == []
