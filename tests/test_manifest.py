"""app.yaml: it has the shape of a Slack app manifest, and it agrees with the code."""

from __future__ import annotations

import copy
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import update

from bot.store.schema import outbox
from handlers.batch import CALLBACK_ID as BATCH_FORM
from handlers.commands import COMMAND
from tests.conftest import ALICE, BOB
from tests.helpers import open_request, wait_status

ROOT = Path(__file__).resolve().parent.parent
MANIFEST = ROOT / "app.yaml"

# Slack Web API methods the bot may call, and the bot scope each needs (None: no scope).
METHOD_SCOPES = {
    "chat.postMessage": "chat:write",
    "chat.update": "chat:write",
    "chat.postEphemeral": "chat:write",
    "usergroups.users.list": "usergroups:read",
    "auth.test": None,
    # Looking for a card or a reply a crash may have left unrecorded: public and private channels.
    "conversations.history": ("channels:history", "groups:history"),
    "conversations.replies": ("channels:history", "groups:history"),
    # The requester's outcome DM (bot/slack/dms.py) and its link to the card.
    "conversations.open": "im:write",
    "chat.getPermalink": None,
    # The Deny modal, the batch form (opened with a trigger, no scope of their own) and the App Home.
    "views.open": None,
    "views.publish": None,
    # Batches: the form's file, and the outcome CSV uploaded to the batch's thread.
    "files.info": "files:read",
    "files.getUploadURLExternal": "files:write",
    "files.completeUploadExternal": "files:write",
}
ALL_SCOPES = {
    "commands",
    "chat:write",
    "usergroups:read",
    "channels:history",
    "groups:history",
    "im:write",
    "files:read",
    "files:write",
}


def load() -> dict[str, Any]:
    return yaml.safe_load(MANIFEST.read_text())


def manifest_problems(m: dict[str, Any]) -> list[str]:
    """What Slack's manifest validation would reject, for the parts this app uses."""
    problems: list[str] = []

    def need(cond: bool, what: str) -> None:
        if not cond:
            problems.append(what)

    allowed_top = {"_metadata", "display_information", "features", "oauth_config", "settings", "functions"}
    need(set(m) <= allowed_top, f"unknown top-level keys {set(m) - allowed_top}")
    info = m.get("display_information") or {}
    need(isinstance(info.get("name"), str) and 0 < len(info["name"]) <= 35, "display_information.name 1..35")
    need(len(info.get("description", "")) <= 140, "display_information.description <= 140")
    if "background_color" in info:
        need(
            bool(re.fullmatch(r"#[0-9a-fA-F]{6}", str(info["background_color"]))), "background_color #rrggbb"
        )
    features = m.get("features") or {}
    need(
        set(features) <= {"app_home", "bot_user", "shortcuts", "slash_commands", "unfurl_domains"},
        "features keys",
    )
    bot_user = features.get("bot_user") or {}
    need(0 < len(bot_user.get("display_name", "")) <= 80, "bot_user.display_name 1..80")
    need(isinstance(bot_user.get("always_online", False), bool), "bot_user.always_online bool")
    settings = m.get("settings") or {}
    socket_mode = settings.get("socket_mode_enabled", False)
    need(isinstance(socket_mode, bool), "settings.socket_mode_enabled bool")
    for cmd in features.get("slash_commands") or []:
        need(
            set(cmd) <= {"command", "url", "description", "usage_hint", "should_escape"}, "slash command keys"
        )
        need(bool(re.fullmatch(r"/[a-z0-9_-]{1,31}", str(cmd.get("command")))), "command: /lowercase, <= 32")
        need(0 < len(cmd.get("description", "")) <= 2000, "command description 1..2000")
        need(len(cmd.get("usage_hint", "")) <= 1000, "usage_hint <= 1000")
        need(isinstance(cmd.get("should_escape", False), bool), "should_escape bool")
        need(
            socket_mode or str(cmd.get("url", "")).startswith("https://"),
            "command url (https) without Socket Mode",
        )
    scopes = (m.get("oauth_config") or {}).get("scopes") or {}
    need(set(scopes) <= {"bot", "user"}, "scopes: bot/user only")
    for scope in scopes.get("bot") or []:
        need(bool(re.fullmatch(r"[a-z_]+(:[a-z_.]+)*", scope)), f"malformed scope {scope!r}")
    need(
        set(settings)
        <= {
            "allowed_ip_address_ranges",
            "event_subscriptions",
            "interactivity",
            "org_deploy_enabled",
            "socket_mode_enabled",
            "token_rotation_enabled",
            "is_hosted",
            "function_runtime",
        },
        "settings keys",
    )
    interactivity = settings.get("interactivity") or {}
    need(isinstance(interactivity.get("is_enabled"), bool), "interactivity.is_enabled bool")
    if interactivity.get("is_enabled") and not socket_mode:
        need(
            str(interactivity.get("request_url", "")).startswith("https://"),
            "interactivity.request_url https",
        )
    return problems


def test_has_the_shape_of_a_slack_manifest():
    assert manifest_problems(load()) == []


def test_the_checker_catches_what_slack_would_reject():
    broken = load()
    broken["display_information"]["name"] = "x" * 36
    broken["features"]["slash_commands"][0]["command"] = "sfox deactivate"
    del broken["settings"]["interactivity"]["request_url"]
    assert len(manifest_problems(broken)) == 3


