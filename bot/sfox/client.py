"""The sFOX Connect enterprise API client: the only code that holds the enterprise key.

Retries follow ../shared/SFOX_API.md: only 429/500/502/503/504 and transport errors, with capped
exponential backoff and jitter, honouring Retry-After, inside a total time budget. A DELETE is the
exception: once it may have reached sFOX (read timeout, reset, 502/504 from a proxy) a second one
could act twice or answer a misleading 404, so its outcome is reported as *unknown* instead, and
the workflow reconciles it with a read.
"""

from __future__ import annotations

import email.utils
import json
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC
from typing import Any

import httpx

from bot.sfox.userid import path_segment

MAX_BODY_BYTES = 64 * 1024
MAX_MESSAGE_CHARS = 300
BACKOFF_BASE_SECONDS = 0.25
BACKOFF_CAP_SECONDS = 8.0
RETRY_AFTER_CAP_SECONDS = 30.0
RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
# After a DELETE, these may come from a proxy that already forwarded it: the outcome is unknown.
AMBIGUOUS_DELETE_STATUSES = frozenset({502, 504})
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


class RateLimiter:
    """A sliding-window limiter shared by every call of one client (sFOX allows 250 per 10 s per IP;
    the default keeps headroom for other tools behind the same address)."""

    def __init__(self, limit: int, window: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.window = window
        self.clock = clock
        self._sent: deque[float] = deque()
        self._lock = threading.Lock()

    def acquire(self, deadline: float) -> bool:
        while True:
            with self._lock:
                now = self.clock()
                while self._sent and now - self._sent[0] >= self.window:
                    self._sent.popleft()
                if len(self._sent) < self.limit:
                    self._sent.append(now)
                    return True
                wait = self.window - (now - self._sent[0])
            if now + wait > deadline:
                return False
            time.sleep(min(wait, 0.5))


class SfoxClient:
    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout_seconds: float = 30.0,
        max_attempts: int = 4,
        rate_limit_per_10s: int = 200,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout_seconds = timeout_seconds
        self.max_attempts = max_attempts
        self._sleep = sleep
        self._key = api_key.encode()
        self._limiter = RateLimiter(rate_limit_per_10s)
        self._http = httpx.Client(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {api_key}", "User-Agent": "sfox-deactivate-bot/0.1"},
            transport=transport,
            follow_redirects=False,
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=32),
        )

    def close(self) -> None:
        self._http.close()

    def get_user(self, user_id: str) -> SfoxUser:
        """Look an end user up; raises SfoxError (status 404 when sFOX does not know the id)."""
        response, _ = self._call("GET", f"/v1/enterprise/users/{path_segment(user_id)}", idempotent=True)
        try:
            data = json.loads(response.content)["data"]
            if not isinstance(data, dict):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            raise SfoxError(
                f"sFOX answered {response.status_code} with a body that is not the expected user record",
                status=response.status_code,
            ) from None
        return SfoxUser.from_json(data, user_id)

    def ping(self) -> CallResult:
        """A harmless authenticated read, to prove the key works."""
        _, result = self._call(
            "GET", "/v1/enterprise/users", idempotent=True, params={"accountRole": "advisor"}
        )
        return result

    def create_user_token(self, user_id: str) -> str:
        """A short-lived token to act as the end user (for reading their balances). The caller
        uses it for one call and drops it: it is never stored, logged or shown."""
        response, _ = self._call(
            "POST", f"/v1/enterprise/user-tokens/{path_segment(user_id)}", idempotent=True
        )
        try:
            token = json.loads(response.content)["data"]["token"]
            if not isinstance(token, str) or not token or any(c.isspace() for c in token):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            raise SfoxError(
                f"sFOX answered {response.status_code} without a usable user token",
                status=response.status_code,
            ) from None
        return token

    def get_user_balances(self, user_token: str) -> Any:
        """`GET /v1/user/balance` as the end user: the parsed JSON (the caller checks its shape).
        Sent once, never retried: the route allows only a few calls per 10 s, and each retry
        would use one up. The token goes only into this request's Authorization header."""
        response, _ = self._call(
            "GET", "/v1/user/balance", idempotent=True, bearer=user_token, max_attempts=1
        )
        try:
            return json.loads(response.content)
        except ValueError:
            raise SfoxError(
                f"sFOX answered {response.status_code} with a body that is not JSON",
                status=response.status_code,
            ) from None

    def deactivate(self, user_id: str, *, retry_rate_limited: bool = True) -> CallResult:
        """DELETE the account. Success is any 2xx (the body is never parsed); raises SfoxError.
        `retry_rate_limited=False`: a 429 is raised at once (with `retry_after`), for a caller
        that paces many calls together (bot.batch) and slows all of them down instead."""
        _, result = self._call(
            "DELETE",
            f"/v1/enterprise/account/{path_segment(user_id)}",
            idempotent=False,
            retry_rate_limited=retry_rate_limited,
        )
        return result

    def _call(
        self,
        method: str,
        path: str,
        *,
        idempotent: bool,
        params: dict[str, str] | None = None,
        bearer: str | None = None,
        max_attempts: int | None = None,
        retry_rate_limited: bool = True,
    ) -> tuple[Answer, CallResult]:
        started = time.monotonic()
        deadline = started + self.timeout_seconds
        attempt = 0
        # A DELETE that got a 5xx may still have been carried out before sFOX failed; if a retry
        # then answers 404 ("does not exist"), that 404 may be our own earlier success.
        maybe_applied = False
        error: SfoxError | None = None
        max_attempts = max_attempts or self.max_attempts
        while True:
            attempt += 1
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self._limiter.acquire(deadline):
                if error is not None:
                    raise error  # what the last attempt got says more than "out of time"
                raise SfoxError(
                    "not sent: the bot's own sFOX rate limit (SFOX_RATE_LIMIT_PER_10S) had no free "
                    f"slot within {self.timeout_seconds:g} s (SFOX_TIMEOUT_SECONDS); nothing reached sFOX",
                    attempts=0,
                )
            # A hung read may use at most half the budget, so a read can always be tried again; a
            # DELETE gets all that is left, since it is never re-sent after a read timeout anyway.
            per_try = remaining if not idempotent else min(remaining, self.timeout_seconds / 2)
            may_have_arrived = False
            try:
                response = self._send(method, path, params, timeout=per_try, bearer=bearer)
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
                error = SfoxError(f"could not connect to sFOX ({type(exc).__name__})", attempts=attempt)
                retry_after = None
            except httpx.TransportError as exc:
                may_have_arrived = True
                error = SfoxError(_describe_transport_error(exc), attempts=attempt)
                retry_after = None
            else:
                status = response.status_code
                result = CallResult(status, attempt, time.monotonic() - started)
                if 200 <= status < 300:
                    return response, result
                error = SfoxError(_error_message(response), status=status, attempts=attempt)
                if status == 404 and maybe_applied and not idempotent:
                    error.unknown = True
                    error.message = (
                        f"{error.message} after an earlier attempt failed with a server error; "
                        "the deactivation may or may not have happened"
                    )
                    raise error
                if status not in RETRYABLE_STATUSES:
                    raise error
                may_have_arrived = status in AMBIGUOUS_DELETE_STATUSES
                maybe_applied = maybe_applied or status >= 500
                retry_after = _retry_after_seconds(response.headers.get("Retry-After"))
                if status == 429 and not retry_rate_limited:
                    error.retry_after = retry_after
                    raise error
            if may_have_arrived and not idempotent:
                error.unknown = True
                error.message = f"{error.message}; the deactivation may or may not have happened"
                raise error
            if attempt >= max_attempts:
                raise error
            delay = _backoff(attempt, retry_after)
            if time.monotonic() + delay >= deadline:
                raise error
            self._sleep(delay)

    def _send(
        self,
        method: str,
        path: str,
        params: dict[str, str] | None,
        timeout: float,
        bearer: str | None = None,
    ) -> Answer:
        """Send and read at most MAX_BODY_BYTES of the answer, so a huge body cannot exhaust memory.
        `bearer` replaces the enterprise key for this one request (a user token)."""
        per_try = httpx.Timeout(timeout, connect=min(timeout, 5.0))
        headers = {"Authorization": f"Bearer {bearer}"} if bearer else None
        request = self._http.build_request(method, path, params=params, headers=headers, timeout=per_try)
        response = self._http.send(request, stream=True)
        try:
            chunks: list[bytes] = []
            size = 0
            for chunk in response.iter_bytes():
                chunks.append(chunk)
                size += len(chunk)
                if size >= MAX_BODY_BYTES:
                    break
        finally:
            response.close()
        body = b"".join(chunks)[:MAX_BODY_BYTES]
        # A proxy may echo the request, key or user token included, in an error page; error text
        # built from the body ends up in Slack and the database, so they are cut out here.
        for secret in (self._key, bearer.encode() if bearer else b""):
            if secret:
                body = body.replace(secret, b"[REDACTED]")
        return Answer(response.status_code, response.headers, body)


@dataclass(frozen=True)
class Answer:
    """An HTTP answer with its body already read (and capped)."""

    status_code: int
    headers: httpx.Headers
    content: bytes


def _backoff(attempt: int, retry_after: float | None) -> float:
    exponential = min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2 ** (attempt - 1))
    delay = random.uniform(exponential / 2, exponential)
    if retry_after is not None:
        delay = max(delay, min(retry_after, RETRY_AFTER_CAP_SECONDS))
    return delay


def _retry_after_seconds(value: str | None) -> float | None:
    """Retry-After as seconds or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:  # "-0000" means UTC with no claim about the local zone
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - time.time())


def _describe_transport_error(exc: httpx.TransportError) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return "sFOX did not answer in time (read timeout)"
    if isinstance(exc, httpx.RemoteProtocolError):
        return "the connection to sFOX broke before an answer came"
    return f"network error talking to sFOX ({type(exc).__name__})"


def _error_message(response: Answer) -> str:
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
