"""Hostile input: forged, stale and malformed requests over real HTTP, and property-based tests of
the user-id parser and of every text the bot renders into Slack."""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime, timedelta
from urllib.parse import unquote, urlencode

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.fakes.slack_driver import sign
from bot.policy.rules import Policy
from bot.requests.base import Command, card_failure_advice
from bot.requests.workflow import Workflow
from bot.sfox.userid import MAX_LENGTH, InvalidUserId, parse_user_id, path_segment
from bot.slack import blocks
from bot.store.records import RequestRecord
from bot.store.schema import STATUSES
from tests.conftest import ALICE, APPROVERS, BOB, CAROL, SIGNING_SECRET
from tests.helpers import card_text, open_request, wait_until

FORM = "application/x-www-form-urlencoded"


# -- forged and stale requests ----------------------------------------------------------------------


def _no_effect(bot, *, pending_id=None):
    """Nothing was recorded, posted or called because of the refused request."""
    records = list(bot.store.history())
    if pending_id is None:
        assert records == []
        assert bot.slack.cards() == []
    else:
        assert [(r.id, r.status, r.approved_by) for r in records] == [(pending_id, "pending", ())]
    assert bot.sfox.requests("DELETE") == []
    assert bot.slack.ephemeral == []


def _forgeries(driver, body):
    now = int(time.time())
    stale, future = str(now - 6 * 60), str(now + 6 * 60)
    return {
        "bad-signature": dict(signature="v0=" + "0" * 64),
        "wrong-secret": dict(signature=sign("not-the-secret", str(now), body)),
        "stale-timestamp": dict(timestamp=stale, signature=sign(SIGNING_SECRET, stale, body)),
        "future-timestamp": dict(timestamp=future, signature=sign(SIGNING_SECRET, future, body)),
        "malformed-timestamp": dict(timestamp="12ab", signature=sign(SIGNING_SECRET, "12ab", body)),
    }


def test_forged_or_stale_commands_are_refused_with_401(bot):
    body, _ = bot.driver.command_body(ALICE, "client_1 forged")
    for name, forgery in _forgeries(bot.driver, body).items():
        response = bot.driver.post(body, FORM, **forgery)
        assert response.status_code == 401, name
        assert "Traceback" not in response.text
    _no_effect(bot)


def test_forged_or_stale_clicks_are_refused_with_401(bot):
    record, card = open_request(bot, ALICE, "client_1 real")
    bot.slack.ephemeral.clear()
    body, _ = bot.driver.click_body(BOB, "sfox_approve", str(record.id), card.ts)
    for name, forgery in _forgeries(bot.driver, body).items():
        assert bot.driver.post(body, FORM, **forgery).status_code == 401, name
    _no_effect(bot, pending_id=record.id)


def test_missing_signature_headers_are_refused_with_401(bot):
    body, _ = bot.driver.command_body(ALICE, "client_1 unsigned")
    for headers in (
        {},
        {"X-Slack-Signature": "v0=abc"},
        {"X-Slack-Request-Timestamp": str(int(time.time()))},
    ):
        response = httpx.post(
            f"{bot.url}/slack/events", content=body, headers={"Content-Type": FORM, **headers}
        )
        assert response.status_code == 401, headers
    _no_effect(bot)


def test_tampered_body_is_refused(bot):
    body, _ = bot.driver.command_body(BOB, "client_1 harmless")
    ts = str(int(time.time()))
    signature = sign(SIGNING_SECRET, ts, body)
    tampered = body.replace(BOB.encode(), ALICE.encode())
    assert bot.driver.post(tampered, FORM, timestamp=ts, signature=signature).status_code == 401
    _no_effect(bot)


# -- signed but malformed -----------------------------------------------------------------------------


def _payload(data) -> bytes:
    return urlencode({"payload": json.dumps(data)}).encode()


GARBAGE = {
    "payload-not-json": (b"payload=%7Bnot", FORM),
    "json-not-json": (b"{nope", "application/json"),
    "json-list": (b"[1, 2]", "application/json"),
    "payload-list": (_payload([1]), FORM),
    "payload-string": (_payload("x"), FORM),
    "not-utf8": (b"\xff\xfe\x00garbage", FORM),
    "user-not-object": (_payload({"type": "block_actions", "user": "x", "actions": []}), FORM),
    "actions-not-list": (_payload({"type": "block_actions", "user": {"id": BOB}, "actions": "x"}), FORM),
    "empty": (b"", FORM),
    "random-form": (b"hello=world&x", FORM),
    "other-command": (urlencode({"command": "/other", "user_id": ALICE, "text": "x"}).encode(), FORM),
    "unknown-action": (
        _payload(
            {
                "type": "block_actions",
                "user": {"id": BOB},
                "actions": [{"action_id": "sfox_nuke", "value": "1", "block_id": "b"}],
            }
        ),
        FORM,
    ),
    "block-actions-without-actions": (_payload({"type": "block_actions", "user": {"id": BOB}}), FORM),
}


