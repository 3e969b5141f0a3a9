"""An approver group outage (SFOX_APPROVER_GROUP unreadable) is said as such on every entry point,
batches included, never as "you are not on the sFOX approver list"; and nothing changes. Through
the real fakes: signed Slack requests, a fake Slack whose `usergroups.users.list` fails."""

from __future__ import annotations

import json

from bot.slack.batch_card import BATCH_APPROVE, BATCH_DENY
from tests.conftest import ALICE, MALLORY
from tests.helpers import wait_until
from tests.test_batches import add_users, ask, batch_cards, batch_id_of

DAVE = "UDAVE004"
GROUP = "S0ADMINS"
OUTAGE = "cannot read the approver group"
NOT_LISTED = "not on the sFOX approver list"


def group_bot(make_bot, fake_slack):
    """ALICE is a fixed approver; DAVE is an approver only through the group."""
    fake_slack.usergroups[GROUP] = [DAVE]
    return make_bot(SFOX_APPROVER_GROUP=GROUP, SFOX_APPROVERS=ALICE, SFOX_BALANCE_CHECK="off")


def break_group(fake_slack):
    fake_slack.fail("usergroups.users.list", "missing_scope", times=1000)


def assert_outage(text):
    assert OUTAGE in text and "missing_scope" in text
    assert NOT_LISTED not in text


def test_an_inline_batch_during_the_outage_is_told_so(make_bot, fake_slack, fake_sfox):
    bot = group_bot(make_bot, fake_slack)
    ids = add_users(fake_sfox, 2)
    break_group(fake_slack)
    response = bot.driver.command(DAVE, "batch " + ",".join(ids) + " cohort closed")
    assert response.status_code == 200
    assert_outage(response.json()["text"])
    assert batch_cards(bot) == [] and fake_sfox.requests() == []
    assert not list(bot.store.history(limit=None))


def test_the_batch_form_during_the_outage_is_told_so(make_bot, fake_slack, fake_sfox):
    bot = group_bot(make_bot, fake_slack)
    ids = add_users(fake_sfox, 2)
    # A form opened by a fixed approver, to be submitted by a group member during the outage.
    bot.driver.command(ALICE, "batch")
    form = wait_until(lambda: fake_slack.opened_views)[0]["view"]
    break_group(fake_slack)
    # Asking for the form.
    response = bot.driver.command(DAVE, "batch")
    assert_outage(response.json()["text"])
    assert len(fake_slack.opened_views) == 1
    # Submitting one.
    values = {
        "ids": {"value": {"type": "plain_text_input", "value": "\n".join(ids)}},
        "reason": {"value": {"type": "plain_text_input", "value": "from the form"}},
    }
    answer = bot.driver.view_submission(DAVE, form, values)
    assert answer.status_code == 200
    assert_outage(json.loads(answer.text)["errors"]["ids"].replace("`", ""))
    assert batch_cards(bot) == [] and fake_sfox.requests() == []
    assert not list(bot.store.history(limit=None))


def test_batch_card_clicks_during_the_outage_are_told_so_and_change_nothing(make_bot, fake_slack, fake_sfox):
    bot = group_bot(make_bot, fake_slack)
    ids = add_users(fake_sfox, 2)
    _answer, card, _ = ask(bot, ALICE, "batch " + ",".join(ids) + " cohort closed")
    bid = batch_id_of(card)
    break_group(fake_slack)
    for action in (BATCH_APPROVE, BATCH_DENY):
        click = bot.driver.click(DAVE, action, str(bid), card.ts)
        assert click.status_code == 200
        assert_outage(bot.driver.ephemeral_for(click.extensions["response_name"])[0])
    # An outsider during the same outage: we cannot know either, so the same answer.
    click = bot.driver.click(MALLORY, BATCH_APPROVE, str(bid), card.ts)
    assert_outage(bot.driver.ephemeral_for(click.extensions["response_name"])[0])
    rows = list(bot.store.history(limit=None, batch_id=bid))
    assert {r.status for r in rows} == {"pending"} and all(r.approved_by == () for r in rows)
    assert fake_sfox.deletes == {}
