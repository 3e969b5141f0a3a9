"""The fake Slack refuses what Slack refuses, answered as Slack answers, through its real HTTP API:
Block Kit that slack_sdk's models or Slack's limits reject, a trigger_id used twice, late or never
issued, a response_url past its five posts or its 30 minutes, an ack Slack cannot use. Each refusal changes nothing in the
fake and is kept in `refusals` (every test's fake Slack is checked empty at its end, see
tests/conftest.py; these tests take out the refusals they provoke)."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.webhook import WebhookClient

from bot.fakes.local import serve_wsgi, stop, url_of
from bot.fakes.slack_driver import SlackDriver
from bot.fakes.slack_strict import RESPONSE_URL_SECONDS, TRIGGER_SECONDS
from tests.conftest import BOB, BOT_TOKEN
from tests.helpers import open_request, wait_status

SECTION = {"type": "section", "text": {"type": "mrkdwn", "text": "x"}}


def _button(text: dict[str, Any], action_id: str = "a") -> dict[str, Any]:
    return {"type": "button", "text": text, "action_id": action_id, "value": "1"}


PLAIN = {"type": "plain_text", "text": "Go"}
MESSAGE_REFUSALS = {
    "51 blocks": ({"blocks": [SECTION] * 51}, "invalid_blocks"),
    "a field of 2,001": (
        {"blocks": [{"type": "section", "fields": [{"type": "mrkdwn", "text": "x" * 2001}]}]},
        "invalid_blocks",
    ),
    "a section text of 3,001": (
        {"blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3001}}]},
        "invalid_blocks",
    ),
    "a header of 151": (
        {"blocks": [{"type": "header", "text": {"type": "plain_text", "text": "x" * 151}}]},
        "invalid_blocks",
    ),
    "an unknown property": ({"blocks": [{**SECTION, "colour": "red"}]}, "invalid_blocks"),
    "a string for a text object": ({"blocks": [{"type": "section", "text": "x"}]}, "invalid_blocks"),
    "an empty text": (
        {"blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": ""}}]},
        "invalid_blocks",
    ),
    "an unknown block type": ({"blocks": [{"type": "carousel_of_dreams"}]}, "invalid_blocks"),
    "a mrkdwn button": (
        {"blocks": [{"type": "actions", "elements": [_button({"type": "mrkdwn", "text": "Go"})]}]},
        "invalid_blocks",
    ),
    "one action_id twice in a block": (
        {"blocks": [{"type": "actions", "elements": [_button(PLAIN), _button(PLAIN)]}]},
        "invalid_blocks",
    ),
    "one block_id twice": (
        {"blocks": [{**SECTION, "block_id": "b"}, {"type": "divider", "block_id": "b"}]},
        "invalid_blocks",
    ),
    "an input block in a message": (
        {
            "blocks": [
                {
                    "type": "input",
                    "label": {"type": "plain_text", "text": "Reason"},
                    "element": {"type": "plain_text_input", "action_id": "r"},
                }
            ]
        },
        "invalid_blocks",
    ),
    "blocks that are not an array": ({"blocks": json.dumps({"type": "section"})}, "invalid_blocks_format"),
    "a text of 40,001": ({"text": "x" * 40_001}, "msg_too_long"),
    "no text and no blocks": ({"text": ""}, "no_text"),
}


@pytest.fixture
def client(fake_slack) -> WebClient:
    return WebClient(token=BOT_TOKEN, base_url=fake_slack.api_url)


def _refused(call: Any) -> dict[str, Any]:
    with pytest.raises(SlackApiError) as raised:
        call()
    return dict(raised.value.response.data)


def _taken_refusals(fake_slack) -> list[str]:
    errors = [r.error for r in fake_slack.refusals]
    fake_slack.refusals.clear()
    return errors


@pytest.mark.filterwarnings("ignore:The top-level `text` argument is missing")
@pytest.mark.parametrize("method", ["chat_postMessage", "chat_update", "chat_postEphemeral"])
@pytest.mark.parametrize("what", sorted(MESSAGE_REFUSALS))
def test_a_message_slack_would_refuse_is_refused(fake_slack, client, method, what):
    args, error = MESSAGE_REFUSALS[what]
    ts = client.chat_postMessage(channel="C0STRICT1", text="the card as it was")["ts"]
    where = {"channel": "C0STRICT1", "text": "fallback", **({"ts": ts} if method == "chat_update" else {})}
    if method == "chat_postEphemeral":
        where["user"] = BOB

    answer = _refused(lambda: getattr(client, method)(**{**where, **args}))

    assert answer["ok"] is False and answer["error"] == error
    assert answer["response_metadata"]["messages"][0].startswith("[ERROR] ")
    assert [m.text for m in fake_slack.messages] == ["the card as it was"] and fake_slack.ephemeral == []
    assert _taken_refusals(fake_slack) == [error]


def test_the_limits_themselves_are_taken(fake_slack, client):
    client.chat_postMessage(channel="C0STRICT1", text="x" * 40_000, blocks=[SECTION] * 50)
    field = {"type": "section", "fields": [{"type": "mrkdwn", "text": "x" * 2000}]}
    client.chat_postMessage(channel="C0STRICT1", text="fields", blocks=[field])
    trigger = fake_slack.issue_trigger("trigger.limits")
    client.views_open(trigger_id=trigger, view=_modal(title="x" * 24, submit="x" * 24, close="x" * 24))
    client.views_publish(user_id=BOB, view={"type": "home", "blocks": [SECTION] * 100})
    assert len(fake_slack.messages) == 2 and fake_slack.home(BOB) is not None


def _modal(**parts: Any) -> dict[str, Any]:
    view: dict[str, Any] = {"type": "modal", "callback_id": "c", "blocks": [SECTION]}
    for key in ("title", "submit", "close"):
        if key in parts:
            view[key] = {"type": "plain_text", "text": parts[key]}
    if "private_metadata" in parts:
        view["private_metadata"] = parts["private_metadata"]
    return view


VIEW_REFUSALS = {
    "a title of 25": ("views_open", _modal(title="x" * 25)),
    "a submit of 25": ("views_open", _modal(title="t", submit="x" * 25)),
    "a close of 25": ("views_open", _modal(title="t", close="x" * 25)),
    "private_metadata of 3,001": ("views_open", _modal(title="t", private_metadata="x" * 3001)),
    "a modal without a title": ("views_open", _modal()),
    "a Home tab opened as a modal": ("views_open", {"type": "home", "blocks": [SECTION]}),
    "a Home tab of 101 blocks": ("views_publish", {"type": "home", "blocks": [SECTION] * 101}),
    "a modal published as a Home tab": ("views_publish", _modal(title="t")),
    "a Home tab with a bad block": ("views_publish", {"type": "home", "blocks": [{"type": "section"}]}),
}


@pytest.mark.parametrize("what", sorted(VIEW_REFUSALS))
def test_a_view_slack_would_refuse_is_refused(fake_slack, client, what):
    method, view = VIEW_REFUSALS[what]
    where = (
        {"trigger_id": fake_slack.issue_trigger(f"trigger.{what}")}
        if method == "views_open"
        else {"user_id": BOB}
    )
    answer = _refused(lambda: getattr(client, method)(view=view, **where))
    assert answer["error"] == "invalid_arguments" and answer["response_metadata"]["messages"]
    assert fake_slack.opened_views == [] and fake_slack.home(BOB) is None
    assert _taken_refusals(fake_slack) == ["invalid_arguments"]


class Clock:
    """The fake's clock, moved on by the test instead of sleeping."""

    def __init__(self) -> None:
        self.ahead = 0.0

    def __call__(self) -> float:
        return time.monotonic() + self.ahead