def test_signed_garbage_gets_a_clean_4xx(bot):
    record, card = open_request(bot, ALICE, "client_1 real")
    bot.slack.ephemeral.clear()
    for case, (body, content_type) in GARBAGE.items():
        response = bot.driver.post(body, content_type)
        assert 400 <= response.status_code < 500, (case, response.status_code, response.text)
        assert "Traceback" not in response.text and 'File "' not in response.text, case
    _no_effect(bot, pending_id=record.id)


def test_command_mentioning_payload_still_works(bot):
    """Bolt mistakes any form body containing the word "payload" for a button payload; a reason
    (or channel name) with that word must still open a request, with the text unchanged."""
    record, card = open_request(bot, ALICE, "client_1 payload team asked; see payload=42")
    assert record.reason == "payload team asked; see payload=42"
    assert "payload team asked" in card_text(card)


def test_oversized_body_is_refused(bot):
    body = b"text=" + b"a" * (300 * 1024)
    assert bot.driver.post(body, FORM).status_code == 413
    _no_effect(bot)


def test_wrong_method_and_path(bot):
    assert httpx.get(f"{bot.url}/slack/events").status_code == 405
    assert httpx.post(f"{bot.url}/nope", content=b"x").status_code == 404


def test_clicks_for_requests_that_do_not_exist_get_an_ephemeral_error(bot):
    cases = [
        ("999999", "does not exist|There is no deactivation request #999999"),
        ("abc", "did not carry a valid request"),
        ("-1", "did not carry a valid request"),
        ("1" * 40, "did not carry a valid request"),
        ("", "did not carry a valid request"),
    ]
    for action_id in ("sfox_approve", "sfox_deny", "sfox_retry"):
        for value, words in cases:
            response = bot.driver.click(BOB, action_id, value)
            assert response.status_code == 200
            text = bot.driver.ephemeral_for(response.extensions["response_name"])[0]
            assert re.search(words, text), (action_id, value, text)
    assert list(bot.store.history()) == [] and bot.sfox.seen == []


def test_click_with_odd_value_types_changes_nothing(bot):
    record, card = open_request(bot, ALICE, "client_1 real")
    bot.slack.ephemeral.clear()
    for value in [{"id": record.id}, [record.id], None, record.id]:
        payload = {
            "type": "block_actions",
            "user": {"id": BOB},
            "team": {"id": "T1"},
            "container": {"type": "message", "message_ts": card.ts, "channel_id": "C0123TEST"},
            "response_url": bot.slack.response_url("odd"),
            "actions": [{"action_id": "sfox_approve", "block_id": "b", "value": value}],
        }
        response = bot.driver.post(_payload(payload), FORM)
        assert response.status_code in (200, 400), response.text
    wait_until(lambda: len(bot.slack.ephemeral) >= 1)
    assert bot.store.get(record.id).status == "pending"
    assert bot.sfox.requests("DELETE") == []


# -- properties: the user-id parser ------------------------------------------------------------------

NASTY = [
    "..",
    ".",
    "/",
    "%2e%2e",
    "%2F",
    "?x=1",
    "#frag",
    "a/../b",
    "<!channel>",
    "<!here>",
    "<@U012ABC>",
    "<#C012|general>",
    "<mailto:a@b.co|a@b.co>",
    "<mailto:a@b.co|x@y.co>",
    "<https://evil.example|client_1>",
    "\u202e",
    "\x00",
    "\n",
    "\t",
    " ",
    "&amp;",
    "`",
    "*",
    "client_1",
    "a@b.co",
    "é",
    "\\",
    "@channel",
]
nasty_text = st.lists(st.one_of(st.sampled_from(NASTY), st.text(max_size=12)), max_size=8).map("".join)
any_text = st.one_of(st.text(max_size=300), nasty_text)
valid_ids = st.from_regex(r"\A[A-Za-z0-9](?:[A-Za-z0-9._@+-]{0,126}[A-Za-z0-9_])?\Z")
UNRESERVED_OR_ESCAPED = re.compile(r"\A(?:[A-Za-z0-9._~-]|%[0-9A-F]{2})+\Z")


