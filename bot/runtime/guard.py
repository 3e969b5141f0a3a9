"""The gate in front of Bolt for HTTP requests: authenticity first, then shape.

Bolt checks signatures too, but it parses the body before (and regardless of) that check, and a
malformed body or timestamp makes it raise, which the server turns into a 500. Checking here
first means a forged or stale request gets a plain 401 and a signed but malformed one a plain 400,
and neither reaches any listener or changes anything.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

MAX_SKEW_SECONDS = 5 * 60


@dataclass(frozen=True)
class Rejection:
    """Why a request is refused: an HTTP status line and a short reason (never a stack trace)."""

    status: str
    reason: str


def check_signature(
    secret: str,
    body: bytes,
    headers: Mapping[str, str],
    now: Callable[[], float] = time.time,
) -> Rejection | None:
    """Slack's v0 signature over `v0:timestamp:body`, with a timestamp at most 5 minutes off."""
    timestamp = headers.get("x-slack-request-timestamp") or ""
    signature = headers.get("x-slack-signature") or ""
    if not secret or not timestamp or not signature:
        return Rejection("401 Unauthorized", "missing Slack signature headers")
    if not timestamp.isascii() or not timestamp.isdigit() or len(timestamp) > 12:
        return Rejection("401 Unauthorized", "malformed Slack request timestamp")
    if abs(now() - int(timestamp)) > MAX_SKEW_SECONDS:
        return Rejection("401 Unauthorized", "stale Slack request timestamp")
    expected = sign(secret, timestamp, body)
    if not hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace")):
        return Rejection("401 Unauthorized", "invalid Slack signature")
    return None


def sign(secret: str, timestamp: str, body: bytes) -> str:
    base = b"v0:" + timestamp.encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def bolt_safe_form(body: bytes) -> bytes | None:
    """Bolt takes any form body containing the word "payload" for an interaction payload, so a
    slash command whose text (or channel or user name) contains it reaches no listener. Such a
    body is returned with the word percent-encoded (`%70ayload`: the same decoded fields), to be
    re-signed by the caller after the original signature was checked; None when nothing to do."""
    if b"payload" not in body or body.lstrip()[:1] == b"{":
        return None
    fields = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    if "payload" in fields:
        return None
    return body.replace(b"payload", b"%70ayload")


def check_shape(body: bytes, content_type: str | None) -> Rejection | None:
    """The body must decode the way Bolt will decode it, into a JSON object or form fields."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return Rejection("400 Bad Request", "the body is not UTF-8")
    if not text:
        return None
    try:
        parsed: Any
        if content_type == "application/json" or text.startswith("{"):
            parsed = json.loads(text)
        elif "payload" in text:
            payload = dict(parse_qsl(text, keep_blank_values=True)).get("payload")
            parsed = {} if payload is None else json.loads(payload)
        else:
            parsed = dict(parse_qsl(text, keep_blank_values=True))
    except ValueError:
        return Rejection("400 Bad Request", "the body is not a Slack payload")
    if not isinstance(parsed, dict):
        return Rejection("400 Bad Request", "the body is not a Slack payload")
    for key in ("user", "team", "channel", "container"):
        if key in parsed and not isinstance(parsed[key], dict | type(None)):
            return Rejection("400 Bad Request", f"the payload's {key!r} is malformed")
    if "actions" in parsed and not (
        isinstance(parsed["actions"], list) and all(isinstance(a, dict) for a in parsed["actions"])
    ):
        return Rejection("400 Bad Request", "the payload's 'actions' is malformed")
    return None