def test_a_trigger_opens_one_modal_within_3_seconds(fake_slack, client):
    clock = fake_slack.clock = Clock()
    used, late = fake_slack.issue_trigger("trigger.used"), fake_slack.issue_trigger("trigger.late")
    client.views_open(trigger_id=used, view=_modal(title="First"))

    again = _refused(lambda: client.views_open(trigger_id=used, view=_modal(title="Again")))
    never = _refused(lambda: client.views_open(trigger_id="trigger.never", view=_modal(title="Never")))
    clock.ahead = TRIGGER_SECONDS + 0.1
    expired = _refused(lambda: client.views_open(trigger_id=late, view=_modal(title="Late")))

    assert (again["error"], never["error"], expired["error"]) == (
        "exchanged_trigger_id",
        "invalid_trigger_id",
        "expired_trigger_id",
    )
    assert [v["view"]["title"]["text"] for v in fake_slack.opened_views] == ["First"]
    assert _taken_refusals(fake_slack) == ["exchanged_trigger_id", "invalid_trigger_id", "expired_trigger_id"]


def test_a_response_url_takes_five_posts_within_30_minutes(fake_slack):
    clock = fake_slack.clock = Clock()
    hook = WebhookClient(fake_slack.issue_response_url("five"))
    answers = [hook.send(text=f"answer {i}", response_type="ephemeral") for i in range(6)]
    assert [a.status_code for a in answers] == [200] * 5 + [404] and answers[5].body == "used_url"

    late = WebhookClient(fake_slack.issue_response_url("late"))
    bad = late.send(text="x", blocks=[{"type": "section"}])
    clock.ahead = RESPONSE_URL_SECONDS + 1
    expired = late.send(text="too late")

    assert (bad.status_code, bad.body) == (400, "invalid_blocks")
    assert (expired.status_code, expired.body) == (404, "expired_url")
    assert [e["text"] for e in fake_slack.ephemeral] == [f"answer {i}" for i in range(5)]
    assert _taken_refusals(fake_slack) == ["used_url", "invalid_blocks", "expired_url"]


