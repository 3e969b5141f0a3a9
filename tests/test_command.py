"""`/sfox-deactivate <sfox_user_id> [reason…]`: who may run it, what a bad id gets, what the sFOX
lookup decides, and what the approval card shows. Everything goes through signed HTTP requests
to the running bot; the fakes are real HTTP servers."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from bot.fakes.sfox_api import Fault
from bot.store.schema import requests
from tests.conftest import ALICE, BOB, MALLORY
from tests.helpers import buttons, card_text, open_request
from tests.support import ack_text, closed_port_url, later_ephemerals, slack_posts


def request_count(bot) -> int:
    with bot.store.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(requests)).scalar_one()


def assert_nothing_happened(bot) -> None:
    """No sFOX call, no Slack message, nothing recorded; then a valid command still works, which
    proves no work was queued behind the refusal (it would have reached the fakes first)."""
    assert bot.sfox.requests() == []
    assert slack_posts(bot, "chat.postMessage") == []
    assert request_count(bot) == 0
    record, _ = open_request(bot, ALICE, "client_3 barrier")
    assert [r.raw_path for r in bot.sfox.requests()] == [
        "/v1/enterprise/users/client_3",
        "/v1/enterprise/user-tokens/client_3",
        "/v1/user/balance",
    ]
    assert request_count(bot) == 1 and record.sfox_user_id == "client_3"


def test_non_approver_is_refused_and_nothing_is_posted_or_called(bot):
    response = bot.driver.command(MALLORY, "client_1 he left")
    text = ack_text(response)
    assert "not on the sFOX approver list" in text
    assert_nothing_happened(bot)


@pytest.mark.parametrize("text", ["", "   ", "\t"])
def test_missing_user_id_gets_usage(bot, text):
    answer = ack_text(bot.driver.command(ALICE, text))
    assert "Which sFOX user?" in answer
    assert (
        "Usage: `/sfox-deactivate &lt;sfox_user_id&gt; [reason] [--when-empty | --at &lt;when&gt;]`" in answer
    )  # escaped: Slack would eat <...>
    assert_nothing_happened(bot)


@pytest.mark.parametrize(
    ("text", "why"),
    [
        (".", "'.' and '..' are not user ids"),
        ("..", "'.' and '..' are not user ids"),
        ("../admin", "may not contain '/'"),
        ("a/b", "may not contain '/'"),
        ("a?b=1", "may not contain '=', '?'"),
        ("a#frag", "may not contain '#'"),
        ("a%2Fb", "may not contain '%'"),
        ("ab\x07c", "may not contain '\\x07'"),
        ("ab\x00c", "may not contain '\\x00'"),
        ("<@U0123ABC>", "that is a Slack mention"),
        ("<!channel>", "that is a Slack mention"),
        ("<#C0123|ops>", "that is a Slack mention"),
        ("<https://evil.example|client_1>", "Slack formatting is not allowed"),
        ("<mailto:a@b.com|c@d.com>", "the e-mail link's text and address differ"),
        ("-client", "must start and end with a letter, digit or '_'"),
        ("client.", "must start and end with a letter, digit or '_'"),
        ("ü" * 3, "may not contain 'ü'"),
        ("a" * 129, "at most 128 characters"),
    ],
)
def test_invalid_user_id_gets_usage_saying_what_is_wrong(bot, text, why):
    answer = ack_text(bot.driver.command(ALICE, text + " some reason"))
    assert "is not a valid sFOX user id" in answer
    assert why in answer
    assert "Usage:" in answer
    assert "<!channel>" not in answer and "<@U0123ABC>" not in answer  # echoed inertly
    assert_nothing_happened(bot)


def test_unknown_user_on_sfox_gets_no_such_user_and_no_card(bot):
    response = bot.driver.command(ALICE, "ghost_42 gone")
    assert "Looking up `ghost_42`" in ack_text(response)
    [answer] = later_ephemerals(bot, response)
    assert "no such sfox user" in answer.lower()
    assert "`ghost_42`" in answer
    assert [(r.method, r.raw_path) for r in bot.sfox.requests()] == [("GET", "/v1/enterprise/users/ghost_42")]
    assert slack_posts(bot, "chat.postMessage") == []
    assert request_count(bot) == 0


def test_sfox_unreachable_gets_an_error_and_no_card(make_bot):
    bot = make_bot(SFOX_API_URL=closed_port_url(), SFOX_MAX_ATTEMPTS="2", SFOX_TIMEOUT_SECONDS="3")
    response = bot.driver.command(ALICE, "client_1 gone")
    ack_text(response)
    [answer] = later_ephemerals(bot, response)
    assert "Could not look `client_1` up on sFOX" in answer
    assert "could not connect to sFOX" in answer
    assert "Nothing was posted" in answer
    assert slack_posts(bot, "chat.postMessage") == []
    assert request_count(bot) == 0


def test_sfox_rejecting_the_key_at_lookup_says_so_and_posts_no_card(make_bot):
    bot = make_bot(SFOX_API_KEY="not-the-right-key")
    response = bot.driver.command(ALICE, "client_1 gone")
    [answer] = later_ephemerals(bot, response)
    assert "401" in answer and "SFOX_API_KEY" in answer
    assert "not-the-right-key" not in answer
    assert slack_posts(bot, "chat.postMessage") == []


def test_sfox_failing_at_lookup_gives_a_clear_error_and_no_card(make_bot, fake_sfox):
    bot = make_bot(SFOX_MAX_ATTEMPTS="2")
    fake_sfox.script(*[Fault(method="GET", status=503, body="") for _ in range(2)])
    response = bot.driver.command(ALICE, "client_1 gone")
    [answer] = later_ephemerals(bot, response)
    assert "maintenance (503)" in answer
    assert len(fake_sfox.requests("GET")) == 2  # 503 is retried, within SFOX_MAX_ATTEMPTS
    assert slack_posts(bot, "chat.postMessage") == []


def test_sfox_lookup_timeout_gives_a_clear_error_and_no_card(make_bot, fake_sfox):
    bot = make_bot(SFOX_TIMEOUT_SECONDS="0.5", SFOX_MAX_ATTEMPTS="1")
    fake_sfox.script(Fault(method="GET", delay=2))
    response = bot.driver.command(ALICE, "client_1 gone")
    [answer] = later_ephemerals(bot, response)
    assert "did not answer in time" in answer
    assert slack_posts(bot, "chat.postMessage") == []
    assert request_count(bot) == 0


def test_card_shows_everything_the_approvers_need(make_bot):
    bot = make_bot(SFOX_REQUEST_TTL_SECONDS="7200")
    record, card = open_request(bot, ALICE, "client_1   left the company,   ticket 42 ")
    assert card.channel == record.channel_id
    assert card.thread_ts is None
    text = card_text(card)
    assert "`client_1`" in text
    assert "Ada Lovelace" in text
    assert "ada@example.com" in text
    assert "VERIFIED" in text
    assert f"<@{ALICE}>" in text
    assert "left the company, ticket 42" in text
    # Expiry: a Slack date token for created_at + TTL, with a readable fallback.
    assert record.expires_at - record.created_at == timedelta(seconds=7200)
    assert f"*Expires*\n<!date^{int(record.expires_at.timestamp())}^" in text
    assert record.expires_at.strftime("%Y-%m-%d %H:%M UTC") in text

    assert buttons(card) == ["sfox_approve", "sfox_deny"]
    [actions] = [b for b in card.blocks if b["type"] == "actions"]
    approve, deny = actions["elements"]
    assert approve["style"] == "primary" and approve["value"] == str(record.id)
    confirm = approve["confirm"]
    assert "cannot be undone" in confirm["text"]["text"]
    assert "permanent" in confirm["title"]["text"].lower()
    assert confirm["confirm"]["text"] and confirm["deny"]["text"]
    assert deny["style"] == "danger" and deny["value"] == str(record.id)
    assert "confirm" not in deny

    assert record.status == "pending"
    assert record.message_ts == card.ts
    assert record.reason == "left the company, ticket 42"
    assert (record.target_name, record.target_email, record.target_status) == (
        "Ada Lovelace",
        "ada@example.com",
        "VERIFIED",
    )


def test_card_without_reason_says_none_given(bot):
    _, card = open_request(bot, BOB, "client_3")
    assert "*Reason*\n_none given_" in card_text(card)
    assert "Alan Turing" in card_text(card) and "PENDING" in card_text(card)


def test_reason_may_follow_the_id_on_a_new_line_or_after_a_tab(bot):
    record, _ = open_request(bot, ALICE, "client_1\nleft the company\tyesterday")
    assert record.sfox_user_id == "client_1"
    assert record.reason == "left the company yesterday"


def test_a_second_request_for_the_same_user_is_refused_while_one_is_open(bot):
    first, _ = open_request(bot, ALICE, "client_1 first")
    response = bot.driver.command(BOB, "client_1 second")
    [answer] = later_ephemerals(bot, response)
    assert "already open" in answer and f"#{first.id}" in answer
    assert len(slack_posts(bot, "chat.postMessage")) == 1
    assert request_count(bot) == 1


def test_card_that_slack_refuses_closes_the_request_and_tells_why(bot, fake_slack):
    fake_slack.fail("chat.postMessage", "not_in_channel")
    response = bot.driver.command(ALICE, "client_1 gone")
    [answer] = later_ephemerals(bot, response)
    assert "not_in_channel" in answer and "/invite" in answer
    [record] = list(bot.store.history())
    assert record.status == "failed" and record.message_ts is None
    assert "not_in_channel" in (record.error or "")


def test_unsigned_forged_or_stale_requests_are_refused_and_change_nothing(bot):
    body, _ = bot.driver.command_body(ALICE, "client_1 forged")
    forged = bot.driver.post(body, "application/x-www-form-urlencoded", signature="v0=" + "0" * 64)
    assert forged.status_code == 401
    stale = bot.driver.post(body, "application/x-www-form-urlencoded", timestamp=str(int(time.time()) - 600))
    assert stale.status_code == 401
    click, _ = bot.driver.click_body(BOB, "sfox_approve", "1")
    assert bot.driver.post(click, "application/x-www-form-urlencoded", signature="v0=bad").status_code == 401
    assert_nothing_happened(bot)
