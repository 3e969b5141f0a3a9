"""Clicks on the approval card: who may click what, in which state, and what the card, the thread
and sFOX see for every outcome of the DELETE. All through signed block_actions requests."""

from __future__ import annotations

import pytest

from bot.fakes.sfox_api import NONZERO, NOT_FOUND, Fault
from tests.conftest import ALICE, BOB, CAROL, MALLORY
from tests.helpers import buttons, card_text, open_request, wait_status, wait_until
from tests.support import Gate, event_kinds, later_ephemerals

APPROVE, DENY = "sfox_approve", "sfox_deny"


def click(bot, user, action, record, card):
    response = bot.driver.click(user, action, str(record.id), card.ts)
    assert response.status_code == 200, response.text
    return response


def answer_to(bot, response) -> str:
    [text] = later_ephemerals(bot, response)
    return text


def assert_unchanged(bot, record, card) -> None:
    """The click changed nothing: same state, no approval, no sFOX call, card and thread as they were."""
    now = bot.store.get(record.id)
    assert now.status == "pending" and now.approved_by == () and now.denied_by is None
    assert bot.sfox.requests("DELETE") == []
    assert bot.slack.message(card.ts).updates == 0
    assert buttons(bot.slack.message(card.ts)) == [APPROVE, DENY]
    assert bot.slack.thread(card.ts) == []
    assert event_kinds(bot, record.id) == ["requested", "card_posted"]


def final_thread_reply(bot, card, count: int = 1):
    replies = bot.slack.wait_for(
        lambda: len(bot.slack.thread(card.ts)) >= count and bot.slack.thread(card.ts)
    )
    return replies


# -- refusals ------------------------------------------------------------------------------------


@pytest.mark.parametrize("action", [APPROVE, DENY])
def test_non_approver_click_is_refused_and_changes_nothing(bot, action):
    record, card = open_request(bot, ALICE, "client_1 left")
    text = answer_to(bot, click(bot, MALLORY, action, record, card))
    assert "not on the sFOX approver list" in text
    assert_unchanged(bot, record, card)


def test_requester_cannot_approve_their_own_request(bot):
    record, card = open_request(bot, ALICE, "client_1 left")
    text = answer_to(bot, click(bot, ALICE, APPROVE, record, card))
    assert "a second admin must approve" in text
    assert_unchanged(bot, record, card)


def test_click_on_an_unknown_request_says_so(bot):
    record, card = open_request(bot, ALICE, "client_1 left")
    response = bot.driver.click(BOB, APPROVE, "999", card.ts)
    assert "does not exist" in answer_to(bot, response)
    response = bot.driver.click(BOB, APPROVE, "not-a-number", card.ts)
    assert "did not carry a valid request" in answer_to(bot, response)
    assert_unchanged(bot, record, card)


# -- deny ----------------------------------------------------------------------------------------


def test_deny_by_another_approver_denies_and_says_who_in_the_thread(bot):
    record, card = open_request(bot, ALICE, "client_1 left")
    response = click(bot, BOB, DENY, record, card)
    [reply] = final_thread_reply(bot, card)
    assert reply.thread_ts == card.ts
    assert f"<@{BOB}> denied this request from <@{ALICE}>" in reply.text
    assert "was not deactivated" in reply.text
    done = wait_status(bot, record.id, "denied")
    assert done.denied_by == BOB and done.decided_at is not None
    updated = bot.slack.wait_for(lambda: (m := bot.slack.message(card.ts)).updates and m)
    assert buttons(updated) == []
    assert f"Denied* by <@{BOB}>" in card_text(updated)
    assert bot.sfox.requests("DELETE") == []
    assert not [
        e for e in bot.slack.ephemeral if e.get("response_url") == response.extensions["response_name"]
    ]


def test_deny_by_the_requester_is_a_cancel(bot):
    record, card = open_request(bot, ALICE, "client_1 left")
    click(bot, ALICE, DENY, record, card)
    [reply] = final_thread_reply(bot, card)
    assert f"<@{ALICE}> cancelled this request" in reply.text
    done = wait_status(bot, record.id, "denied")
    assert done.denied_by == ALICE
    updated = bot.slack.wait_for(lambda: (m := bot.slack.message(card.ts)).updates and m)
    assert buttons(updated) == []
    assert bot.sfox.requests("DELETE") == []


