"""Which Slack messages are this bot's own.

A card the bot posted but never recorded (the process died in between) may be adopted as its
request's card, so the rule that says "this message is ours" guards what a click or the sweep may
take. It reads only what Slack always sends with a message: the poster's `bot_id` and, for a bot
token, its bot `user` (both as `auth.test` names them). `app_id` is sent only sometimes (Slack's
documented `block_actions` examples and `conversations.history` results often lack it), so it is
checked only where present: a message that names another app is never ours.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def is_own_message(
    message: Mapping[str, Any],
    bot_id: str | None,
    bot_user_id: str | None,
    app_id: str | None = None,
) -> bool:
    """Whether `message` was posted by this bot (`bot_id` and `bot_user_id` from `auth.test`;
    `app_id` this app's id, when known)."""
    by_bot = bool(bot_id) and message.get("bot_id") == bot_id
    by_bot_user = bool(bot_user_id) and message.get("user") == bot_user_id
    if not (by_bot or by_bot_user):
        return False
    named_app = message.get("app_id")
    return named_app is None or (bool(app_id) and named_app == app_id)
