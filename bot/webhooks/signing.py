"""The signatures of every HTTP exchange with a system outside Slack (issue 20), and the backoff
of what we send (`retry_delay`, the same everywhere).

What the bot sends (the intake API's outcome callbacks, the audit stream's batches) is signed v1,
Slack's own scheme with our names, so a receiver that verifies Slack's requests verifies ours the
same way:

    X-Sfox-Bot-Timestamp: <unix seconds>
    X-Sfox-Bot-Signature: v1=<hex HMAC-SHA256 of "v1:{timestamp}:{raw body}" with the shared secret>

What the bot receives (the intake API's requests, issue 32) is signed v2, over the request and
not only its body, so a captured request's headers open nothing else: another Idempotency-Key,
another path (`GET /api/v1/requests/N` for another N), another query or method are refused:

    X-Sfox-Bot-Signature: v2=<hex HMAC-SHA256 of
        "v2:{timestamp}:{METHOD}:{path[?query]}:{Idempotency-Key}:{raw body}">

with the method upper-case, the path as the bot receives it (with `?` and the raw query string
when there is one), and the key empty when there is none (always for a GET). A v1 signature on a
request is refused, saying so. The fields are joined with `:` and the path and the key may hold
one, so two splits of the same bytes verify alike; each would still be the request its signer
sent (the one route that takes a key ignores the query), and a signature is accepted once
(bot/intake/replay.py), so neither can be used twice.

Both: a timestamp more than five minutes away from now is refused (a replayed request), and
signatures are compared in constant time."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping

TIMESTAMP_HEADER = "X-Sfox-Bot-Timestamp"
SIGNATURE_HEADER = "X-Sfox-Bot-Signature"
VERSION = "v1"
# What a request to the bot is signed with (v1 is refused there).
REQUEST_VERSION = "v2"
REQUEST_SCHEME = "v2:{timestamp}:{method}:{path}:{idempotency key}:{body}"
# A signed request older or newer than this is refused: a captured one cannot be replayed later.
MAX_SKEW_SECONDS = 300
# Retries of a delivery that failed: from 1 s, doubling, at most a minute apart.
FIRST_RETRY_SECONDS = 1.0
MAX_RETRY_SECONDS = 60.0


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """`v1=<hex>` for `body` sent at `timestamp` (unix seconds, as sent in the header)."""
    base = f"{VERSION}:{timestamp}:".encode() + body
    return f"{VERSION}=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def signed_headers(secret: str, body: bytes, now: float | None = None) -> dict[str, str]:
    """The two headers that sign `body`, to send with it."""
    timestamp = str(int(time.time() if now is None else now))
    return {TIMESTAMP_HEADER: timestamp, SIGNATURE_HEADER: signature(secret, timestamp, body)}


def signature_problem(
    secret: str, headers: Mapping[str, str], body: bytes, now: float | None = None
) -> str | None:
    """Why a v1-signed message (a callback, a stream batch, as its receiver checks it) is not
    signed by `secret` (missing, stale, wrong), or None when it is. `headers` is looked up by the
    caller's mapping (use a WSGI environ through `from_environ`). The answer names no secret and
    no expected value."""
    problem = _timestamp_problem(headers, now)
    if problem:
        return problem
    expected = signature(secret, headers[TIMESTAMP_HEADER], body)
    if not hmac.compare_digest(headers[SIGNATURE_HEADER].encode(), expected.encode()):
        return f"{SIGNATURE_HEADER} does not match the body"
    return None


def request_signature(secret: str, timestamp: str, method: str, target: str, key: str, body: bytes) -> str:
    """`v2=<hex>` for a request to the bot: `method` on `target` (the path, with `?query` when
    there is one) with Idempotency-Key `key` ("" for none) and `body`, sent at `timestamp`."""
    base = f"{REQUEST_VERSION}:{timestamp}:{method.upper()}:{target}:{key}:".encode() + body
    return f"{REQUEST_VERSION}=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def signed_request_headers(
    secret: str, method: str, target: str, body: bytes = b"", key: str = "", now: float | None = None
) -> dict[str, str]:
    """The two headers that sign a request to the bot (what an integrator sends; the tests)."""
    timestamp = str(int(time.time() if now is None else now))
    return {
        TIMESTAMP_HEADER: timestamp,
        SIGNATURE_HEADER: request_signature(secret, timestamp, method, target, key, body),
    }


def request_signature_problem(
    secret: str,
    headers: Mapping[str, str],
    request: tuple[str, str, str],
    body: bytes,
    now: float | None = None,
) -> str | None:
    """Why a request received by the bot, `request` = (method, target, Idempotency-Key), is not
    signed v2 by `secret` (missing, stale, v1, wrong), or None when it is."""
    problem = _timestamp_problem(headers, now)
    if problem:
        return problem
    given = headers[SIGNATURE_HEADER]
    if not given.startswith(f"{REQUEST_VERSION}="):
        return (
            f"{SIGNATURE_HEADER}: only {REQUEST_VERSION} is accepted here: "
            f"{REQUEST_VERSION}=<hex HMAC-SHA256 of '{REQUEST_SCHEME}'> "
            "(method upper-case, path with ?query if any, the Idempotency-Key or empty)"
        )
    method, target, key = request
    expected = request_signature(secret, headers[TIMESTAMP_HEADER], method, target, key, body)
    if not hmac.compare_digest(given.encode(), expected.encode()):
        return f"{SIGNATURE_HEADER} does not match the request ({REQUEST_SCHEME})"
    return None


def _timestamp_problem(headers: Mapping[str, str], now: float | None) -> str | None:
    """Why the headers cannot be checked at all (missing, not a time, stale), or None."""
    timestamp = headers.get(TIMESTAMP_HEADER) or ""
    if not timestamp or not headers.get(SIGNATURE_HEADER):
        return f"missing {TIMESTAMP_HEADER} or {SIGNATURE_HEADER}"
    try:
        sent = int(timestamp)
    except ValueError:
        return f"{TIMESTAMP_HEADER} is not unix seconds"
    if abs((time.time() if now is None else now) - sent) > MAX_SKEW_SECONDS:
        return f"{TIMESTAMP_HEADER} is more than {MAX_SKEW_SECONDS // 60} minutes from now"
    return None


def from_environ(environ: Mapping[str, object]) -> dict[str, str]:
    """The signature headers of a WSGI request, under the names `signature_problem` reads."""
    out: dict[str, str] = {}
    for name in (TIMESTAMP_HEADER, SIGNATURE_HEADER):
        value = environ.get("HTTP_" + name.upper().replace("-", "_"))
        if isinstance(value, str):
            out[name] = value
    return out


def retry_delay(failures: int, retry_after: float | None = None) -> float:
    """Seconds to wait after the `failures`-th failed attempt in a row (1, 2, 4, … 60); a
    receiver's `Retry-After` (seconds, bot/retry_after.py) when it asks for longer, within the
    same 60 s: never sooner than the backoff, never later than its cap."""
    delay = min(MAX_RETRY_SECONDS, FIRST_RETRY_SECONDS * 2 ** max(0, failures - 1))
    if retry_after is not None:
        delay = max(delay, min(retry_after, MAX_RETRY_SECONDS))
    return delay