# -- not pending any more ------------------------------------------------------------------------


@pytest.mark.parametrize("action", [APPROVE, DENY])
def test_click_on_a_denied_card_says_its_state(bot, action):
    record, card = open_request(bot, ALICE, "client_1 left")
    click(bot, BOB, DENY, record, card)
    wait_status(bot, record.id, "denied")
    text = answer_to(bot, click(bot, CAROL, action, record, card))
    assert f"was denied by <@{BOB}>" in text and "your click changed nothing" in text
    assert bot.sfox.requests("DELETE") == []
    assert bot.store.get(record.id).approved_by == ()


@pytest.mark.parametrize("action", [APPROVE, DENY])
def test_click_on_a_deactivated_card_says_its_state(bot, action):
    record, card = open_request(bot, ALICE, "client_1 left")
    click(bot, BOB, APPROVE, record, card)
    wait_status(bot, record.id, "succeeded")
    text = answer_to(bot, click(bot, CAROL, action, record, card))
    assert "is done: the account is deactivated" in text
    assert bot.sfox.deletes["client_1"] == 1
    assert bot.store.get(record.id).status == "succeeded"


@pytest.mark.parametrize("action", [APPROVE, DENY])
def test_click_while_the_deactivation_is_running_says_its_state(bot, fake_sfox, action):
    record, card = open_request(bot, ALICE, "client_1 left")
    with Gate(fake_sfox) as gate:
        click(bot, BOB, APPROVE, record, card)
        gate.wait_arrived()
        text = answer_to(bot, click(bot, CAROL, action, record, card))
        assert "is approved and being deactivated right now" in text
        assert bot.store.get(record.id).status == "executing"
    wait_status(bot, record.id, "succeeded")
    assert fake_sfox.deletes["client_1"] == 1


def test_click_on_a_failed_card_says_its_state(bot):
    # client_late: its balances read zero before the card, and funds arrive before the DELETE.
    record, card = open_request(bot, ALICE, "client_late balances")
    click(bot, BOB, APPROVE, record, card)
    wait_status(bot, record.id, "failed")
    text = answer_to(bot, click(bot, CAROL, APPROVE, record, card))
    assert "has failed; see its thread" in text
    assert bot.sfox.deletes["client_late"] == 1


# -- approve -------------------------------------------------------------------------------------


def test_approve_updates_the_card_at_once_then_deletes_then_replies_in_thread(bot, fake_sfox):
    record, card = open_request(bot, ALICE, "client_1 left the company")
    with Gate(fake_sfox) as gate:
        click(bot, BOB, APPROVE, record, card)
        gate.wait_arrived()
        # The DELETE is on its way and unanswered: the card already says so, without buttons.
        updated = bot.slack.wait_for(lambda: (m := bot.slack.message(card.ts)).updates and m)
        assert buttons(updated) == []
        text = card_text(updated)
        assert "deactivating" in text and f"approved by <@{BOB}>" in text
        assert bot.slack.thread(card.ts) == []
        assert bot.store.get(record.id).status == "executing"
    [reply] = final_thread_reply(bot, card)
    assert reply.thread_ts == card.ts and reply.channel == card.channel
    assert f"<@{ALICE}>" in reply.text
    assert "`client_1` is deactivated" in reply.text
    done = wait_status(bot, record.id, "succeeded")
    assert done.http_status == 200 and done.error is None and done.approved_by == (BOB,)
    final = bot.slack.wait_for(lambda: "Deactivated on sFOX" in card_text(bot.slack.message(card.ts)))
    assert final
    assert buttons(bot.slack.message(card.ts)) == []
    [delete] = fake_sfox.requests("DELETE")
    assert delete.raw_path == "/v1/enterprise/account/client_1"
    assert "client_1" in fake_sfox.deactivated


