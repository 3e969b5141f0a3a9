"""The sFOX user id is validated strictly and sent as exactly one percent-encoded path segment.

Unit tests of `parse_user_id` / `path_segment` (including a property test over arbitrary text), and
end-to-end checks of the raw request path the fake sFOX receives for the lookup and the DELETE."""

from __future__ import annotations

import string
from urllib.parse import unquote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.sfox.userid import MAX_LENGTH, InvalidUserId, parse_user_id, path_segment
from bot.slack.ids import SLACK_CHANNEL_ID, SLACK_GROUP_ID, SLACK_USER_ID
from tests.conftest import ALICE, BOB
from tests.helpers import open_request, wait_status

VALID = [
    "client_account_1",
    "client_db29326e-8f1c-4e0b-9a6c-1234567890ab",
    "3f2504e0-4f89-11d3-9a0c-0305e82c3301",
    "test3",
    "a",
    "A1",
    "x_",
    "a.b",
    "a..b",
    "sean@example.com",
    "user+tag@example.co.uk",
    "a" * MAX_LENGTH,
]

INVALID = {
    "empty": "",
    "blank": "   ",
    "dot": ".",
    "dot dot": "..",
    "slash": "/",
    "dot dot slash": "../admin",
    "inner slash": "a/b",
    "backslash": "a\\b",
    "question mark": "a?b",
    "lone question mark": "?",
    "hash": "a#b",
    "lone hash": "#",
    "percent": "%",
    "encoded slash": "a%2Fb",
    "encoded dot dot": "%2e%2e",
    "space": "a b",
    "tab": "a\tb",
    "newline": "a\nb",
    "no-break space": "a\u00a0b",
    "line separator": "a\u2028b",
    "zero-width space": "a\u200bb",
    "NUL": "a\x00b",
    "bell": "a\x07b",
    "unit separator": "a\x1fb",
    "DEL": "a\x7fb",
    "user mention": "<@U0123ABCD>",
    "enterprise user mention": "<@W0123ABCD>",
    "channel mention": "<!channel>",
    "here": "<!here>",
    "everyone": "<!everyone>",
    "user group": "<!subteam^S0123ABC>",
    "channel link": "<#C0123ABC|general>",
    "link": "<https://evil.example/x|client_1>",
    "bare mailto": "<mailto:a@b.com>",
    "mailto with different label": "<mailto:a@b.com|c@d.com>",
    "markup inside": "a<@U0123>b",
    "ampersand": "a&b",
    "quote": 'a"b',
    "backtick": "a`b",
    "leading dash": "-abc",
    "trailing dot": "abc.",
    "leading at": "@abc",
    "non-ASCII letter": "usér",
    "fullwidth letters": "ａｂｃ",
    "too long": "a" * (MAX_LENGTH + 1),
    # `$` matched before a final newline, and the mailto's address was not stripped (issue 32).
    "mailto with a final newline": "<mailto:client_1\n|client_1\n>",
    "mailto with a final CR LF": "<mailto:client_1\r\n|client_1\r\n>",
    "mailto with a final space": "<mailto:client_1 |client_1 >",
    "mailto with a leading newline": "<mailto:\nclient_1|\nclient_1>",
    "mailto, newline after the link": "<mailto:a@b.com|a@b.com>\nx",
}


@pytest.mark.parametrize("user_id", VALID)
def test_valid_ids_pass_unchanged(user_id):
    assert parse_user_id(user_id) == user_id
    assert parse_user_id(f"  {user_id}  ") == user_id


@pytest.mark.parametrize("name", list(INVALID))
def test_invalid_ids_are_refused_with_a_reason(name):
    with pytest.raises(InvalidUserId) as caught:
        parse_user_id(INVALID[name])
    assert str(caught.value).strip()


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", "no sFOX user id given"),
        (".", "'.' and '..' are not user ids"),
        ("..", "'.' and '..' are not user ids"),
        ("a/b", "may not contain '/'"),
        ("a b", "may not contain ' '"),
        ("a\x00b", "may not contain '\\x00'"),
        ("<@U0123ABCD>", "Slack mention"),
        ("<!channel>", "Slack mention"),
        ("<https://evil.example|x>", "Slack formatting"),
        ("<mailto:a@b.com|c@d.com>", "differ"),
        ("<mailto:client_1\n|client_1\n>", "may not contain '\\n'"),
        ("a" * 200, "at most 128 characters"),
    ],
)
def test_the_reason_says_what_is_wrong(text, why):
    with pytest.raises(InvalidUserId) as caught:
        parse_user_id(text)
    assert why in str(caught.value)


@pytest.mark.parametrize(
    ("text", "user_id"),
    [
        ("<mailto:sean@example.com|sean@example.com>", "sean@example.com"),
        (" <mailto:user+tag@example.co.uk|user+tag@example.co.uk> ", "user+tag@example.co.uk"),
    ],
)
def test_slack_mailto_links_are_unwrapped(text, user_id):
    assert parse_user_id(text) == user_id


def test_unwrapped_mailto_is_still_validated():
    with pytest.raises(InvalidUserId):
        parse_user_id("<mailto:a/b@c.com|a/b@c.com>")