@settings(max_examples=400, deadline=None)
@given(any_text)
def test_parse_user_id_accepts_only_safe_path_segments(text):
    try:
        uid = parse_user_id(text)
    except InvalidUserId as exc:
        assert str(exc)  # always says why
        return
    assert 1 <= len(uid) <= MAX_LENGTH
    assert uid not in (".", "..")
    assert not set(uid) & set("<>|/\\?#% \t\r\n&`*~") and uid.isprintable() and uid.isascii()
    segment = path_segment(uid)
    assert UNRESERVED_OR_ESCAPED.match(segment) and unquote(segment) == uid
    url = httpx.URL("https://api.sfox.com").join(f"/v1/enterprise/users/{segment}")
    assert url.host == "api.sfox.com"
    assert url.raw_path.decode().split("/") == ["", "v1", "enterprise", "users", segment]


@settings(max_examples=200, deadline=None)
@given(valid_ids)
def test_every_well_formed_id_is_accepted_unchanged(uid):
    if uid in (".", ".."):
        return
    assert parse_user_id(uid) == parse_user_id(f"  {uid} ") == uid
    if "@" in uid:
        assert parse_user_id(f"<mailto:{uid}|{uid}>") == uid


@settings(max_examples=300, deadline=None)
@given(any_text)
def test_path_segment_is_always_exactly_one_segment(text):
    try:
        segment = path_segment(text)
    except InvalidUserId:
        assert text in ("", ".", "..")
        return
    assert "/" not in segment and "?" not in segment and "#" not in segment
    assert segment not in ("", ".", "..") and unquote(segment) == text


# -- properties: everything rendered into Slack -------------------------------------------------------

slack_ids = st.from_regex(r"\A[UW][A-Z0-9]{2,20}\Z")
user_ref = st.one_of(slack_ids, any_text)
long_text = st.one_of(any_text, st.text(alphabet="&<>x", min_size=2000, max_size=6000), st.none())
DATE = re.compile(r"<!date\^\d+\^\{date_short_pretty\}(?: at)? \{time\}\|[^<>|]*>")


@st.composite
def records(draw):
    status = draw(st.sampled_from(STATUSES))
    created = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=draw(st.integers(0, 10**8)))
    return RequestRecord(
        id=draw(st.integers(1, 10**12)),
        sfox_user_id=draw(valid_ids.filter(lambda u: u not in (".", ".."))),
        reason=draw(long_text) or "",
        requested_by=draw(user_ref),
        channel_id="C0123TEST",
        message_ts="1700000001.000100",
        status=status,
        required_approvals=draw(st.integers(1, 10)),
        target_name=draw(long_text),
        target_email=draw(long_text),
        target_status=draw(long_text),
        created_at=created,
        expires_at=created + timedelta(hours=1),
        decided_at=None,
        claimed_at=None,
        completed_at=None,
        denied_by=draw(st.one_of(st.none(), user_ref)),
        http_status=draw(st.one_of(st.none(), st.integers(100, 599))),
        error=draw(long_text),
        attempts=draw(st.integers(0, 5)),
        retryable=draw(st.booleans()),
        # issue 19: a request asked for later (`--at`) shows its time on the card
        run_at=draw(st.one_of(st.none(), st.just(created + timedelta(days=2)))),
        approved_by=tuple(draw(st.lists(user_ref, max_size=10))),
    )


def _inert(text: str, record: RequestRecord | None = None, actors: tuple[str, ...] = ()) -> None:
    """No mention, broadcast, channel or link in `text` except mentions of validated user ids the
    bot itself put there (the requester, approvers, the denier or the actor) and Slack dates."""
    allowed = set(actors)
    if record is not None:
        allowed |= {record.requested_by, record.denied_by or "", *record.approved_by}
    rest = DATE.sub("", text)
    for match in re.finditer(r"<@([^>]*)>", rest):
        assert match.group(1) in allowed and blocks.SLACK_USER_ID.match(match.group(1)), text
    rest = re.sub(r"<@[UW][A-Z0-9]{2,20}>", "", rest)
    assert "<" not in rest and ">" not in rest.replace("&gt;", ""), text


def _texts(element, out: list[str]) -> list[str]:
    if isinstance(element, dict):
        if element.get("type") in ("mrkdwn", "plain_text") and isinstance(element.get("text"), str):
            out.append(element["text"])
        for value in element.values():
            _texts(value, out)
    elif isinstance(element, list):
        for value in element:
            _texts(value, out)
    return out


def _check_text_object(obj: dict, limit: int) -> None:
    assert obj["type"] in ("mrkdwn", "plain_text")
    assert 0 < len(obj["text"]) <= limit, (len(obj["text"]), limit)


