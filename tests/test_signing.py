"""The one signature for intake requests, callbacks and audit-stream batches (bot/webhooks/signing.py)."""

from __future__ import annotations

import hashlib
import hmac

from bot.webhooks.signing import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    from_environ,
    retry_delay,
    signature_problem,
    signed_headers,
)

SECRET = "s3cret-for-tests"
BODY = b'{"sfox_user_id": "client_1"}'


def test_signed_as_documented_and_accepted():
    headers = signed_headers(SECRET, BODY, now=1_800_000_000)
    assert headers[TIMESTAMP_HEADER] == "1800000000"
    base = b"v1:1800000000:" + BODY
    assert headers[SIGNATURE_HEADER] == "v1=" + hmac.new(SECRET.encode(), base, hashlib.sha256).hexdigest()
    assert signature_problem(SECRET, headers, BODY, now=1_800_000_000 + 299) is None


def test_every_bad_signature_is_refused_with_what_is_wrong():
    headers = signed_headers(SECRET, BODY, now=1_800_000_000)
    at = 1_800_000_000
    assert "missing" in signature_problem(SECRET, {}, BODY, now=at)
    assert "more than 5 minutes" in signature_problem(SECRET, headers, BODY, now=at + 301)
    assert "more than 5 minutes" in signature_problem(SECRET, headers, BODY, now=at - 301)
    assert "does not match" in signature_problem(SECRET, headers, BODY + b" ", now=at)
    assert "does not match" in signature_problem("another-secret", headers, BODY, now=at)
    bad_time = {**headers, TIMESTAMP_HEADER: "soon"}
    assert "unix seconds" in signature_problem(SECRET, bad_time, BODY, now=at)
    assert SECRET not in signature_problem("x" + SECRET, headers, BODY, now=at)


def test_headers_read_from_a_wsgi_environ():
    environ = {"HTTP_X_SFOX_BOT_TIMESTAMP": "1", "HTTP_X_SFOX_BOT_SIGNATURE": "v1=ab"}
    assert from_environ(environ) == {TIMESTAMP_HEADER: "1", SIGNATURE_HEADER: "v1=ab"}


def test_retries_back_off_from_one_second_doubling_to_a_minute():
    assert [retry_delay(n) for n in range(1, 9)] == [1, 2, 4, 8, 16, 32, 60, 60]
