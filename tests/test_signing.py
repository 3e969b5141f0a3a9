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


def test_a_receivers_retry_after_is_waited_when_longer_than_the_backoff_within_its_cap():
    assert retry_delay(1, 30.0) == 30 and retry_delay(2, 2.5) == 2.5
    assert retry_delay(3, 1.0) == 4  # never sooner than the backoff
    assert retry_delay(1, 3600.0) == 60 and retry_delay(8, 3600.0) == 60  # never past its cap
    assert retry_delay(1, None) == 1


# -- v2: what the bot receives (the intake API's requests, issue 32) -----------------------------

REQUEST = ("POST", "/api/v1/requests", "key-1")


def test_a_request_is_signed_v2_over_its_method_path_key_and_body():
    from bot.webhooks.signing import request_signature_problem, signed_request_headers

    at = 1_800_000_000
    headers = signed_request_headers(SECRET, "post", "/api/v1/requests", BODY, "key-1", now=at)
    base = b"v2:1800000000:POST:/api/v1/requests:key-1:" + BODY
    assert headers[SIGNATURE_HEADER] == "v2=" + hmac.new(SECRET.encode(), base, hashlib.sha256).hexdigest()
    assert request_signature_problem(SECRET, headers, REQUEST, BODY, now=at + 299) is None
    for other in (
        ("GET", "/api/v1/requests", "key-1"),
        ("POST", "/api/v1/requests?x=1", "key-1"),
        ("POST", "/api/v1/requests", "key-2"),
        ("POST", "/api/v1/requests", ""),
    ):
        assert "does not match the request" in request_signature_problem(SECRET, headers, other, BODY, now=at)
    assert "does not match" in request_signature_problem(SECRET, headers, REQUEST, BODY + b" ", now=at)
    assert "more than 5 minutes" in request_signature_problem(SECRET, headers, REQUEST, BODY, now=at + 301)
    assert "missing" in request_signature_problem(SECRET, {}, REQUEST, BODY, now=at)


def test_a_v1_signature_on_a_request_is_refused_naming_v2():
    from bot.webhooks.signing import REQUEST_SCHEME, request_signature_problem

    at = 1_800_000_000
    old = signed_headers(SECRET, BODY, now=at)
    problem = request_signature_problem(SECRET, old, REQUEST, BODY, now=at)
    assert problem is not None and "only v2 is accepted" in problem and REQUEST_SCHEME in problem
    assert signature_problem(SECRET, old, BODY, now=at) is None  # v1 stays what callbacks and the stream use