def test_a_deny_whose_trigger_expired_is_a_plain_deny(bot, fake_slack):
    """Slack took more than 3 s to hand the bot the click (or the bot to call views.open): the
    modal cannot open, and the Deny is recorded and answered as a plain Deny."""
    clock = fake_slack.clock = Clock()
    record, card = open_request(bot, "UALICE01", "client_1 late trigger")
    body, name = bot.driver.click_body(BOB, "sfox_deny", str(record.id), card.ts)
    clock.ahead = TRIGGER_SECONDS + 0.5
    bot.driver.post(body, "application/x-www-form-urlencoded")
    wait_status(bot, record.id, "denied")
    fake_slack.wait_for(lambda: any("denied this request" in m.text for m in fake_slack.thread(card.ts)))
    assert bot.driver.modal_for(name) is None
    assert _taken_refusals(fake_slack) == ["expired_trigger_id"]


def test_a_click_sent_twice_opens_one_modal(bot, fake_slack):
    """The same interaction presented twice: its trigger opens one modal; the second Deny cannot
    open another and is a plain Deny."""
    record, card = open_request(bot, "UALICE01", "client_1 twice")
    body, name = bot.driver.click_body(BOB, "sfox_deny", str(record.id), card.ts)
    bot.driver.post(body, "application/x-www-form-urlencoded")
    assert bot.driver.modal_for(name) is not None
    bot.driver.post(body, "application/x-www-form-urlencoded")
    wait_status(bot, record.id, "denied")
    bot.runtime.wait_idle()
    assert len(fake_slack.opened_views) == 1
    assert _taken_refusals(fake_slack) == ["exchanged_trigger_id"]


def test_the_bots_largest_card_thread_and_home_are_taken(bot, fake_slack, fake_sfox):
    """Everything a requester or sFOX can make long, at its longest and made of the characters
    that grow when escaped: the card, its update after a Deny with the longest reason, the thread
    reply, and an approver's Home tab with more requests waiting than it shows. Slack takes them
    all (the fixture's end checks that nothing was refused)."""
    grows = "&<>" * 400
    fake_sfox.add_user(
        "client_big", first_name=grows, last_name=grows, email=grows + "@example.com", status=grows
    )
    record, card = open_request(bot, "UALICE01", f"client_big {grows[:500]}")
    for i in range(25):
        bot.store.create_request(
            sfox_user_id=f"client_wait_{i}",
            reason=grows[:500],
            requested_by="UALICE01",
            channel_id=bot.driver.channel_id,
            required_approvals=1,
            target_name=grows,
            target_email=grows,
            target_status=grows,
            now=datetime.now(UTC),
            ttl=timedelta(hours=1),
        )
    bot.driver.home_opened(BOB)
    home = fake_slack.wait_for(lambda: fake_slack.home(BOB))
    bot.driver.click(BOB, "sfox_deny", str(record.id), card.ts, reason=grows[:500])
    wait_status(bot, record.id, "denied")
    fake_slack.wait_for(lambda: fake_slack.thread(card.ts))
    bot.runtime.wait_idle()
    assert fake_slack.message(card.ts).updates >= 1 and len(home["blocks"]) <= 100


