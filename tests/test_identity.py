"""bot/slack/identity.py: the rule that says which messages are the bot's own."""

from __future__ import annotations

import pytest

from bot.slack.identity import is_own_message

ME = ("B1", "UBOT")


@pytest.mark.parametrize(
    ("message", "app_id", "ours"),
    [
        ({"bot_id": "B1", "user": "UBOT"}, "A1", True),  # Slack's documented block_actions message
        ({"bot_id": "B1"}, "A1", True),
        ({"user": "UBOT"}, "A1", True),
        ({"bot_id": "B1", "app_id": "A1"}, "A1", True),
        ({"bot_id": "B1", "app_id": "A9"}, "A1", False),  # names another app
        ({"bot_id": "B1", "app_id": "A1"}, None, False),  # names an app we cannot confirm
        ({"bot_id": "B2", "user": "U2"}, "A1", False),
        ({"user": "UALICE"}, "A1", False),
        ({}, "A1", False),
    ],
)
def test_own_messages(message, app_id, ours):
    assert is_own_message(message, *ME, app_id) is ours


def test_an_unknown_identity_owns_nothing():
    assert not is_own_message({"bot_id": "", "user": ""}, "", "")
    assert not is_own_message({}, None, None)
