"""The sFOX Connect enterprise API client: the only code that holds the enterprise key.

Retries follow ../shared/SFOX_API.md: only 429/500/502/503/504 and transport errors, with capped
exponential backoff and jitter, honouring Retry-After, inside a total time budget. A DELETE is the
exception: once it may have reached sFOX (read timeout, reset, 502/504 from a proxy) a second one
could act twice or answer a misleading 404, so its outcome is reported as *unknown* instead, and
the workflow reconciles it with a read.

What a call gives back (SfoxError, SfoxUser, CallResult) and the words of each failure are in
bot/sfox/errors.py; every attempt first takes a slot of a `RateLimit` (bot/sfox/pacing.py), the
database-shared one in the bot, and says when its answer (or its failure) came back: the slot
counts until then and a window more. An attempt is given no more time than is left of its slot's
bound (the limiter's `bound`, this client's timeout in the bot), so a slot whose answer never
comes stops counting only once the call cannot be in flight any more.
"""

from __future__ import annotations

import functools
import json
import random
import ssl
import time
from collections.abc import Callable
from typing import Any

import certifi
import httpx

from bot.retry_after import retry_after_seconds
from bot.sfox.errors import (
    Answer,
    CallResult,
    SfoxError,
    SfoxUser,
    describe_transport_error,
    error_message,
)
from bot.sfox.pacing import LocalRateLimiter, RateLimit, Slot, hold_after_429
from bot.sfox.userid import path_segment

MAX_BODY_BYTES = 64 * 1024
BACKOFF_BASE_SECONDS = 0.25
BACKOFF_CAP_SECONDS = 8.0
RETRY_AFTER_CAP_SECONDS = 30.0
RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
# After a DELETE, these may come from a proxy that already forwarded it: the outcome is unknown.
AMBIGUOUS_DELETE_STATUSES = frozenset({502, 504})


@functools.cache
def tls_context() -> ssl.SSLContext:
    """One TLS context per process, with the CA bundle httpx would load itself (certifi's):
    loading it costs about 45 ms of CPU, which httpx would pay again for every client."""
    return ssl.create_default_context(cafile=certifi.where())


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
        limiter: RateLimit | None = None,
    ) -> None:
        """`limiter` paces every call: the bot passes the one shared by every process and replica
        (bot/runtime/bootstrap.py); by default a window of `rate_limit_per_10s` per 10 s in this
        process, shared by all its threads (`sfox-bot check`, which has no database)."""
        self.base_url = base_url.rstrip("/")
        self.timeout_seconds = timeout_seconds
        self.max_attempts = max_attempts
        self._sleep = sleep
        self._key = api_key.encode()
        self._limiter = limiter or LocalRateLimiter(rate_limit_per_10s, bound=timeout_seconds)
        self._http = httpx.Client(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {api_key}", "User-Agent": "sfox-deactivate-bot/0.1"},
            transport=transport,
            verify=tls_context(),
            follow_redirects=False,
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=32),
        )

    @property
    def limiter(self) -> RateLimit:
        """What paces this client's calls: a caller that must wait for a slot before it commits to
        a call (a batch, before it claims a user) takes one here and passes it as `slot`."""
        return self._limiter

    def close(self) -> None:
        self._http.close()

    def get_user(self, user_id: str, *, slot: Slot | None = None) -> SfoxUser:
        """Look an end user up; raises SfoxError (status 404 when sFOX does not know the id).
        `slot`: one the caller took of this client's limiter, used by the first attempt."""
        response, _ = self._call(
            "GET", f"/v1/enterprise/users/{path_segment(user_id)}", idempotent=True, slot=slot
        )
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

    def get_user_balances(self, user_token: str, *, hold: RateLimit | None = None) -> Any:
        """`GET /v1/user/balance` as the end user: the parsed JSON (the caller checks its shape).
        Sent once, never retried: the route allows only a few calls per 10 s, and each retry
        would use one up. The token goes only into this request's Authorization header. `hold`:
        the route's limiter, closed for its Retry-After by a 429."""
        response, _ = self._call(
            "GET", "/v1/user/balance", idempotent=True, bearer=user_token, max_attempts=1, hold=hold
        )
        try:
            return json.loads(response.content)
        except ValueError:
            raise SfoxError(
                f"sFOX answered {response.status_code} with a body that is not JSON",
                status=response.status_code,
            ) from None

    def deactivate(
        self, user_id: str, *, hold: RateLimit | None = None, slot: Slot | None = None
    ) -> CallResult:
        """DELETE the account. Success is any 2xx (the body is never parsed); raises SfoxError.
        `hold`, for a caller that paces many calls together (a batch): a 429 is not retried but
        closes that limiter for its Retry-After (every replica's, when it is shared) and is
        raised at once, with `retry_after`: sFOX did nothing, and the caller sends it again.
        `slot`: one the caller took of this client's limiter, used by the first attempt."""
        _, result = self._call(
            "DELETE",
            f"/v1/enterprise/account/{path_segment(user_id)}",
            idempotent=False,
            hold=hold,
            slot=slot,
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
        hold: RateLimit | None = None,
        slot: Slot | None = None,
    ) -> tuple[Answer, CallResult]:
        try:
            return self._attempts(method, path, idempotent, params, bearer, max_attempts, hold, slot)
        finally:
            if slot is not None:  # the caller's slot, if no attempt used it (out of time already)
                slot.release()

    def _attempts(
        self,
        method: str,
        path: str,
        idempotent: bool,
        params: dict[str, str] | None,
        bearer: str | None,
        max_attempts: int | None,
        hold: RateLimit | None,
        slot: Slot | None,
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
            if slot is not None and slot.deadline - time.monotonic() < min(remaining, 1.0):
                slot.release()  # the caller's, taken too long ago to be used now: nothing sent
                slot = None
            if slot is None and remaining > 0:
                slot = self._limiter.acquire(timeout=remaining)
            if remaining <= 0 or slot is None:
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
            # And no more than is left of the slot's bound, so the slot counts while it may fly.
            per_try = max(0.001, min(per_try, slot.deadline - time.monotonic()))
            may_have_arrived = False
            try:
                slot.sent = True
                try:
                    response = self._send(method, path, params, timeout=per_try, bearer=bearer)
                finally:
                    slot.answered()  # the answer, or the failure, came back: now + window counts
                    slot = None
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
                error = SfoxError(f"could not connect to sFOX ({type(exc).__name__})", attempts=attempt)
                retry_after = None
            except httpx.TransportError as exc:
                may_have_arrived = True
                error = SfoxError(describe_transport_error(exc), attempts=attempt)
                retry_after = None
            else:
                status = response.status_code
                result = CallResult(status, attempt, time.monotonic() - started)
                if 200 <= status < 300:
                    return response, result
                error = SfoxError(error_message(response), status=status, attempts=attempt)
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
                retry_after = retry_after_seconds(response.headers.get("Retry-After"))
                if status == 429 and hold is not None:
                    error.retry_after = retry_after
                    hold_after_429(hold, retry_after)
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


def _backoff(attempt: int, retry_after: float | None) -> float:
    exponential = min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2 ** (attempt - 1))
    delay = random.uniform(exponential / 2, exponential)
    if retry_after is not None:
        delay = max(delay, min(retry_after, RETRY_AFTER_CAP_SECONDS))
    return delay
