"""The audit trail streamed out (issue 20): every chained event POSTed to SFOX_AUDIT_WEBHOOK_URL,
in `seq` order, at least once, as `application/x-ndjson` batches of up to 100 lines, each POST
signed with SFOX_AUDIT_WEBHOOK_SECRET (bot/webhooks/signing.py). Any 2xx acknowledges the batch.

Each line is `{"seq":N,"prev_hash":"…","hash":"…","event":<canonical(event)>}`: the event is
written byte for byte as the chain hashes it (bot/audit/chain.py), so a receiver recomputes
`hash` from `prev_hash` and those bytes without re-encoding anything.

At least once, never skipped: the cursor (bot/audit/stream_cursor.py) moves only after the 2xx, so
a sender that dies between the answer and the move sends that batch again, and a batch always
starts right after the cursor and stops at the first gap in `seq`. One sender at a time: the
lease. The POST's timeout is a third of the lease, so a POST from a replica that lost its lease
has ended before another replica may take over.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx

from bot.audit import stream_cursor as cursor
from bot.audit.chain import canonical_fields
from bot.audit.verify import CHAIN_ROWS
from bot.crashpoints import crash_point
from bot.store.base import StoreBase
from bot.store.schema import events
from bot.webhooks.signing import retry_delay, signed_headers

log = logging.getLogger("sfox_bot.audit.stream")

CONTENT_TYPE = "application/x-ndjson"
BATCH_MAX = 100
MAX_TIMEOUT_SECONDS = 10.0


def stream_line(seq: int, prev_hash: str, digest: str, body: bytes) -> bytes:
    """One NDJSON line (with its newline): the link fields, then the canonical bytes verbatim."""
    head = f'{{"seq":{int(seq)},"prev_hash":"{prev_hash}","hash":"{digest}","event":'.encode()
    return head + body + b"}\n"


def batch_after(store: StoreBase, after: int, limit: int = BATCH_MAX) -> list[tuple[int, bytes]]:
    """Up to `limit` events right after seq `after`, as (seq, line), stopping at the first gap:
    an event is never sent before the one it links to."""
    with store.reader() as conn:
        rows = conn.execute(CHAIN_ROWS.where(events.c.seq > after).limit(limit)).all()
    out: list[tuple[int, bytes]] = []
    expected = after + 1
    for r in rows:
        if r.seq != expected:
            break
        at = r.at.isoformat(timespec="microseconds") + "Z"
        body = canonical_fields(
            r.seq, r.request_id, at, r.kind, r.actor, r.http_status, r.duration_ms, r.detail
        )
        out.append((r.seq, stream_line(r.seq, r.prev_hash, r.hash, body)))
        expected += 1
    return out


def host_of(url: str) -> str:
    """What may be shown of the webhook: its host (a path may carry a token)."""
    return urlsplit(url).hostname or "?"


def default_holder() -> str:
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class Sent:
    """One batch acknowledged: seq `first` to `last`."""

    first: int
    last: int


@dataclass(frozen=True)
class Failed:
    """One POST not acknowledged; `error` says why without the URL or the secret."""

    error: str
    failures: int
    retry_at: datetime


@dataclass(frozen=True)
class Idle:
    """Nothing sent: caught up, waiting for a retry time, another replica's lease, or a gap."""

    reason: str


Outcome = Sent | Failed | Idle


class AuditStream:
    """Sends the events after the cursor, batch by batch, while this process holds the lease."""

    def __init__(
        self,
        store: StoreBase,
        url: str,
        secret: str,
        *,
        now: Callable[[], datetime],
        lease: timedelta = timedelta(seconds=30),
        batch_max: int = BATCH_MAX,
        holder: str | None = None,
        backoff: Callable[[int], float] = retry_delay,
        observers: Iterable[Callable[[Outcome], Any]] = (),
    ) -> None:
        self.store = store
        self.url = url
        self.host = host_of(url)
        self._secret = secret
        self.now = now
        self.lease = lease
        self.batch_max = min(BATCH_MAX, batch_max)
        self.holder = holder or default_holder()
        self.backoff = backoff
        self.observers = list(observers)
        timeout = min(MAX_TIMEOUT_SECONDS, lease.total_seconds() / 3)
        self._http = httpx.Client(timeout=timeout, follow_redirects=False)

    def next_due(self) -> datetime | None:
        """When there is something to send and this process may try: None when caught up."""
        state = cursor.read_state(self.store)
        if state.lag == 0:
            return None
        due = self.now()
        if state.retry_at is not None:
            due = max(due, state.retry_at)
        if state.held_by_other(self.holder, due) and state.lease_until is not None:
            due = max(due, state.lease_until)
        return due

    def run(self, stopping: Callable[[], bool] = lambda: False) -> int:
        """Send batches until caught up, a failure, a lost lease or `stopping`; events acknowledged."""
        sent = 0
        while not stopping():
            outcome = self.send_one()
            for observe in self.observers:
                observe(outcome)
            if not isinstance(outcome, Sent):
                break
            sent += outcome.last - outcome.first + 1
        return sent

    def send_one(self) -> Outcome:
        """Take (or renew) the lease and POST the batch after the cursor once."""
        now = self.now()
        state = cursor.take_lease(self.store, self.holder, now, self.lease)
        if state is None:
            return Idle("another replica holds the lease")
        if state.retry_at is not None and state.retry_at > now:
            return Idle("waiting to try again")
        batch = batch_after(self.store, state.cursor, self.batch_max)
        if not batch:
            if state.lag:
                return self._failed(state.failures, f"seq {state.cursor + 1} is missing from the chain")
            return Idle("caught up")
        body = b"".join(line for _, line in batch)
        error = self._post(body)
        if error is not None:
            return self._failed(state.failures, error)
        first, last = batch[0][0], batch[-1][0]
        crash_point("stream_acked")
        if not cursor.advance(self.store, self.holder, state.cursor, last, self.now(), self.lease):
            return Idle("the lease was lost while sending")
        return Sent(first, last)

    def release(self) -> None:
        cursor.release(self.store, self.holder)

    def close(self) -> None:
        self._http.close()

    def _post(self, body: bytes) -> str | None:
        """None when the webhook acknowledged `body` (any 2xx), else why not."""
        headers = {"Content-Type": CONTENT_TYPE, **signed_headers(self._secret, body)}
        try:
            answer = self._http.post(self.url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            return f"no answer: {type(exc).__name__}"
        if 200 <= answer.status_code < 300:
            return None
        return f"HTTP {answer.status_code}"

    def _failed(self, failures_before: int, error: str) -> Failed:
        failures = failures_before + 1
        retry_at = self.now() + timedelta(seconds=self.backoff(failures))
        cursor.note_failure(self.store, self.holder, failures, error, retry_at)
        log.warning(
            "audit stream not delivered; will try again",
            extra={"error": error, "failures": failures, "host": self.host},
        )
        return Failed(error, failures, retry_at)
