"""Issue 13: `/sfox-deactivate help | status | list`, private answers; and when the approver group
cannot be read, people are told that rather than "you are not on the list"."""

from __future__ import annotations

from bot.slack.subcommands import SUBCOMMANDS
from tests.conftest import ALICE, BOB, MALLORY
from tests.helpers import open_request, wait_status


def answer(bot, user, text):
    response = bot.driver.command(user, text)
    assert response.status_code == 200
    body = response.json()
    assert body["response_type"] == "ephemeral"
    return body["text"]


def test_help(bot):
    text = answer(bot, MALLORY, "help")
    assert "/sfox-deactivate status" in text and "/sfox-deactivate list" in text
    assert bot.slack.cards() == []


def test_status_by_request_id_and_by_sfox_user_id(bot):
    record, card = open_request(bot, ALICE, "client_1 left")
    by_id = answer(bot, BOB, f"status {record.id}")
    assert f"Request #{record.id}" in by_id and "Waiting for approval" in by_id and "0 of 1" in by_id
    bot.driver.click(BOB, "sfox_deny", str(record.id), card.ts, reason="not yet")
    wait_status(bot, record.id, "denied")
    by_user = answer(bot, BOB, "status client_1")
    assert "Denied" in by_user and "not yet" in by_user
    assert "There is no request #999" in answer(bot, BOB, "status 999")
    assert "No request was ever made for `client_7`" in answer(bot, BOB, "status client_7")
    assert "Usage" in answer(bot, BOB, "status")
    assert "not a valid" in answer(bot, BOB, "status bad/../id") or "neither" in answer(
        bot, BOB, "status bad/../id"
    )


def test_list_shows_the_open_requests(bot):
    assert answer(bot, BOB, "list") == "No open requests."
    first, _ = open_request(bot, ALICE, "client_1")
    second, _ = open_request(bot, ALICE, "client_3")
    text = answer(bot, BOB, "LIST")
    assert "Open requests* (2)" in text and f"#{first.id} `client_1`" in text and f"#{second.id}" in text


def test_status_and_list_are_for_approvers_only(bot):
    assert "Only sFOX approvers" in answer(bot, MALLORY, "list")
    assert "Only sFOX approvers" in answer(bot, MALLORY, "status 1")


def test_subcommands_are_one_table():
    assert {"help", "status", "list"} <= set(SUBCOMMANDS)


def test_an_unreadable_approver_group_is_said_as_such(make_bot, fake_slack):
    bot = make_bot(SFOX_APPROVER_GROUP="S0ADMINS", SFOX_APPROVERS="")
    fake_slack.usergroups.pop("S0ADMINS", None)
    fake_slack.fail("usergroups.users.list", "internal_error", times=5)
    text = answer(bot, "UDAVE004", "client_1")
    assert "cannot read the approver group" in text and "not on the sFOX approver list" not in text
    assert bot.slack.cards() == []
