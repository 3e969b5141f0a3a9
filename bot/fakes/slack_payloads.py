"""The payloads Slack sends an app, field for field as Slack's documented examples show them, and
the signature over them: the Events API envelope, a clicked button as `block_actions` names it,
and a view as Slack sends it back. Shared by the driver (bot/fakes/slack_driver.py) and anything
else that speaks Slack to the bot. A testing aid."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

from bot.fakes.slack_api import APP_ID, BOT_ID, BOT_USER, FakeSlack

__all__ = ["APP_ID", "clicked_action", "clicked_message", "event_callback", "sign", "view_as_slack_holds_it"]


def sign(secret: str, timestamp: str, body: bytes) -> str:
    base = b"v0:" + timestamp.encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def view_as_slack_holds_it(team_id: str, view: dict[str, Any], view_id: str) -> dict[str, Any]:
    """A view the bot opened or published, as Slack sends it back in a payload: what the bot
    gave, plus the ids, hash and state Slack keeps with it."""
    held: dict[str, Any] = {
        "id": view_id,
        "team_id": team_id,
        "type": view.get("type"),
        "blocks": view.get("blocks") or [],
        "private_metadata": view.get("private_metadata", ""),
        "callback_id": view.get("callback_id", ""),
        "state": {"values": {}},
        "hash": f"{int(time.time())}.{view_id.lower()}",
        "title": view.get("title") or {"type": "plain_text", "text": "View Title"},
        "clear_on_close": False,
        "notify_on_close": False,
        "close": view.get("close"),
        "submit": view.get("submit"),
        "previous_view_id": None,
        "root_view_id": view_id,
        "app_id": APP_ID,
        "external_id": "",
        "app_installed_team_id": team_id,
        "bot_id": BOT_ID,
    }
    return held


def clicked_message(slack: FakeSlack, team_id: str, ts: str) -> dict[str, Any]:
    """The message a button sits on, as a `block_actions` payload carries it: Slack's
    documented example has `type`, `user`, `ts`, `bot_id`, `team`, `text` and `blocks`, and
    no `app_id`, so neither does this."""
    found = slack.message(ts)
    message: dict[str, Any] = {
        "type": "message",
        "user": found.user if found else BOT_USER,
        "ts": ts,
        "bot_id": found.bot_id if found else BOT_ID,
        "team": team_id,
        "text": found.text if found else "",
        "blocks": found.blocks if found else [],
    }
    if not message["bot_id"]:  # a person's message has no bot_id
        del message["bot_id"]
    return message


def event_callback(team_id: str, event: dict[str, Any], event_id: str) -> dict[str, Any]:
    """The Events API's envelope around `event`, as Slack's examples show it."""
    return {
        "token": "legacy-unused",
        "team_id": team_id,
        "api_app_id": APP_ID,
        "event": event,
        "type": "event_callback",
        "event_id": event_id,
        "event_time": int(time.time()),
        "authorizations": [
            {
                "enterprise_id": None,
                "team_id": team_id,
                "user_id": BOT_USER,
                "is_bot": True,
                "is_enterprise_install": False,
            }
        ],
    }


def clicked_action(blocks: list[dict[str, Any]], action_id: str, value: str, block_id: str) -> dict[str, Any]:
    """The clicked button as a `block_actions` payload names it: its block's id (Slack gives one to
    a block that has none), its text, style and value, found in the surface's blocks; a button
    the fake does not hold (a forged or stale click) is named with `block_id`."""
    for block in blocks:
        for element in block.get("elements") or [] if block.get("type") == "actions" else []:
            if element.get("action_id") == action_id and element.get("value") == value:
                action = {
                    "action_id": action_id,
                    "block_id": block.get("block_id") or f"b{abs(hash(json.dumps(block))) % 10**6}",
                    "text": element.get("text"),
                    "value": value,
                    "type": element.get("type", "button"),
                    "action_ts": f"{time.time():.6f}",
                }
                if element.get("style"):
                    action["style"] = element["style"]
                return action
    return {
        "action_id": action_id,
        "block_id": block_id,
        "text": {"type": "plain_text", "text": action_id, "emoji": True},
        "value": value,
        "type": "button",
        "action_ts": f"{time.time():.6f}",
    }