def test_the_slash_command_is_the_one_the_code_listens_for():
    (command,) = load()["features"]["slash_commands"]
    assert command["command"] == COMMAND
    assert "<sfox_user_id>" in command["usage_hint"]


def test_http_mode_urls_point_at_the_bots_endpoint():
    m = load()
    assert m["settings"]["socket_mode_enabled"] is False
    assert m["settings"]["interactivity"]["is_enabled"] is True  # the card's buttons need it
    urls = [
        m["settings"]["interactivity"]["request_url"],
        m["features"]["slash_commands"][0]["url"],
        m["settings"]["event_subscriptions"]["request_url"],
    ]
    for url in urls:
        assert url.startswith("https://") and url.endswith("/slack/events")
    assert len(set(urls)) == 1


def test_the_documented_socket_mode_variant_is_valid_too():
    """The comment at the top of app.yaml (and the README) say: flag on, URLs out."""
    text = MANIFEST.read_text()
    assert "socket_mode_enabled to true" in text and "connections:write" in text
    readme = (ROOT / "README.md").read_text()
    assert "socket_mode_enabled: true" in readme
    m = copy.deepcopy(load())
    m["settings"]["socket_mode_enabled"] = True
    del m["settings"]["interactivity"]["request_url"]
    del m["settings"]["event_subscriptions"]["request_url"]
    for cmd in m["features"]["slash_commands"]:
        del cmd["url"]
    assert manifest_problems(m) == []


def test_bot_scopes_are_exactly_what_the_code_uses(make_bot, fake_slack):
    """Drive a full approval, with the approver group on, and map every Slack method the bot
    called to its scope: all must be granted, and nothing more is asked for."""
    fake_slack.usergroups["S0ADMINS"] = ["UDAVE004"]
    bot = make_bot(SFOX_APPROVER_GROUP="S0ADMINS")
    record, card = open_request(bot, ALICE, "client_1")
    bot.driver.click("UDAVE004", "sfox_approve", str(record.id), card.ts)
    wait_status(bot, record.id, "succeeded")
    bot.slack.wait_for(lambda: bot.slack.thread(card.ts))
    record2, card2 = open_request(bot, ALICE, "client_3")
    fake_slack.fail("chat.postMessage", "ratelimited")  # the thread reply: sent again later
    bot.driver.click(BOB, "sfox_deny", str(record2.id), card2.ts)
    wait_status(bot, record2.id, "denied")
    # A reply tried before is looked for in the thread first; a request without a recorded card
    # is looked for in the channel.
    bot.store.create_request(
        sfox_user_id="client_9",
        reason="",
        requested_by=ALICE,
        channel_id="C0123TEST",
        required_approvals=1,
        target_name=None,
        target_email=None,
        target_status=None,
        now=datetime.now(UTC) - timedelta(minutes=10),
        ttl=timedelta(hours=1),
    )
    bot.runtime.wait_idle()
    with bot.store.transaction() as conn:
        conn.execute(update(outbox).values(lease_until=None))
    bot.runtime.sweep()
    # The reply may meet Slack's pace in the channel (429): the delivery loop sends it when due.
    bot.slack.wait_for(lambda: any("denied" in m.text for m in bot.slack.thread(card2.ts)))
    bot.driver.home_opened(BOB)  # the App Home
    bot.slack.wait_for(lambda: bot.slack.home(BOB))
    _batch_through_the_form(bot, fake_slack)

    called = {method for method, _ in fake_slack.calls}
    unknown = called - set(METHOD_SCOPES)
    assert not unknown, f"add the scope of {unknown} to app.yaml and METHOD_SCOPES"
    needed = {"commands"}
    for method in called:
        scopes = METHOD_SCOPES[method] or ()
        needed.update((scopes,) if isinstance(scopes, str) else scopes)
    granted = set(load()["oauth_config"]["scopes"]["bot"])
    assert needed == granted == ALL_SCOPES


def _batch_through_the_form(bot: Any, fake_slack: Any) -> None:
    """A batch asked through the form with a file, approved, and finished (its CSV uploaded)."""
    bot.driver.command(ALICE, "batch")
    opened = bot.slack.wait_for(
        lambda: [v for v in fake_slack.opened_views if v["view"].get("callback_id") == BATCH_FORM]
    )[0]
    bot.sfox.add_user("scope_user_1")
    fake_slack.user_files["F9"] = ("ids.csv", b"user_id\nscope_user_1\n")
    values = {
        "ids": {"value": {"type": "plain_text_input", "value": ""}},
        "file": {"value": {"type": "file_input", "files": [{"id": "F9"}]}},
        "reason": {"value": {"type": "plain_text_input", "value": "scopes"}},
    }
    bot.driver.view_submission(ALICE, opened["view"], values)
    card = bot.slack.wait_for(lambda: [c for c in bot.slack.cards() if c.text.startswith("sFOX batch")])[0]
    batch_id = card.text.split("#", 1)[1].split(" ", 1)[0]
    bot.driver.click(BOB, "sfox_batch_approve", batch_id, card.ts)
    bot.slack.wait_for(lambda: fake_slack.uploads and all(u["content"] for u in fake_slack.uploads.values()))


@pytest.mark.parametrize("scope", sorted(ALL_SCOPES))
def test_readme_explains_each_scope(scope):
    assert f"`{scope}`" in (ROOT / "README.md").read_text()
