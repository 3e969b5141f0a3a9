"""app.yaml: it has the shape of a Slack app manifest, and it agrees with the code."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft7Validator
from sqlalchemy import update

from bot.slack.steps import CALLBACK_ID, INTERACTIVITY_INPUT, OLD_REQUESTER_INPUT
from bot.store.schema import outbox
from handlers.batch import CALLBACK_ID as BATCH_FORM
from handlers.commands import COMMAND
from tests.conftest import ALICE, BOB
from tests.helpers import open_request, wait_status

ROOT = Path(__file__).resolve().parent.parent
MANIFEST = ROOT / "app.yaml"
SCHEMA = ROOT / "tests" / "manifest_schema.json"

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
    # Completing a Workflow Builder step, with the bot token (bot/slack/steps.py): no scope.
    "functions.completeSuccess": None,
    "functions.completeError": None,
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
    """What Slack's manifest validation would reject, for the parts this app uses: app.yaml checked
    with jsonschema against our own schema (tests/manifest_schema.json), written from the rules of
    Slack's published manifest schema (slackapi/manifest-schema) and its scope and event lists."""
    validator = Draft7Validator(json.loads(SCHEMA.read_text()))
    return [
        f"{'/'.join(str(p) for p in error.absolute_path) or '(top)'}: {error.message}"
        for error in sorted(validator.iter_errors(m), key=lambda e: list(map(str, e.absolute_path)))
    ]


def test_has_the_shape_of_a_slack_manifest():
    assert manifest_problems(load()) == []


def test_the_checker_catches_what_slack_would_reject():
    broken = load()
    broken["display_information"]["name"] = "x" * 36
    broken["features"]["slash_commands"][0]["command"] = "sfox deactivate"
    del broken["settings"]["interactivity"]["request_url"]
    assert len(manifest_problems(broken)) == 3


def _broken(path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    m = load()
    node = m
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return m


@pytest.mark.parametrize(
    ("what", "path", "value", "where"),
    [
        (
            "a scope Slack has not",
            ("oauth_config", "scopes", "bot", 1),
            "chat:writes",
            "oauth_config/scopes/bot/1",
        ),
        (
            "a user scope as a bot scope",
            ("oauth_config", "scopes", "bot", 0),
            "search:read",
            "oauth_config/scopes/bot/0",
        ),
        (
            "an event Slack has not",
            ("settings", "event_subscriptions", "bot_events", 0),
            "app_home_open",
            "settings/event_subscriptions/bot_events/0",
        ),
        (
            "a command description of 2,001",
            ("features", "slash_commands", 0, "description"),
            "x" * 2001,
            "features/slash_commands/0/description",
        ),
        (
            "an empty usage hint",
            ("features", "slash_commands", 0, "usage_hint"),
            "",
            "features/slash_commands/0/usage_hint",
        ),
        (
            "a bot name of 81",
            ("features", "bot_user", "display_name"),
            "x" * 81,
            "features/bot_user/display_name",
        ),
        ("an unknown feature", ("features", "workflow_magic"), True, "features"),
        (
            "interactivity without is_enabled",
            ("settings", "interactivity"),
            {"request_url": "https://x/slack/events"},
            "settings/interactivity",
        ),
        (
            "a step parameter of a type Slack has not",
            ("functions", CALLBACK_ID, "input_parameters", "properties", "interactivity", "type"),
            "slack#/types/interactor",
            f"functions/{CALLBACK_ID}/input_parameters/properties/interactivity/type",
        ),
        (
            "a step without its outputs",
            ("functions", CALLBACK_ID, "output_parameters"),
            None,
            f"functions/{CALLBACK_ID}/output_parameters",
        ),
        (
            "a colour that is not one",
            ("display_information", "background_color"),
            "#12345",
            "display_information/background_color",
        ),
    ],
)
def test_a_manifest_slack_would_refuse_is_refused(what, path, value, where):
    problems = manifest_problems(_broken(path, value))
    assert len(problems) == 1 and problems[0].startswith(f"{where}: "), (what, problems)


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


def test_the_step_is_the_one_the_code_listens_for():
    """The Workflow Builder step: declared under the callback id the handler listens for, with
    the inputs bot/runtime/steps.py reads and the outputs bot/slack/steps.py sends; delivered as
    `function_executed` to an org-ready app that runs its own functions. Who asks is Slack's
    interactivity input (required), never a typed requester (issue 32)."""
    m = load()
    (callback_id,) = m["functions"]
    assert callback_id == CALLBACK_ID
    step = m["functions"][CALLBACK_ID]
    inputs, outputs = step["input_parameters"], step["output_parameters"]
    assert {n: p["type"] for n, p in inputs["properties"].items()} == {
        "user_id": "string",
        "reason": "string",
        INTERACTIVITY_INPUT: "slack#/types/interactivity",
        "channel": "slack#/types/channel_id",
    }
    assert inputs["required"] == ["user_id", INTERACTIVITY_INPUT]
    # No input a workflow's author fills may name a person: the requester is who ran it.
    assert OLD_REQUESTER_INPUT not in inputs["properties"]
    assert not [n for n, p in inputs["properties"].items() if p["type"] == "slack#/types/user_id"]
    assert set(outputs["properties"]) == {"status", "request_id", "card_url"}
    for part in (inputs, outputs):
        assert set(part["required"]) <= set(part["properties"])
    assert "function_executed" in m["settings"]["event_subscriptions"]["bot_events"]
    assert m["settings"]["org_deploy_enabled"] is True
    assert m["settings"]["function_runtime"] == "remote"
