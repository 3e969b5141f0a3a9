"""Slack pages `conversations.history` and `conversations.replies`: a page holds at most `limit`
messages and may hold fewer (the fake never gives more than 10), and `next_cursor` leads on. The
bot's two reads of Slack's past, the lost-card search and the reply de-duplication, must find
what they look for past the first page."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from sqlalchemy import select, update

from bot.fakes.slack_api import FakeSlack
from bot.requests.base import CARDLESS_GRACE
from bot.store.schema import outbox
from tests.conftest import ALICE, BOB, BOT_TOKEN, checked_slack
from tests.helpers import open_request, wait_status


@pytest.fixture
def fake_slack() -> Iterator[FakeSlack]:
    yield from checked_slack(clock_ts=True)  # Slack's timestamps: in the card's window


def _pages_read(fake: FakeSlack, method: str) -> int:
    return sum(1 for m, _ in fake.calls if m == method)


def test_the_fake_pages_as_slack_does(fake_slack):
    """Through the Web API client: 25 messages come in pages of at most 10, newest first, and the
    cursors lead through all of them; a made-up cursor is refused."""
    channel = "C0PAGES01"
    sent = [fake_slack.say(channel, f"message {i}") for i in range(25)]
    client = WebClient(token=BOT_TOKEN, base_url=fake_slack.api_url)
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        page = client.conversations_history(channel=channel, limit=200, cursor=cursor).data
        pages += 1
        assert len(page["messages"]) <= 10
        seen += [m["ts"] for m in page["messages"]]
        cursor = page["response_metadata"]["next_cursor"]
        assert page["has_more"] == bool(cursor)
        if not cursor:
            break
    assert seen == list(reversed(sent)) and pages == 3
    with pytest.raises(SlackApiError) as refused:
        client.conversations_history(channel=channel, cursor="bm90IGEgY3Vyc29y")
    assert refused.value.response["error"] == "invalid_cursor"


def test_the_sweep_finds_a_lost_card_under_thirty_newer_messages(bot, fake_slack):
    """The bot died between posting a card and recording its ts; meanwhile people kept talking in
    the channel. The card is on the fourth page of the channel's history: the sweep still adopts
    it instead of closing its request."""
    record = bot.store.create_request(
        sfox_user_id="client_1",
        reason="lost under chatter",
        requested_by=ALICE,
        channel_id=bot.driver.channel_id,
        required_approvals=1,
        target_name="Ada Lovelace",
        target_email="ada@example.com",
        target_status="VERIFIED",
        now=datetime.now(UTC),
        ttl=timedelta(hours=1),
    )
    ts = bot.runtime.workflow.notifier.post_card(record)
    for i in range(30):
        fake_slack.say(bot.driver.channel_id, f"chatter {i}")
    later = datetime.now(UTC) + CARDLESS_GRACE + timedelta(seconds=30)
    bot.runtime.workflow.now = lambda: later

    summary = bot.runtime.sweep()

    assert summary["adopted"] == 1 and summary["abandoned"] == 0
    assert bot.store.get(record.id).message_ts == ts
    assert _pages_read(fake_slack, "conversations.history") == 4


def test_a_reply_already_deep_in_a_long_thread_is_not_posted_again(bot, fake_slack):
    """A Deny's thread reply went out but its sending was never recorded (the answer was lost);
    25 people had commented first. Sent again by the sweep, the bot reads the whole thread, finds
    its reply on the third page, and does not post it a second time."""
    record, card = open_request(bot, ALICE, "client_1 long thread")
    for i in range(25):
        fake_slack.say(card.channel, f"comment {i}", thread_ts=card.ts)
    fake_slack.fail("chat.postMessage", "ratelimited")  # the reply is owed, tried once
    bot.driver.click(BOB, "sfox_deny", str(record.id), card.ts)
    wait_status(bot, record.id, "denied")
    bot.runtime.wait_idle()
    with bot.store.transaction() as conn:
        (text,) = conn.execute(
            select(outbox.c.text).where(outbox.c.request_id == record.id, outbox.c.kind == "reply")
        ).one()
    denied = bot.store.get(record.id)
    bot.runtime.workflow.notifier.reply(denied, text)  # it had gone out after all
    with bot.store.transaction() as conn:
        conn.execute(update(outbox).values(lease_until=None))  # its backoff is over

    bot.runtime.sweep()

    assert [m.text for m in fake_slack.thread(card.ts)].count(text) == 1
    assert _pages_read(fake_slack, "conversations.replies") == 3
    with bot.store.transaction() as conn:
        sent = conn.execute(
            select(outbox.c.sent_at).where(outbox.c.request_id == record.id, outbox.c.kind == "reply")
        ).scalar_one()
    assert sent is not None
