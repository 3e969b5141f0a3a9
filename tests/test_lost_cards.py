"""A card the bot posted but never recorded (it died in between; see test_crash_points.py for the
real kill): a click on it or the sweep finds it, so no button stays live for a closed request and
the outcome reaches the card's thread."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlencode

import pytest

from bot.fakes.slack_api import APP_ID, FakeSlack
from bot.requests.base import CARDLESS_GRACE
from tests.conftest import ALICE, BOB, checked_slack
from tests.helpers import buttons, card_text, wait_status, wait_until


@pytest.fixture
def fake_slack() -> Iterator[FakeSlack]:
    yield from checked_slack(clock_ts=True)


def _orphan(bot, user: str = "client_1"):
    """What a bot killed right after posting the card leaves: a pending request without a ts,
    and its card, with live buttons, in the channel."""
    record = bot.store.create_request(
        sfox_user_id=user,
        reason="the bot died after posting the card",
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
    assert buttons(bot.slack.message(ts)) == ["sfox_approve", "sfox_deny"]
    return record, ts


def _later(bot, delta: timedelta) -> None:
    bot.runtime.workflow.now = lambda: datetime.now(UTC) + delta


def test_the_sweep_adopts_a_lost_card_instead_of_closing_its_request(bot):
    record, ts = _orphan(bot)
    _later(bot, CARDLESS_GRACE + timedelta(seconds=30))
    summary = bot.runtime.sweep()
    assert summary["adopted"] == 1 and summary["abandoned"] == 0
    adopted = bot.store.get(record.id)
    assert adopted.status == "pending" and adopted.message_ts == ts
    events = bot.store.events_for(record.id)
    assert events[-1].kind == "card_adopted" and '"found_by": "sweep"' in events[-1].detail
    # The card works as any other from here on.
    bot.runtime.workflow.now = lambda: datetime.now(UTC)
    bot.driver.click(BOB, "sfox_approve", str(record.id), ts)
    wait_status(bot, record.id, "succeeded")
    bot.slack.wait_for(lambda: "is deactivated" in " ".join(m.text for m in bot.slack.thread(ts)))
    assert bot.sfox.deletes["client_1"] == 1


def test_a_card_from_another_app_or_channel_is_not_taken(bot, fake_slack):
    record, _ts = _orphan(bot)
    # The only message with this request's buttons was posted by someone else.
    fake_slack.messages[-1].bot_id = "BSOMEONE"
    fake_slack.messages[-1].user = "USOMEONE"
    _later(bot, CARDLESS_GRACE + timedelta(seconds=30))
    assert bot.runtime.sweep()["abandoned"] == 1
    assert bot.store.get(record.id).message_ts is None


def test_a_click_on_a_lost_card_of_a_closed_request_removes_its_buttons(bot, fake_slack):
    record, ts = _orphan(bot)
    # The sweep cannot read the channel, so it closes the request without finding the card.
    fake_slack.fail("conversations.history", "missing_scope")
    _later(bot, CARDLESS_GRACE + timedelta(seconds=30))
    assert bot.runtime.sweep()["abandoned"] == 1
    bot.runtime.workflow.now = lambda: datetime.now(UTC)
    assert buttons(fake_slack.message(ts)) == ["sfox_approve", "sfox_deny"]  # still live

    response = bot.driver.click(BOB, "sfox_approve", str(record.id), ts)
    answer = bot.driver.ephemeral_for(response.extensions["response_name"])
    assert "has failed" in answer[0] and "changed nothing" in answer[0]
    card = fake_slack.wait_for(lambda: (m := fake_slack.message(ts)) and not buttons(m) and m)
    assert "Not deactivated" in card_text(card)
    reply = fake_slack.wait_for(lambda: fake_slack.thread(ts))
    assert "was closed meanwhile" in reply[0].text and "Nothing was sent to sFOX" in reply[0].text
    assert bot.sfox.requests("DELETE") == []


def test_a_click_on_a_lost_card_of_a_pending_request_counts(bot, fake_slack):
    record, ts = _orphan(bot)
    response = bot.driver.click(BOB, "sfox_deny", str(record.id), ts)
    wait_status(bot, record.id, "denied")
    assert bot.store.get(record.id).message_ts == ts
    assert bot.driver.ephemeral_for(response.extensions["response_name"])
    fake_slack.wait_for(lambda: (m := fake_slack.message(ts)) and not buttons(m))
    fake_slack.wait_for(lambda: any("denied" in m.text for m in fake_slack.thread(ts)))


def _click_with_message(bot, record, ts, **message_fields):
    """A Deny click on `ts` whose payload's `message` is changed by `message_fields` (a field
    set to None is left out), confirmed in its dialog."""
    body, name = bot.driver.click_body(BOB, "sfox_deny", str(record.id), ts)
    payload = json.loads(parse_qs(body.decode())["payload"][0])
    assert "app_id" not in payload["message"]  # as in Slack's documented payloads
    for key, value in message_fields.items():
        if value is None:
            payload["message"].pop(key, None)
        else:
            payload["message"][key] = value
    bot.driver.post(urlencode({"payload": json.dumps(payload)}).encode(), "application/x-www-form-urlencoded")
    bot.driver.submit_view(BOB, bot.driver.modal_for(name), {})  # the Deny dialog, confirmed
    wait_status(bot, record.id, "denied")  # the click counts either way: it came signed from Slack
    wait_until(lambda: bot.runtime.wait_idle())
    return bot.store.get(record.id)


def test_a_click_from_a_message_that_is_not_the_bots_is_not_adopted(bot, fake_slack):
    record, ts = _orphan(bot)
    left = _click_with_message(bot, record, ts, bot_id="BSOMEONE", user="USOMEONE")
    assert left.message_ts is None  # that message is not the card


def test_a_message_that_names_another_app_is_not_adopted(bot, fake_slack):
    """`app_id` is not always sent; where it is, it must be this app's."""
    record, ts = _orphan(bot)
    assert _click_with_message(bot, record, ts, app_id="A9").message_ts is None


def test_a_message_that_names_this_app_is_adopted(bot, fake_slack):
    record, ts = _orphan(bot)
    assert _click_with_message(bot, record, ts, app_id=APP_ID).message_ts == ts


def test_the_bot_user_alone_recognises_the_card(bot, fake_slack):
    """A message that carries the bot's user but no `bot_id` is still the bot's own."""
    record, ts = _orphan(bot)
    assert _click_with_message(bot, record, ts, bot_id=None).message_ts == ts


def test_a_button_of_another_request_does_not_adopt_the_message(bot, fake_slack):
    """The button must carry this request's block id: a message of the bot's that is not this
    request's card (say, another request's card) is not taken."""
    record, ts = _orphan(bot)
    body, name = bot.driver.click_body(BOB, "sfox_deny", str(record.id), ts)
    payload = json.loads(parse_qs(body.decode())["payload"][0])
    payload["actions"][0]["block_id"] = "sfox_request_999"
    bot.driver.post(urlencode({"payload": json.dumps(payload)}).encode(), "application/x-www-form-urlencoded")
    bot.driver.submit_view(BOB, bot.driver.modal_for(name), {})
    wait_status(bot, record.id, "denied")
    wait_until(lambda: bot.runtime.wait_idle())
    assert bot.store.get(record.id).message_ts is None
