"""What an sFOX call gives back besides a success: the typed error (`SfoxError`), the values a
call returns (`SfoxUser`, `CallResult`, the capped `Answer`), and the plain words each failure is
told in. Kept apart from the client so the workflow, the batches and the balance check can read
these values without the client's retry and pacing machinery.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import httpx

MAX_MESSAGE_CHARS = 300
# sFOX's own error text says it best for these (e.g. the non-zero balance of a 422).
OWN_TEXT_STATUSES = frozenset({400, 404, 422})

_PLAIN_MESSAGES = {
    400: "sFOX rejected the request as malformed (400)",
    401: "sFOX rejected the API key (401): check SFOX_API_KEY",
    403: "the sFOX API key is not allowed to do this (403)",
    404: "sFOX does not know this account (404)",
    429: "sFOX is rate limiting us (429); try again in a minute",
    500: "sFOX had an internal error (500); try again later",
    502: "a proxy in front of sFOX failed (502)",
    503: "sFOX is down for maintenance (503)",
    504: "a proxy in front of sFOX timed out (504)",
}


class SfoxError(Exception):
    """A failed sFOX call, as a value: HTTP status (None for transport errors) and a message a
    person can act on. `unknown` means the DELETE may or may not have happened."""

    def __init__(
        self, message: str, *, status: int | None = None, unknown: bool = False, attempts: int = 1
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.unknown = unknown
        self.attempts = attempts
        self.retry_after: float | None = None  # seconds, from a 429's Retry-After header

    @property
    def not_found(self) -> bool:
        return self.status == 404

    def __repr__(self) -> str:
        return f"SfoxError(status={self.status!r}, message={self.message!r}, unknown={self.unknown})"


@dataclass(frozen=True)
class SfoxUser:
    user_id: str
    email: str | None
    first_name: str | None
    last_name: str | None
    status: str | None
    account_type: str | None

    @property
    def name(self) -> str:
        return " ".join(p for p in (self.first_name, self.last_name) if p)

    @classmethod
    def from_json(cls, data: dict[str, Any], fallback_id: str) -> SfoxUser:
        def text(key: str) -> str | None:
            value = data.get(key)
            return str(value)[:200] if value is not None else None

        return cls(
            user_id=text("user_id") or fallback_id,
            email=text("email"),
            first_name=text("first_name"),
            last_name=text("last_name"),
            status=text("status"),
            account_type=text("account_type"),
        )


@dataclass(frozen=True)
class CallResult:
    """What one logical call did: final status, attempts made, seconds spent."""

    status: int
    attempts: int
    seconds: float


@dataclass(frozen=True)
class Answer:
    """An HTTP answer with its body already read (and capped)."""

    status_code: int
    headers: httpx.Headers
    content: bytes


def describe_transport_error(exc: httpx.TransportError) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return "sFOX did not answer in time (read timeout)"
    if isinstance(exc, httpx.RemoteProtocolError):
        return "the connection to sFOX broke before an answer came"
    return f"network error talking to sFOX ({type(exc).__name__})"


def error_message(response: Answer) -> str:
    """sFOX's own `{"error": ...}` text when there is one, else a plain description of what came."""
    status = response.status_code
    plain = _PLAIN_MESSAGES.get(status, f"sFOX answered HTTP {status}")
    body = response.content
    if not body.strip():
        return f"{plain}, with an empty body"
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    if isinstance(data, dict) and isinstance(data.get("error"), str) and data["error"].strip():
        if status in OWN_TEXT_STATUSES or status not in _PLAIN_MESSAGES:
            return clip(data["error"])
        # sFOX's text alone ("invalid token") does not say what to do about a 401/403/429/5xx.
        return clip(f"{plain}; sFOX said: {data['error']}")
    content_type = response.headers.get("content-type", "")
    if "html" in content_type or body.lstrip()[:1] == b"<":
        return f"{plain}, with an HTML page (probably from a proxy, not sFOX)"
    return f"{plain}, with an unexpected body: {clip(body.decode('utf-8', 'replace'), 120)}"


def clip(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """Flatten control characters and cut long text with an ellipsis."""
    flat = "".join(c if c.isprintable() else " " for c in text).strip()
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"
