"""Small helpers shared by the end-to-end tests."""

from __future__ import annotations

import itertools
from typing import Any

from bot.fakes.polling import poll
from bot.fakes.slack_api import Message
from bot.store.records import RequestRecord
from tests.conftest import Bot

_channels = itertools.count(1)


def open_request(
    bot: Bot, requester: str, text: str, channel_id: str | None = None
) -> tuple[RequestRecord, Message]:
    """Run the slash command and wait until the card is posted; return the record and card.

    Each request goes to a channel of its own unless the test names one (or the bot allows only
    some): Slack's pace of about one message a second per channel is kept by the fake in every
    test, and a test about something else should not wait on it. tests/test_slack_rate.py and the
    other pace tests post in one channel on purpose, as do the bots in processes of their own."""
    runtime = getattr(bot, "runtime", None)  # a bot in another process (crash tests) keeps the default
    if channel_id is None and runtime is not None and not runtime.workflow.policy.allowed_channels:
        channel_id = f"C0OPEN{next(_channels):04}"
    before = len(bot.slack.cards())
    response = bot.driver.command(requester, text, channel_id)
    assert response.status_code == 200, response.text
    cards = bot.slack.wait_for(lambda: bot.slack.cards()[before:] or None)
    card = cards[0]
    # The card is in Slack a moment before its ts is stored: wait for the record to say so.
    record = wait_until(
        lambda: (r := next(iter(bot.store.history(limit=1)), None)) and r.message_ts == card.ts and r
    )
    return record, card


def wait_until(predicate: Any, timeout: float = 10.0) -> Any:
    value = poll(predicate, timeout)
    if not value:
        raise AssertionError("condition not reached in time")
    return value


def wait_status(bot: Bot, request_id: int, *statuses: str, timeout: float = 10.0) -> RequestRecord:
    return wait_until(
        lambda: (r := bot.store.get(request_id)) is not None and r.status in statuses and r, timeout
    )


def card_text(message: Message) -> str:
    """All text of a card, flattened, for assertions."""
    parts: list[str] = []
    for block in message.blocks:
        if "text" in block and isinstance(block["text"], dict):
            parts.append(block["text"].get("text", ""))
        for f in block.get("fields", []):
            parts.append(f.get("text", ""))
        for e in block.get("elements", []):
            if isinstance(e.get("text"), str):
                parts.append(e["text"])
            elif isinstance(e.get("text"), dict):
                parts.append(e["text"].get("text", ""))
    return "\n".join(parts)


def buttons(message: Message) -> list[str]:
    return [e["action_id"] for b in message.blocks if b["type"] == "actions" for e in b["elements"]]