@pytest.mark.parametrize(
    ("user_id", "segment"),
    [
        ("client_1", "client_1"),
        ("a.b-c_d", "a.b-c_d"),
        ("sean@example.com", "sean%40example.com"),
        ("user+tag@example.co.uk", "user%2Btag%40example.co.uk"),
    ],
)
def test_path_segment_percent_encodes(user_id, segment):
    assert path_segment(user_id) == segment


@pytest.mark.parametrize("bad", ["", ".", ".."])
def test_path_segment_refuses_dot_segments(bad):
    with pytest.raises(InvalidUserId):
        path_segment(bad)


SEGMENT_CHARS = set(string.ascii_letters + string.digits + "._-~%")


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.text(max_size=140), st.text(alphabet="ab./?#% \t\n\x00<>@!|:+-_", max_size=12)))
def test_any_text_is_refused_or_becomes_one_safe_segment(text):
    try:
        user_id = parse_user_id(text)
    except InvalidUserId as exc:
        assert str(exc)
        return
    segment = path_segment(user_id)
    assert set(segment) <= SEGMENT_CHARS
    assert segment not in (".", "..")
    assert unquote(segment) == user_id
    assert user_id == user_id.strip() and 0 < len(user_id) <= MAX_LENGTH
    assert not any(c in user_id for c in "/?#%<>&` ")


CONTROL = {chr(c) for c in (*range(0x20), *range(0x7F, 0xA0))} | set("\u2028\u2029\u200b\ufeff")
# An id that would pass, with a line break, a control or a space before or after it, or nothing.
NOISE = st.sampled_from(["", "", "\n", "\r\n", "\r", "\t", " ", "\x00", "\x0b", "\x85", "\u2028"])
CORE = st.from_regex(r"[A-Za-z0-9]([A-Za-z0-9._@+-]{0,5}[A-Za-z0-9_])?", fullmatch=True)
NOISY = st.tuples(NOISE, CORE, NOISE).map("".join)


@settings(max_examples=600, deadline=None)
@given(
    st.one_of(
        st.text(max_size=40),
        NOISY,
        NOISY.map(lambda s: f"<mailto:{s}|{s}>"),
        st.tuples(NOISY, NOISE).map(lambda p: f"<mailto:{p[0]}|{p[0]}>{p[1]}"),
    )
)
def test_no_accepted_id_holds_a_control_character(text):
    """Whatever the text, mailto-wrapped or not: an id accepted has no control or line-break
    character anywhere (the old `$` let a final `\n` through the mailto form)."""
    try:
        user_id = parse_user_id(text)
    except InvalidUserId:
        return
    assert not set(user_id) & CONTROL, repr(user_id)
    assert user_id.isprintable() and user_id == user_id.strip()


@settings(max_examples=400, deadline=None)
@given(st.sampled_from("UWCGDS"), st.text(alphabet="AB12\n\r \t\x00", max_size=8), st.text(max_size=3))
def test_a_slack_id_accepted_is_capitals_and_digits_only(first, body, tail):
    for pattern in (SLACK_USER_ID, SLACK_CHANNEL_ID, SLACK_GROUP_ID):
        for text in (first + body, first + body + tail, first + body + "\n"):
            if pattern.match(text):
                assert set(text) <= set(string.ascii_uppercase + string.digits), repr(text)


@pytest.mark.parametrize("pattern", [SLACK_USER_ID, SLACK_CHANNEL_ID, SLACK_GROUP_ID])
@pytest.mark.parametrize("tail", ["\n", "\r\n", " ", "\x00"])
def test_a_slack_id_with_a_final_newline_is_not_one(pattern, tail):
    good = {SLACK_USER_ID: "UALICE01", SLACK_CHANNEL_ID: "C0123ABC", SLACK_GROUP_ID: "S0ADMINS"}[pattern]
    assert pattern.match(good) and pattern.fullmatch(good)
    assert pattern.match(good + tail) is None and pattern.search(good + tail) is None


# -- what sFOX receives ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "user_id", "segment"),
    [
        ("client_1", "client_1", "client_1"),
        ("<mailto:sean@example.com|sean@example.com>", "sean@example.com", "sean%40example.com"),
        ("user+tag@example.co.uk", "user+tag@example.co.uk", "user%2Btag%40example.co.uk"),
        ("a.b-c_d", "a.b-c_d", "a.b-c_d"),
    ],
)
def test_sfox_receives_exactly_one_encoded_segment(bot, fake_sfox, typed, user_id, segment):
    if user_id not in fake_sfox.users:
        fake_sfox.add_user(user_id)
    record, card = open_request(bot, ALICE, f"{typed} left")
    assert record.sfox_user_id == user_id
    bot.driver.click(BOB, "sfox_approve", str(record.id), card.ts)
    wait_status(bot, record.id, "succeeded")
    assert [(r.method, r.raw_path) for r in fake_sfox.requests()] == [
        ("GET", f"/v1/enterprise/users/{segment}"),
        ("POST", f"/v1/enterprise/user-tokens/{segment}"),
        ("GET", "/v1/user/balance"),
        ("DELETE", f"/v1/enterprise/account/{segment}"),
    ]
    assert fake_sfox.deactivated == {user_id}
