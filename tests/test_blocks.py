"""Everything the bot says in Slack: the card in every state, and escaping. Text that came from a
user (the reason, a typed id) or from sFOX (name, e-mail, status, error text) must never reach
Slack as live markup: no `<!channel>`, no `<@U…>` mentions, no links."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from bot.fakes.sfox_api import Fault
from bot.slack import blocks
from bot.store.records import RequestRecord
from tests.conftest import ALICE, BOB, CAROL
from tests.helpers import card_text, open_request, wait_status
from tests.support import everything_sent_to_slack, later_ephemerals

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
LIVE_MARKUP = [
    "<!channel>",
    "<!here>",
    "<!everyone>",
    "<!subteam",
    "<@U0EVIL01>",
    "<@U123>",
    "<https://evil",
    "<mailto:x@evil",
    "<tel:",
    "<#C0123",
]


def record(**changes) -> RequestRecord:
    base = RequestRecord(
        id=7,
        sfox_user_id="client_1",
        reason="left the company",
        requested_by=ALICE,
        channel_id="C0123TEST",
        message_ts="1.2",
        status="pending",
        required_approvals=1,
        target_name="Ada Lovelace",
        target_email="ada@example.com",
        target_status="VERIFIED",
        created_at=T0,
        expires_at=T0 + timedelta(hours=1),
        decided_at=None,
        claimed_at=None,
        completed_at=None,
        denied_by=None,
        http_status=None,
        error=None,
        attempts=0,
        retryable=False,
    )
    return replace(base, **changes)


def all_text(card: list[dict]) -> str:
    return json.dumps(card, ensure_ascii=False)


def action_ids(card: list[dict]) -> list[str]:
    return [e["action_id"] for b in card if b["type"] == "actions" for e in b["elements"]]


# -- escape and friends --------------------------------------------------------------------------


def test_escape_neutralizes_slack_control_sequences():
    assert blocks.escape("<!channel> & <@U123>") == "&lt;!channel&gt; &amp; &lt;@U123&gt;"
    assert blocks.escape("a\x00b\x1bc\nd") == "a b c\nd"
    assert blocks.escape(None) == "" and blocks.escape("") == ""


def test_escape_bounds_length():
    out = blocks.escape("x" * 1000, limit=50)
    assert len(out) == 50 and out.endswith("…")


def test_code_keeps_backticks_from_ending_the_span():
    assert blocks.code("a`<!here>`b") == "`a'&lt;!here&gt;'b`"


def test_mentions_are_built_only_from_slack_user_ids():
    assert blocks.mention(ALICE) == f"<@{ALICE}>"
    assert blocks.mention("<!channel>") == "&lt;!channel&gt;"
    assert blocks.mention("U123> <!channel") == "U123&gt; &lt;!channel"
    assert blocks.mention(None) == "someone"


# -- the card in each state ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "status_text", "actions"),
    [
        ({}, "Waiting for approval* (0 of 1 approvals)", ["sfox_approve", "sfox_deny"]),
        (
            {"approved_by": (BOB,), "required_approvals": 2},
            "(1 of 2 approvals)",
            ["sfox_approve", "sfox_deny"],
        ),
        ({"status": "denied", "denied_by": BOB}, f"Denied* by <@{BOB}>", []),
        ({"status": "expired"}, "Expired without approval", []),
        (
            {"status": "executing", "approved_by": (BOB,)},
            f"deactivating on sFOX…* · approved by <@{BOB}>",
            [],
        ),
        (
            {"status": "succeeded", "approved_by": (BOB, CAROL), "http_status": 200},
            f"Deactivated on sFOX* · approved by <@{BOB}>, <@{CAROL}>",
            [],
        ),
        (
            {"status": "failed", "approved_by": (BOB,), "http_status": 422, "error": "balances"},
            "Not deactivated* · approved by <@UBOB0002>\nHTTP 422: balances",
            [],
        ),
        (
            {
                "status": "failed",
                "approved_by": (BOB,),
                "http_status": 503,
                "error": "down",
                "retryable": True,
            },
            "HTTP 503: down\nAn approver other than the requester can retry.",
            ["sfox_retry"],
        ),
        ({"status": "unknown", "approved_by": (BOB,), "error": "no answer"}, "Outcome unknown", []),
    ],
)
def test_card_shows_the_state_and_only_useful_buttons(changes, status_text, actions):
    card = blocks.card(record(**changes))
    assert status_text in all_text(card).replace("\\n", "\n")
    assert action_ids(card) == actions
    assert card[0]["text"]["text"] == "sFOX account deactivation #7"


def test_pending_card_shows_expiry_and_decided_card_shows_request_time():
    pending = all_text(blocks.card(record()))
    assert f"<!date^{int((T0 + timedelta(hours=1)).timestamp())}^" in pending and "*Expires*" in pending
    done = all_text(blocks.card(record(status="denied", denied_by=BOB)))
    assert f"<!date^{int(T0.timestamp())}^" in done and "*Requested*" in done


def test_card_stays_within_slack_limits_whatever_the_input():
    huge = record(
        reason="r" * 10_000,
        target_name="n" * 10_000,
        target_email="e" * 10_000,
        target_status="s" * 10_000,
        sfox_user_id="u" * 128,
    )
    for state in (huge, replace(huge, status="failed", error="x" * 10_000, http_status=500, retryable=True)):
        card = blocks.card(state)
        assert len(card[0]["text"]["text"]) <= blocks.HEADER_LIMIT
        for block in card:
            for f in block.get("fields", []):
                assert len(f["text"]) <= blocks.FIELD_LIMIT
            if isinstance(block.get("text"), dict):
                assert len(block["text"]["text"]) <= blocks.SECTION_LIMIT
        assert len(blocks.card_text(state)) < 40_000


def test_card_escapes_every_untrusted_field():
    evil = record(
        reason="<!channel> <@U123> <https://evil.example|click>",
        target_name="<!here> <@U0EVIL01>",
        target_email="<mailto:x@evil.example|x@evil.example>",
        target_status="<!everyone>",
        status="failed",
        http_status=422,
        error="<!subteam^S1> <tel:123|call>",
    )
    text = all_text(blocks.card(evil)) + blocks.card_text(evil)
    text += blocks.reply_failed(evil, 422, evil.error, False) + blocks.reply_unknown(evil, evil.error)
    for markup in LIVE_MARKUP:
        assert markup not in text, markup
    assert "&lt;!channel&gt;" in text


# -- end to end: nothing untrusted reaches Slack as markup -----------------------------------------


def assert_no_live_markup(bot) -> str:
    sent = everything_sent_to_slack(bot)
    for markup in LIVE_MARKUP:
        assert markup not in sent, f"{markup} reached Slack unescaped"
    return sent


def test_reason_with_mentions_and_links_is_escaped_on_the_card(bot):
    record_, card = open_request(bot, ALICE, "client_1 <!channel> <@U123> <https://evil.example|click> & co")
    assert record_.reason == "<!channel> <@U123> <https://evil.example|click> & co"  # stored as typed
    text = card_text(card)
    assert "&lt;!channel&gt; &lt;@U123&gt; &lt;https://evil.example|click&gt; &amp; co" in text
    bot.driver.click(BOB, "sfox_deny", str(record_.id), card.ts)
    bot.slack.wait_for(lambda: bot.slack.thread(card.ts))
    assert_no_live_markup(bot)


def test_sfox_fields_and_error_text_with_markup_are_escaped(bot, fake_sfox):
    fake_sfox.add_user(
        "evil_1",
        first_name="<!here>",
        last_name="<@U0EVIL01>",
        email="<mailto:x@evil.example|x@evil.example>",
        status="<!everyone>",
    )
    record_, card = open_request(bot, ALICE, "evil_1 test")
    assert "&lt;!here&gt; &lt;@U0EVIL01&gt;" in card_text(card)
    fake_sfox.script(Fault(status=422, body={"error": "<!channel> see <https://evil.example|here>"}))
    bot.driver.click(BOB, "sfox_approve", str(record_.id), card.ts)
    wait_status(bot, record_.id, "failed")
    [reply] = bot.slack.wait_for(lambda: bot.slack.thread(card.ts))
    assert "&lt;!channel&gt; see &lt;https://evil.example|here&gt;" in reply.text
    bot.slack.wait_for(lambda: "Not deactivated" in card_text(bot.slack.message(card.ts)))
    assert "&lt;!channel&gt;" in card_text(bot.slack.message(card.ts))
    assert_no_live_markup(bot)


def test_sfox_error_text_in_an_ephemeral_answer_is_escaped(bot, fake_sfox):
    fake_sfox.script(Fault(method="GET", status=400, body={"error": "<!channel> bad <@U123>"}))
    response = bot.driver.command(ALICE, "client_1 test")
    [answer] = later_ephemerals(bot, response)
    assert "&lt;!channel&gt; bad &lt;@U123&gt;" in answer
    assert_no_live_markup(bot)


def test_typed_markup_in_the_id_is_echoed_inertly(bot):
    response = bot.driver.command(ALICE, "<!channel> now")
    assert "&lt;!channel&gt;" in response.json()["text"]
    assert "<!channel>" not in response.text
