"""Issue 13: Deny opens a modal with an optional reason; the reason is recorded, shown on the card
and in the thread; a Deny without the modal still works; SFOX_REQUIRE_REASON asks for a reason."""

from __future__ import annotations

import json

from tests.conftest import ALICE, BOB, MALLORY
from tests.helpers import buttons, card_text, open_request, wait_status, wait_until


def test_deny_with_a_reason_is_recorded_and_shown_on_the_card_and_in_the_thread(bot):
    record, card = open_request(bot, ALICE, "client_1")
    response = bot.driver.click(BOB, "sfox_deny", str(record.id), card.ts, confirm=False)
    assert response.status_code == 200
    modal = bot.driver.modal_for(response.extensions["response_name"])
    assert modal["callback_id"] == "sfox_deny_reason"
    assert bot.store.get(record.id).status == "pending"  # opening the modal changes nothing
    submitted = bot.driver.submit_view(BOB, modal, {"reason": "  not   this one: <!channel> "})
    assert submitted.status_code == 200 and submitted.content in (b"", b"null")
    denied = wait_status(bot, record.id, "denied")
    assert denied.deny_reason == "not this one: <!channel>"
    (event,) = [e for e in bot.store.events_for(record.id) if e.kind == "denied"]
    assert json.loads(event.detail) == {"reason": "not this one: <!channel>"}
    reply = wait_until(lambda: bot.slack.thread(card.ts))[0]
    assert "not this one: &lt;!channel&gt;" in reply.text and "<!channel>" not in reply.text
    message = wait_until(lambda: (m := bot.slack.message(card.ts)) and not buttons(m) and m)
    assert "not this one: &lt;!channel&gt;" in card_text(message)


def test_deny_without_a_reason(bot):
    record, card = open_request(bot, ALICE, "client_1")
    bot.driver.click(BOB, "sfox_deny", str(record.id), card.ts)  # modal submitted empty
    denied = wait_status(bot, record.id, "denied")
    assert denied.deny_reason is None
    reply = wait_until(lambda: bot.slack.thread(card.ts))[0]
    assert "Reason" not in reply.text


def test_when_the_modal_cannot_be_opened_the_click_is_a_plain_deny(bot, fake_slack):
    record, card = open_request(bot, ALICE, "client_1")
    fake_slack.fail("views.open", "internal_error")
    response = bot.driver.click(BOB, "sfox_deny", str(record.id), card.ts)
    assert bot.driver.modal_for(response.extensions["response_name"]) is None
    wait_status(bot, record.id, "denied")


def test_a_non_approver_gets_no_modal_and_is_refused(bot):
    record, card = open_request(bot, ALICE, "client_1")
    response = bot.driver.click(MALLORY, "sfox_deny", str(record.id), card.ts)
    name = response.extensions["response_name"]
    assert bot.driver.modal_for(name) is None
    assert "not on the sFOX approver list" in bot.driver.ephemeral_for(name)[0]
    assert bot.store.get(record.id).status == "pending"


def test_a_modal_submitted_after_someone_else_decided_changes_nothing_and_says_why(bot):
    record, card = open_request(bot, ALICE, "client_1")
    response = bot.driver.click(BOB, "sfox_deny", str(record.id), card.ts, confirm=False)
    modal = bot.driver.modal_for(response.extensions["response_name"])
    bot.driver.click(ALICE, "sfox_deny", str(record.id), card.ts, reason="changed my mind")  # a cancel
    wait_status(bot, record.id, "denied")
    bot.driver.submit_view(BOB, modal, {"reason": "late"})
    answers = bot.driver.ephemeral_for(response.extensions["response_name"])
    assert "was denied by <@UALICE01>" in answers[0]
    assert bot.store.get(record.id).deny_reason == "changed my mind"


def test_a_reason_that_is_too_long_keeps_the_modal_open(bot):
    record, card = open_request(bot, ALICE, "client_1")
    response = bot.driver.click(BOB, "sfox_deny", str(record.id), card.ts, confirm=False)
    modal = bot.driver.modal_for(response.extensions["response_name"])
    answer = bot.driver.submit_view(BOB, modal, {"reason": "x" * 501})
    assert answer.json()["response_action"] == "errors"
    assert bot.store.get(record.id).status == "pending"


def test_required_reason(make_bot):
    bot = make_bot(SFOX_REQUIRE_REASON="true")
    response = bot.driver.command(ALICE, "client_1")
    assert "A reason is required" in response.json()["text"]
    assert bot.slack.cards() == []
    record, _ = open_request(bot, ALICE, "client_1 left the company")
    assert record.reason == "left the company"


def test_a_reason_is_optional_by_default(bot):
    record, _ = open_request(bot, ALICE, "client_1")
    assert record.reason == ""