def test_an_ack_slack_would_not_take_is_refused(fake_slack):
    """The ack is a payload too: an app answering a command with an over-long message, or a form
    with errors for a block the form does not have, is caught (here a stand-in app over HTTP)."""
    answers = iter(
        [
            {"response_type": "ephemeral", "text": "x" * 40_001},
            {"response_action": "errors", "errors": {"no_such_block": "Wrong"}},
            {"response_action": "errors", "errors": {"reason": "Too long"}},
        ]
    )

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        data = json.dumps(next(answers)).encode()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
        return [data]

    server = serve_wsgi(app)
    driver = SlackDriver(url_of(server), "secret", fake_slack)
    try:
        driver.command(BOB, "anything")
        form = {
            "type": "modal",
            "callback_id": "c",
            "title": {"type": "plain_text", "text": "Form"},
            "blocks": [
                {
                    "type": "input",
                    "block_id": "reason",
                    "label": {"type": "plain_text", "text": "Reason"},
                    "element": {"type": "plain_text_input", "action_id": "value"},
                }
            ],
        }
        driver.submit_view(BOB, form, {"reason": "x"})
        driver.submit_view(BOB, form, {"reason": "x"})
    finally:
        driver.close()
        stop(server)
    assert _taken_refusals(fake_slack) == ["msg_too_long", "invalid_errors"]


def test_views_update_changes_an_open_modal_by_id_and_hash(fake_slack, client):
    opened = client.views_open(trigger_id=fake_slack.issue_trigger("trigger.upd"), view=_modal(title="First"))
    view_id, first_hash = opened["view"]["id"], opened["view"]["hash"]
    updated = client.views_update(view_id=view_id, hash=first_hash, view=_modal(title="Second"))
    assert updated["view"]["id"] == view_id and updated["view"]["hash"] != first_hash
    stale = _refused(
        lambda: client.views_update(view_id=view_id, hash=first_hash, view=_modal(title="Third"))
    )
    unknown = _refused(lambda: client.views_update(view_id="VNOPE", view=_modal(title="Fourth")))
    bad = _refused(lambda: client.views_update(view_id=view_id, view={"type": "modal", "blocks": []}))
    assert (stale["error"], unknown["error"], bad["error"]) == (
        "hash_conflict",
        "not_found",
        "invalid_arguments",
    )
    assert [v["view"]["title"]["text"] for v in fake_slack.opened_views] == ["Second"]
    assert _taken_refusals(fake_slack) == ["hash_conflict", "not_found", "invalid_arguments"]


def test_a_view_submission_ack_is_read_as_slack_reads_it(fake_slack):
    """`response_action: update` (or `push`) carries a view, checked as views.update checks one;
    an unknown response_action is refused; `clear` and a good update are taken."""
    answers = iter(
        [
            {"response_action": "update", "view": {"type": "modal", "blocks": [SECTION]}},  # no title
            {"response_action": "close_it"},
            {"response_action": "update", "view": _modal(title="Done")},
            {"response_action": "clear"},
        ]
    )

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        data = json.dumps(next(answers)).encode()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
        return [data]

    server = serve_wsgi(app)
    driver = SlackDriver(url_of(server), "secret", fake_slack)
    try:
        for _ in range(4):
            driver.submit_view(BOB, _modal(title="Form"), {})
    finally:
        driver.close()
        stop(server)
    assert _taken_refusals(fake_slack) == ["invalid_arguments", "invalid_response_action"]
