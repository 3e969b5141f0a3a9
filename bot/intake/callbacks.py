"""The intake API's outcome callbacks: once a request asked with a `callback_url` reaches its
final status (succeeded, failed, denied, expired, blocked, cancelled), that outcome is POSTed
there, as JSON signed like the API's requests (bot/webhooks/signing.py).

Owed in the database (bot/store/intake.py), so a restart does not lose one: any replica's
callback loop (a `DueLoop`, like the outbox's) takes a due callback with a compare-and-set that
moves its due time to the end of a lease, sends it, and marks it delivered. A sender that dies
mid-POST leaves it due at the lease's end, so a receiver may see an outcome twice: it is keyed by
`request_id`.

Each attempt asks bot/webhooks/destinations.py first (issue 32): the URL again (the allow-list
may have changed since intake), then the name resolved once, every address checked, and the POST
sent to a checked address itself (the name kept in Host, in SNI and for the certificate's
check), so DNS cannot answer differently between the check and the connection; no proxy from the
environment, no redirects. A destination refused is final at once. A receiver that fails (5xx,
408, 429, a timeout, a refused connection, a name that does not resolve) is tried again after
`retry_delay` (1 s doubling to 60 s), at most SFOX_INTAKE_CALLBACK_ATTEMPTS times in all; another
4xx is an answer that will not change. A retried answer's `Retry-After` (seconds or an HTTP date)
is honoured when it asks for longer than the backoff, up to the backoff's 60 s cap. Given up, for any of these reasons, the callback is
`abandoned`: audited (`callback_abandoned`: attempts, reason, the last status or error class,
never the URL's path or query), logged, and shown by the API's GET and `sfox-bot show`."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import datetime, timedelta

import httpx

from bot.intake.body import MAX_CALLBACK_URL
from bot.requests.history import history_row
from bot.retry_after import retry_after_seconds
from bot.runtime.delivery import DueLoop
from bot.store.db import Store
from bot.store.intake import IntakeStore, OwedCallback
from bot.store.records import Event
from bot.webhooks.destinations import (
    AllowedHosts,
    Destination,
    Refused,
    Resolver,
    Unresolved,
    checked_addresses,
    destination,
    system_resolver,
)
from bot.webhooks.signing import retry_delay, signed_headers

log = logging.getLogger("sfox_bot.intake.callbacks")

# Each of connect (per address), write and read; the checked addresses tried in turn when one
# refuses the connection (a dual-stack name), at most MAX_ADDRESSES of them.
TIMEOUT = httpx.Timeout(10.0, connect=5.0)
MAX_ADDRESSES = 3
# Longer than an attempt can take (3 × 5 s + 10 s + 10 s): only a dead sender's callback falls due
# again at its end.
LEASE = timedelta(seconds=60)
RETRIED_STATUSES = frozenset({408, 429})
DEFAULT_ATTEMPTS = 60
# Why a callback was given up, as its audit event says.
GAVE_UP_ATTEMPTS, GAVE_UP_REFUSED, GAVE_UP_DESTINATION = "attempts", "refused", "destination"


def callback_client(transport: httpx.BaseTransport | None = None) -> httpx.Client:
    """The client callbacks are POSTed with: a transport of its own, so no proxy is taken from the
    environment (the connection goes to the checked address itself), and no redirects."""
    return httpx.Client(transport=transport or httpx.HTTPTransport(), timeout=TIMEOUT, follow_redirects=False)


class Callbacks:
    def __init__(
        self,
        store: Store,
        secret: str,
        clock: Callable[[], datetime],
        *,
        hosts: AllowedHosts = frozenset(),
        max_attempts: int = DEFAULT_ATTEMPTS,
        resolve: Resolver = system_resolver,
    ) -> None:
        self.store = store
        self.keys = IntakeStore(store)
        self._secret = secret
        self.now = clock
        self.hosts = hosts
        self.max_attempts = max_attempts
        self.resolve = resolve
        self.http = callback_client()

    def deliver_due(self) -> int:
        """Send the callbacks due now that this replica takes; returns how many were received."""
        sent = 0
        for owed in self.keys.due_callbacks(self.now()):
            if self.keys.take_callback(owed, self.now(), LEASE):
                sent += self._send(owed)
        return sent

    def _send(self, owed: OwedCallback) -> int:
        attempt = owed.attempts + 1
        if attempt > self.max_attempts:  # the setting was lowered since its last attempt
            return self._abandon(owed, owed.attempts, GAVE_UP_ATTEMPTS, owed.error or "none", None)
        target = destination(owed.url, self.hosts, MAX_CALLBACK_URL)
        checked = target if isinstance(target, Refused) else checked_addresses(target, self.resolve)
        if isinstance(checked, Refused):
            return self._abandon(owed, attempt, GAVE_UP_DESTINATION, checked.problem, None)
        record = self.store.get(owed.request_id)
        assert record is not None
        fields = {"request_id": record.id, "status": record.status, "attempt": attempt}
        retry_after: float | None = None
        if isinstance(checked, Unresolved):
            status, error = None, checked.error
        else:
            assert isinstance(target, Destination)
            body = json.dumps(
                {"request_id": record.id, "status": record.status, "record": history_row(record)}
            ).encode()
            status, error, retry_after = self._post(owed.url, target, checked, body)
        if status is not None and 200 <= status < 300:
            self.keys.callback_delivered(owed.id, self.now())
            log.info("outcome callback delivered", extra=fields)
            return 1
        if status is not None and 400 <= status < 500 and status not in RETRIED_STATUSES:
            return self._abandon(owed, attempt, GAVE_UP_REFUSED, error, status)
        if attempt >= self.max_attempts:
            return self._abandon(owed, attempt, GAVE_UP_ATTEMPTS, error, status)
        wait = retry_delay(attempt, retry_after)
        self.keys.callback_failed(owed.id, error, self.now() + timedelta(seconds=wait))
        log.warning(
            "outcome callback not received; will try again",
            extra={**fields, "error": error, "retry_in": wait},
        )
        return 0

    def _post(
        self, url: str, target: Destination, addresses: list[str], body: bytes
    ) -> tuple[int | None, str, float | None]:
        """POST `body` to the first of the checked `addresses` that takes the connection: the URL's
        host replaced by the address, the name kept in Host and (https) in SNI, where the
        certificate is checked against it. (The status, or None; what to record; the answer's
        Retry-After in seconds, or None.)"""
        original = httpx.URL(url)
        headers = {
            "Content-Type": "application/json",
            "Host": original.netloc.decode("ascii"),
            **signed_headers(self._secret, body),
        }
        extensions = (
            {"sni_hostname": target.host} if target.scheme == "https" and target.literal is None else {}
        )
        error = "no address"
        for address in addresses[:MAX_ADDRESSES]:
            pinned = original.copy_with(host=address)
            try:
                response = self.http.post(pinned, content=body, headers=headers, extensions=extensions)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:  # nothing sent: the next one
                error = type(exc).__name__
                continue
            except httpx.HTTPError as exc:
                return None, type(exc).__name__, None
            wait = retry_after_seconds(response.headers.get("Retry-After"), self.now().timestamp())
            return response.status_code, f"http {response.status_code}", wait
        return None, error, None

    def _abandon(self, owed: OwedCallback, attempts: int, reason: str, error: str, status: int | None) -> int:
        event = Event(
            "callback_abandoned",
            detail={"attempts": attempts, "reason": reason, "error": error},
            http_status=status,
        )
        if self.keys.callback_abandoned(owed, self.now(), attempts=attempts, error=error, event=event):
            log.error(
                "outcome callback abandoned",
                extra={"request_id": owed.request_id, "attempts": attempts, "reason": reason, "error": error},
            )
        return 0

    def close(self) -> None:
        self.http.close()


class CallbackLoop(DueLoop):
    """Sends owed callbacks as they fall due (one per process; the take is once per callback)."""

    name = "sfox-intake-callbacks"
    what = "intake callbacks delivered"

    def __init__(self, callbacks: Callbacks) -> None:
        super().__init__(callbacks.keys.next_callback_due, callbacks.deliver_due, callbacks.now)
        self.callbacks = callbacks
