"""One signature for every HTTP exchange with a system outside Slack (issue 20): the intake API's
requests (checked), its outcome callbacks and the audit stream's batches (signed). It is Slack's
own scheme with our names, so a receiver that verifies Slack's requests verifies ours the same way:

    X-Sfox-Bot-Timestamp: <unix seconds>
    X-Sfox-Bot-Signature: v1=<hex HMAC-SHA256 of "v1:{timestamp}:{raw body}" with the shared secret>

A timestamp more than five minutes away from now is refused (a replayed request), and signatures
are compared in constant time. Retries of what we send back off the same way everywhere
(`retry_delay`)."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping

TIMESTAMP_HEADER = "X-Sfox-Bot-Timestamp"
SIGNATURE_HEADER = "X-Sfox-Bot-Signature"
VERSION = "v1"
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
    """Why a received request is not signed by `secret` (missing, stale, wrong), or None when it
    is. `headers` is looked up case-insensitively by the caller's mapping (use a WSGI environ
    through `from_environ`). The answer names no secret and no expected value."""
    timestamp = headers.get(TIMESTAMP_HEADER) or ""
    given = headers.get(SIGNATURE_HEADER) or ""
    if not timestamp or not given:
        return f"missing {TIMESTAMP_HEADER} or {SIGNATURE_HEADER}"
    try:
        sent = int(timestamp)
    except ValueError:
        return f"{TIMESTAMP_HEADER} is not unix seconds"
    if abs((time.time() if now is None else now) - sent) > MAX_SKEW_SECONDS:
        return f"{TIMESTAMP_HEADER} is more than {MAX_SKEW_SECONDS // 60} minutes from now"
    if not hmac.compare_digest(given.encode(), signature(secret, timestamp, body).encode()):
        return f"{SIGNATURE_HEADER} does not match the body"
    return None


def from_environ(environ: Mapping[str, object]) -> dict[str, str]:
    """The signature headers of a WSGI request, under the names `signature_problem` reads."""
    out: dict[str, str] = {}
    for name in (TIMESTAMP_HEADER, SIGNATURE_HEADER):
        value = environ.get("HTTP_" + name.upper().replace("-", "_"))
        if isinstance(value, str):
            out[name] = value
    return out


def retry_delay(failures: int) -> float:
    """Seconds to wait after the `failures`-th failed attempt in a row (1, 2, 4, … 60)."""
    return min(MAX_RETRY_SECONDS, FIRST_RETRY_SECONDS * 2 ** max(0, failures - 1))
