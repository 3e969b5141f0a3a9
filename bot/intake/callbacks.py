"""The intake API's outcome callbacks: once a request asked with a `callback_url` reaches its
final status (succeeded, failed, denied, expired, blocked, cancelled), that outcome is POSTed
there, as JSON signed like the API's requests (bot/webhooks/signing.py).

Owed in the database (bot/store/intake.py), so a restart does not lose one: any replica's
callback loop (a `DueLoop`, like the outbox's) takes a due callback with a compare-and-set that
moves its due time to the end of a lease, sends it, and marks it sent; a receiver that fails (5xx,
408, 429, a timeout, a refused connection) is tried again after `retry_delay` (1 s doubling to
60 s). Any other 4xx is an answer that will not change: given up, and logged. A sender that dies
mid-POST leaves it due at the lease's end, so a receiver may see an outcome twice: it is keyed by
`request_id`."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import datetime, timedelta

import httpx

from bot.requests.history import history_row
from bot.runtime.delivery import DueLoop
from bot.store.db import Store
from bot.store.intake import IntakeStore, OwedCallback
from bot.webhooks.signing import retry_delay, signed_headers

log = logging.getLogger("sfox_bot.intake.callbacks")

TIMEOUT_SECONDS = 10.0
# Longer than a POST can take: only a dead sender's callback falls due again at its end.
LEASE = timedelta(seconds=30)
RETRIED_STATUSES = frozenset({408, 429})


class Callbacks:
    def __init__(self, store: Store, secret: str, clock: Callable[[], datetime]) -> None:
        self.store = store
        self.keys = IntakeStore(store)
        self._secret = secret
        self.now = clock
        self.http = httpx.Client(timeout=TIMEOUT_SECONDS, follow_redirects=False)

    def deliver_due(self) -> int:
        """Send the callbacks due now that this replica takes; returns how many were received."""
        sent = 0
        for owed in self.keys.due_callbacks(self.now()):
            if self.keys.take_callback(owed, self.now(), LEASE):
                sent += self._send(owed)
        return sent

    def _send(self, owed: OwedCallback) -> int:
        record = self.store.get(owed.request_id)
        assert record is not None
        body = json.dumps(
            {"request_id": record.id, "status": record.status, "record": history_row(record)}
        ).encode()
        headers = {"Content-Type": "application/json", **signed_headers(self._secret, body)}
        fields = {"request_id": record.id, "status": record.status, "attempt": owed.attempts + 1}
        try:
            status = self.http.post(owed.url, content=body, headers=headers).status_code
            error = f"http {status}"
        except httpx.HTTPError as exc:
            status, error = None, type(exc).__name__
        if status is not None and 200 <= status < 300:
            self.keys.callback_sent(owed.id, self.now())
            log.info("outcome callback delivered", extra=fields)
            return 1
        if status is not None and 400 <= status < 500 and status not in RETRIED_STATUSES:
            self.keys.callback_sent(owed.id, self.now(), gave_up=f"gave up: {error}")
            log.error("outcome callback refused for good", extra={**fields, "error": error})
            return 0
        wait = retry_delay(owed.attempts + 1)
        self.keys.callback_failed(owed.id, error, self.now() + timedelta(seconds=wait))
        log.warning(
            "outcome callback not received; will try again",
            extra={**fields, "error": error, "retry_in": wait},
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