# 100 (Hypothesis's default): drawing a whole record is slow, about 60 ms of CPU each.
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(records())
def test_card_stays_within_slack_limits_and_mentions_nobody_unexpected(record):
    card = blocks.card(record)
    assert 0 < len(card) <= 50
    for block in card:
        if "block_id" in block:
            assert len(block["block_id"]) <= 255
        if block["type"] == "header":
            assert block["text"]["type"] == "plain_text"
            _check_text_object(block["text"], 150)
        elif block["type"] == "section":
            if "text" in block:
                _check_text_object(block["text"], 3000)
            if "fields" in block:
                assert len(block["fields"]) <= 10
                for f in block["fields"]:
                    _check_text_object(f, 2000)
        elif block["type"] == "context":
            assert len(block["elements"]) <= 10
            for e in block["elements"]:
                _check_text_object(e, 3000)
        elif block["type"] == "actions":
            assert len(block["elements"]) <= 25
            for button in block["elements"]:
                assert len(button["action_id"]) <= 255 and button["action_id"] in blocks.ACTION_IDS
                assert len(button["value"]) <= 2000 and button["value"] == str(record.id)
                _check_text_object(button["text"], 75)
                if "confirm" in button:
                    c = button["confirm"]
                    _check_text_object(c["title"], 100)
                    _check_text_object(c["text"], 300)
                    _check_text_object(c["confirm"], 30)
                    _check_text_object(c["deny"], 30)
        else:
            raise AssertionError(f"unexpected block {block['type']}")
    for text in _texts(card, []):
        _inert(text, record)
    fallback = blocks.card_text(record)
    assert 0 < len(fallback) <= 40000
    _inert(fallback, record)
    # Buttons while they can do something: Approve/Deny, a scheduled request's Cancel, Retry.
    if record.status not in ("pending", "scheduled") and not (record.status == "failed" and record.retryable):
        assert not [b for b in card if b["type"] == "actions"]


# 100 (Hypothesis's default): drawing a whole record is slow, about 60 ms of CPU each.
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(records(), user_ref, long_text, st.one_of(st.none(), st.integers(100, 599)), st.booleans())
def test_thread_replies_are_bounded_and_inert(record, actor, error, status, retryable):
    error = error or ""
    replies = [
        blocks.reply_denied(record, actor),
        blocks.reply_succeeded(record),
        blocks.reply_succeeded(record, confirmed_by_lookup=True),
        blocks.reply_failed(record, status, error, retryable),
        blocks.reply_unknown(record, error),
        blocks.reply_still_present(record),
    ]
    for text in replies:
        assert 0 < len(text) <= 4000
        _inert(text, record, actors=(actor,))


class _Unused:
    def __getattr__(self, name):
        raise AssertionError(f"check_command must not touch {name}")


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.sampled_from(APPROVERS), user_ref), any_text)
def test_command_answers_are_bounded_and_inert(requester, text):
    wf = Workflow(_Unused(), _Unused(), _Unused(), Policy(approvers=frozenset(APPROVERS)))
    answer = wf.check_command(requester, "C0123TEST", text)
    if isinstance(answer, Command):
        assert answer.sfox_user_id == parse_user_id(answer.sfox_user_id)
        assert len(answer.reason) <= 500
        rendered = f"Looking up {blocks.code(answer.sfox_user_id)} on sFOX…"
    else:
        rendered = answer
    assert 0 < len(rendered) <= 3000
    _inert(rendered)


@settings(max_examples=200, deadline=None)
@given(any_text)
def test_card_failure_advice_is_bounded_and_inert(code):
    text = card_failure_advice(code)
    assert len(text) <= 3000
    _inert(text)


def test_a_broadcast_in_every_user_field_stays_inert():
    """A concrete worst case, readable at a glance."""
    evil = "<!channel> <!here> <@U0BOSS> <#C1> <https://evil.example|click> &lt;!everyone&gt;"
    record = RequestRecord(
        id=1,
        sfox_user_id="client_1",
        reason=evil,
        requested_by=ALICE,
        channel_id="C0123TEST",
        message_ts="1.1",
        status="failed",
        required_approvals=1,
        target_name=evil,
        target_email=evil,
        target_status=evil,
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
        expires_at=datetime(2026, 1, 1, 1, tzinfo=UTC),
        decided_at=None,
        claimed_at=None,
        completed_at=None,
        denied_by=evil,
        http_status=500,
        error=evil,
        attempts=1,
        retryable=True,
        approved_by=(CAROL, evil),
    )
    everything = "\n".join(_texts(blocks.card(record), [])) + blocks.reply_failed(record, 500, evil, True)
    assert "<!channel>" not in everything and "<@U0BOSS>" not in everything
    assert "&lt;!channel&gt;" in everything
    _inert(everything, record)
