"""Block Kit and mrkdwn rendered as terminal text (pure functions)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.sandbox.transcript import Ephemeral, Posted, Transcript, Updated, buttons_line, card_lines, plain
from bot.slack import blocks
from bot.store.records import RequestRecord

NAMES = {"UALICE": "alice", "UBOB": "bob"}


def record(**changes: object) -> RequestRecord:
    now = datetime(2030, 1, 2, 3, 4, tzinfo=UTC)
    fields: dict[str, object] = {
        "id": 7,
        "sfox_user_id": "client_1",
        "reason": "leaving <!channel> & *soon*",
        "requested_by": "UALICE",
        "channel_id": "CSANDBOX",
        "message_ts": "1.000100",
        "status": "pending",
        "required_approvals": 1,
        "target_name": "Ada \x1b[31mLovelace",
        "target_email": "ada@example.com",
        "target_status": "VERIFIED",
        "created_at": now,
        "expires_at": now + timedelta(hours=1),
        "decided_at": None,
        "claimed_at": None,
        "completed_at": None,
        "denied_by": None,
        "http_status": None,
        "error": None,
        "attempts": 0,
        "retryable": False,
        "approved_by": (),
    }
    fields.update(changes)
    return RequestRecord(**fields)  # type: ignore[arg-type]


def test_plain_text_from_mrkdwn():
    assert plain("<@UALICE> and <@UNKNOWN1>", NAMES) == "@alice and @UNKNOWN1"
    assert plain("<!date^1893553440^{date_short_pretty}|2030-01-02 03:04 UTC>") == "2030-01-02 03:04 UTC"
    assert (
        plain("<https://x.example/a|the docs> <https://y.example>")
        == "the docs (https://x.example/a) https://y.example"
    )
    assert plain("<#CSANDBOX> <!here>") == "#CSANDBOX @here"
    assert plain(":white_check_mark: *Done* _quietly_ :unheard_of:") == "✅ Done quietly :unheard_of:"
    assert plain("`client_1` a_b_c") == "`client_1` a_b_c"
    # escaped user text comes back as typed, and never as a mention or a link
    assert plain(blocks.escape("<@UALICE> & <!channel>"), NAMES) == "<@UALICE> & <!channel>"
    # nothing reaches the terminal that could drive it
    assert (
        plain("red \x1b[31m bell \x07 nul \x00 c1 \x9b end\nnext") == "red  [31m bell   nul   c1   end\nnext"
    )


def test_a_pending_card_as_text():
    lines = card_lines(blocks.card(record()), NAMES)
    text = "\n".join(lines)
    assert lines[0].startswith("┌─ sFOX account deactivation #7 ")
    assert lines[-1].startswith("└")
    assert "│ sFOX user     `client_1`" in text
    assert "│ Requested by  @alice" in text
    assert "│ Expires       2030-01-02 04:04 UTC" in text
    assert "│ Reason        leaving <!channel> & soon" in text
    assert "\x1b" not in text
    assert "│ ⏳ Waiting for approval (0 of 1 approvals)" in text
    assert "│ [ Approve ]  [ Deny ]" in text
    assert "“Deactivate permanently?”" in text
    assert all(len(line) <= 80 for line in lines)


def test_card_updates_and_replies_in_a_conversation():
    t = Transcript(NAMES, {"CSANDBOX": "ops"})
    pending = blocks.card(record())
    done = blocks.card(record(status="succeeded", approved_by=("UBOB",), http_status=200))
    failed = blocks.card(record(status="failed", approved_by=("UBOB",), error="boom", retryable=True))
    out = t.render(
        [
            Ephemeral("UALICE", "Looking up `client_1` on sFOX…"),
            Posted("CSANDBOX", "5.1", "fallback", pending),
            Updated("CSANDBOX", "5.1", "fallback", done),
            Updated("CSANDBOX", "5.1", "fallback", done),
            Posted("CSANDBOX", "6.1", "<@UALICE> it is done", [], "5.1"),
            Posted("CSANDBOX", "7.1", "lost", [], "9.9"),
            Updated("CSANDBOX", "5.1", "fallback", failed),
        ]
    )
    text = "\n".join(out)
    assert "(only visible to alice) Looking up `client_1` on sFOX…" in text
    assert "#ops  the bot posts card #7:" in text
    assert "card #7 updated:\n      ✅ Deactivated on sFOX · approved by @bob\n      no buttons left" in text
    assert "card #7 updated again (no visible change)" in text
    assert "↳ in the thread of card #7: @alice it is done" in text
    assert "↳ in the thread of a card from an earlier session: lost" in text
    assert "buttons now: [ Retry deactivation ]" in text
    assert buttons_line(failed) == "[ Retry deactivation ]"