def test_two_required_approvals_need_two_distinct_approvers_other_than_the_requester(make_bot, fake_sfox):
    bot = make_bot(SFOX_REQUIRED_APPROVALS="2")
    record, card = open_request(bot, ALICE, "client_1 left")
    assert "(0 of 2 approvals)" in card_text(card)

    text = answer_to(bot, click(bot, BOB, APPROVE, record, card))
    assert "Approval recorded. 1 more approval(s) needed." in text
    bot.slack.wait_for(lambda: "(1 of 2 approvals)" in card_text(bot.slack.message(card.ts)))
    assert buttons(bot.slack.message(card.ts)) == [APPROVE, DENY]

    assert "already approved" in answer_to(bot, click(bot, BOB, APPROVE, record, card))
    assert "a second admin must approve" in answer_to(bot, click(bot, ALICE, APPROVE, record, card))
    assert "not on the sFOX approver list" in answer_to(bot, click(bot, MALLORY, APPROVE, record, card))
    still = bot.store.get(record.id)
    assert still.status == "pending" and still.approved_by == (BOB,)
    assert fake_sfox.requests("DELETE") == []

    click(bot, CAROL, APPROVE, record, card)
    done = wait_status(bot, record.id, "succeeded")
    assert done.approved_by == (BOB, CAROL)
    assert fake_sfox.deletes["client_1"] == 1
    bot.slack.wait_for(lambda: f"approved by <@{BOB}>, <@{CAROL}>" in card_text(bot.slack.message(card.ts)))
    [reply] = final_thread_reply(bot, card)
    assert f"<@{ALICE}>" in reply.text and "is deactivated" in reply.text


def test_deny_after_a_first_approval_still_stops_it(make_bot, fake_sfox):
    bot = make_bot(SFOX_REQUIRED_APPROVALS="2")
    record, card = open_request(bot, ALICE, "client_1 left")
    click(bot, BOB, APPROVE, record, card)
    wait_until(lambda: bot.store.get(record.id).approved_by == (BOB,))
    click(bot, CAROL, DENY, record, card)
    assert wait_status(bot, record.id, "denied").denied_by == CAROL
    assert "was denied" in answer_to(bot, click(bot, CAROL, APPROVE, record, card))
    assert fake_sfox.requests("DELETE") == []


# -- outcomes of the DELETE ----------------------------------------------------------------------


OUTCOMES = {
    # name: (user, faults, expected texts in the reply and the card, http status, retryable)
    # funds arrived after the card (the balance check read zero): sFOX refuses the DELETE
    "422 non-zero balance": ("client_late", [], [NONZERO], 422, False),
    "401 bad key": (
        "client_1",
        [Fault(status=401, body={"error": "invalid api key"})],
        ["rejected the API key (401): check SFOX_API_KEY", "invalid api key"],
        401,
        False,
    ),
    "403 not allowed": (
        "client_1",
        [Fault(status=403, body={"error": "Forbidden"})],
        ["not allowed to do this (403)"],
        403,
        False,
    ),
    "429 rate limited": (
        "client_1",
        [Fault(status=429, body={"error": "Too many requests"}, headers={"Retry-After": "60"})],
        ["rate limiting us (429)"],
        429,
        True,
    ),
    "503 maintenance, empty body": (
        "client_1",
        [Fault(status=503, body=b"") for _ in range(3)],
        ["down for maintenance (503)"],
        503,
        True,
    ),
    "500 internal error": (
        "client_1",
        [Fault(status=500, body={"error": "Internal error"}) for _ in range(3)],
        ["internal error (500)"],
        500,
        True,
    ),
}


@pytest.mark.parametrize("name", list(OUTCOMES))
def test_failed_delete_is_reported_in_thread_and_on_card(bot, fake_sfox, name):
    user, faults, texts, status, retryable = OUTCOMES[name]
    record, card = open_request(bot, ALICE, f"{user} left")
    fake_sfox.script(*faults)
    click(bot, BOB, APPROVE, record, card)
    done = wait_status(bot, record.id, "failed")
    assert done.http_status == status and done.retryable is retryable
    [reply] = final_thread_reply(bot, card)
    assert reply.thread_ts == card.ts
    assert reply.text.startswith(f":x: <@{ALICE}> sFOX did not deactivate `{user}`: HTTP {status}: ")
    final = bot.slack.wait_for(lambda: "Not deactivated" in card_text(m := bot.slack.message(card.ts)) and m)
    for text in texts:
        assert text in reply.text
        assert text in card_text(final)
        assert text in done.error
    assert buttons(final) == (["sfox_retry"] if retryable else [])
    assert user not in fake_sfox.deactivated
    # 429 with a long Retry-After and non-retryable statuses are asked once; 5xx up to
    # SFOX_MAX_ATTEMPTS (3 here) times, each time with nothing changed on sFOX.
    expected_calls = 3 if status >= 500 else 1
    assert len(fake_sfox.requests("DELETE")) == expected_calls


