"""Issue 13: the requester hears every final outcome by direct message, linking the card; when
the card's thread is gone the DM still tells it; when the DM fails too, an ERROR names the request."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from sqlalchemy import update

from bot.fakes.sfox_api import Fault
from bot.store.schema import outbox, requests
from tests.conftest import ALICE, BOB
from tests.helpers import open_request, wait_status, wait_until


def dm_to(bot, user, *words):
    return wait_until(lambda: [m for m in bot.slack.dms(user) if all(w in m.text for w in words)] or None)


def test_success_is_told_by_dm_with_a_link_to_the_card(bot):
    record, card = open_request(bot, ALICE, "client_1 left the company")
    bot.driver.click(BOB, "sfox_approve", str(record.id), card.ts)
    wait_status(bot, record.id, "succeeded")
    (dm,) = dm_to(bot, ALICE, f"#{record.id}", "is done")
    assert "client_1" in dm.text and "Ada Lovelace" in dm.text
    assert f"https://test.slack.com/archives/{card.channel}/p{card.ts.replace('.', '')}" in dm.text
    assert bot.slack.dms(BOB) == []  # only the requester
    assert all(m.channel.startswith("C") for m in bot.slack.cards())


def test_a_deny_is_told_with_who_and_why(bot):
    record, card = open_request(bot, ALICE, "client_1")
    bot.driver.click(BOB, "sfox_deny", str(record.id), card.ts, reason="wrong account, see ticket 12")
    wait_status(bot, record.id, "denied")
    (dm,) = dm_to(bot, ALICE, "denied by <@UBOB0002>")
    assert "wrong account, see ticket 12" in dm.text


def test_expiry_is_told_by_dm(bot):
    record, _ = open_request(bot, ALICE, "client_1")
    with bot.store.transaction() as conn:  # its TTL is over
        conn.execute(update(requests).values(expires_at=datetime.now(UTC) - timedelta(seconds=1)))
    bot.runtime.sweep()
    wait_status(bot, record.id, "expired")
    dm_to(bot, ALICE, f"#{record.id}", "expired")


def test_a_failure_is_told_by_dm(make_bot):
    bot = make_bot(SFOX_BALANCE_CHECK="off")
    record, card = open_request(bot, ALICE, "client_2")  # holds funds: sFOX answers 422
    bot.driver.click(BOB, "sfox_approve", str(record.id), card.ts)
    wait_status(bot, record.id, "failed")
    dm_to(bot, ALICE, f"#{record.id}", "was not carried out")


def test_a_blocked_request_is_told_by_dm(bot):
    response = bot.driver.command(ALICE, "client_2")
    assert response.status_code == 200
    (dm,) = dm_to(bot, ALICE, "closed before any card")
    assert "USD 1250" in dm.text
    assert bot.slack.cards() == []


def test_an_unknown_outcome_is_told_once_settled(bot, fake_sfox):
    record, card = open_request(bot, ALICE, "client_1")
    fake_sfox.script(Fault("DELETE", drop=True, apply=True))  # deleted, but no answer came
    bot.driver.click(BOB, "sfox_approve", str(record.id), card.ts)
    wait_status(bot, record.id, "succeeded", timeout=20)
    (dm,) = dm_to(bot, ALICE, f"#{record.id}", "is done")
    assert len(bot.slack.dms(ALICE)) == 1  # the unknown step itself is not final: no DM for it


def test_when_the_thread_is_gone_the_dm_still_tells_the_outcome(bot, fake_slack):
    record, card = open_request(bot, ALICE, "client_1")
    fake_slack.fail("chat.update", "message_not_found")
    fake_slack.fail("chat.postMessage", "channel_not_found")  # the thread reply, for good
    bot.driver.click(BOB, "sfox_approve", str(record.id), card.ts)
    wait_status(bot, record.id, "succeeded")
    (dm,) = dm_to(bot, ALICE, "is done")
    assert "could not post this in the card's thread" in dm.text
    assert bot.slack.thread(card.ts) == []


def test_when_the_dm_fails_too_an_error_names_the_request(bot, fake_slack, caplog):
    record, card = open_request(bot, ALICE, "client_1")
    fake_slack.fail("conversations.open", "user_not_found")
    with caplog.at_level(logging.ERROR, logger="sfox_bot.dms"):
        bot.driver.click(BOB, "sfox_approve", str(record.id), card.ts)
        wait_status(bot, record.id, "succeeded")
        error = wait_until(
            lambda: [r for r in caplog.records if r.levelno == logging.ERROR and r.name == "sfox_bot.dms"]
        )
    assert error[0].request_id == record.id
    assert bot.slack.dms(ALICE) == []
    bot.runtime.wait_idle()
    assert not list(bot.store.unsent_notices(bot.runtime.workflow.now()))  # given up, not retried


def test_a_dm_slack_refuses_for_now_is_sent_by_a_later_sweep(bot, fake_slack):
    record, card = open_request(bot, ALICE, "client_1")
    fake_slack.fail("conversations.open", "ratelimited")
    bot.driver.click(BOB, "sfox_approve", str(record.id), card.ts)
    wait_status(bot, record.id, "succeeded")
    bot.runtime.wait_idle()
    assert bot.slack.dms(ALICE) == []
    with bot.store.transaction() as conn:
        conn.execute(update(outbox).values(lease_until=None))  # its backoff is over
    bot.runtime.sweep()
    dm_to(bot, ALICE, "is done")


def test_a_requester_dm_channel_is_opened_once_not_for_every_dm(bot, fake_slack, fake_sfox):
    """Slack gives the same DM channel for the same person, so the bot asks for it once (a DM
    was three Slack calls: conversations.open, chat.getPermalink, chat.postMessage)."""

    def opened() -> int:
        with fake_slack.lock:
            return sum(1 for method, _ in fake_slack.calls if method == "conversations.open")

    for user in ("dm_a", "dm_b", "dm_c"):
        fake_sfox.add_user(user)
        record, card = open_request(bot, ALICE, user)
        bot.driver.click(BOB, "sfox_approve", str(record.id), card.ts)
        wait_status(bot, record.id, "succeeded")
        dm_to(bot, ALICE, f"#{record.id}", "is done")
    assert opened() == 1


def test_a_dm_channel_that_a_post_failed_on_is_opened_again_for_the_next_try(bot, fake_slack):
    """The channel kept may be the reason the post failed: the retry asks Slack for it anew."""

    def opened() -> int:
        with fake_slack.lock:
            return sum(1 for method, _ in fake_slack.calls if method == "conversations.open")

    assert bot.driver.command(ALICE, "client_2").status_code == 200  # holds funds: a DM, no card
    dm_to(bot, ALICE, "closed before any card")
    assert opened() == 1
    bot.runtime.wait_idle()
    fake_slack.fail("chat.postMessage", "internal_error")  # the next DM's post, once
    assert bot.driver.command(ALICE, "client_2").status_code == 200
    wait_until(lambda: (r := next(iter(bot.store.history(limit=1)), None)) and r.status == "blocked")
    bot.runtime.wait_idle()
    assert len(bot.slack.dms(ALICE)) == 1  # the second one failed
    with bot.store.transaction() as conn:
        conn.execute(update(outbox).values(lease_until=None))  # its backoff is over
    bot.runtime.sweep()
    wait_until(lambda: len(bot.slack.dms(ALICE)) == 2)
    assert opened() == 2