def test_delete_404_carries_sfox_text(bot, fake_sfox):
    record, card = open_request(bot, ALICE, "client_1 left")
    fake_sfox.deactivated.add("client_1")  # deactivated elsewhere while the card waited
    click(bot, BOB, APPROVE, record, card)
    done = wait_status(bot, record.id, "failed")
    assert (done.http_status, done.error) == (404, NOT_FOUND)
    [reply] = final_thread_reply(bot, card)
    assert f"HTTP 404: {NOT_FOUND}" in reply.text and f"<@{ALICE}>" in reply.text
    bot.slack.wait_for(lambda: NOT_FOUND in card_text(bot.slack.message(card.ts)))
    assert fake_sfox.deletes["client_1"] == 1


def test_delete_timeout_is_reported_and_settled_by_a_lookup_not_a_second_delete(make_bot, fake_sfox):
    bot = make_bot(SFOX_TIMEOUT_SECONDS="0.5")
    record, card = open_request(bot, ALICE, "client_1 left")
    fake_sfox.script(Fault(delay=2))  # never answered in time, and not applied
    click(bot, BOB, APPROVE, record, card)
    done = wait_status(bot, record.id, "failed")
    first, second = final_thread_reply(bot, card, 2)[:2]
    assert f"<@{ALICE}>" in first.text and "did not answer in time" in first.text
    assert "it will not be sent twice" in first.text
    assert f"<@{ALICE}>" in second.text and "still exists" in second.text
    assert done.retryable is True
    assert len(fake_sfox.requests("DELETE")) == 1
    assert "client_1" not in fake_sfox.deactivated


def test_delete_applied_but_answer_lost_is_settled_as_succeeded(bot, fake_sfox):
    record, card = open_request(bot, ALICE, "client_1 left")
    fake_sfox.script(Fault(apply=True, drop=True))
    click(bot, BOB, APPROVE, record, card)
    done = wait_status(bot, record.id, "succeeded")
    assert fake_sfox.deletes["client_1"] == 1
    replies = final_thread_reply(bot, card, 2)
    assert "confirmed: sFOX no longer knows the account" in replies[-1].text
    assert done.status == "succeeded"


def test_a_500_whose_delete_did_happen_is_not_reported_as_a_failure(bot, fake_sfox):
    """sFOX may fail after acting; the retried DELETE then answers 404. That is not a failure."""
    record, card = open_request(bot, ALICE, "client_1 left")
    fake_sfox.script(Fault(status=500, apply=True, body={"error": "Internal error"}))
    click(bot, BOB, APPROVE, record, card)
    done = wait_status(bot, record.id, "succeeded", "failed")
    assert done.status == "succeeded", done.error
    assert "client_1" in fake_sfox.deactivated
    first, second = final_thread_reply(bot, card, 2)
    assert "after an earlier attempt failed with a server error" in first.text
    assert "is deactivated (confirmed: sFOX no longer knows the account)" in second.text
    assert len(fake_sfox.requests("DELETE")) == 2


def test_delete_502_from_a_proxy_is_reported_and_settled_by_a_lookup(bot, fake_sfox):
    record, card = open_request(bot, ALICE, "client_1 left")
    page = "<html><body><h1>502 Bad Gateway</h1></body></html>"
    fake_sfox.script(Fault(status=502, body=page, headers={"Content-Type": "text/html"}))
    click(bot, BOB, APPROVE, record, card)
    done = wait_status(bot, record.id, "failed")
    first, second = final_thread_reply(bot, card, 2)[:2]
    assert "a proxy in front of sFOX failed (502), with an HTML page" in first.text
    assert "may or may not have happened" in first.text and "<html>" not in first.text
    assert f"<@{ALICE}>" in second.text and "still exists" in second.text
    assert done.retryable is True and done.http_status == 502
    assert len(fake_sfox.requests("DELETE")) == 1  # a 502 may have gone through: never resent
