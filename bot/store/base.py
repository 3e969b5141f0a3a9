"""What every part of the store shares: the engine (SQLite tuned for concurrent writers, or
PostgreSQL), the records it returns, the prebuilt hot statements, the reads, and the transaction
helpers through which every write goes (one transition, its audit event and its outbox rows at
once). The writes themselves are in bot.store, one module per use case."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any, Self

from sqlalchemy import (
    Connection,
    Engine,
    bindparam,
    insert,
    literal,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.exc import OperationalError

from bot.audit.chain import Chain
from bot.policy.stages import load_eligible
from bot.store.engine import make_engine
from bot.store.errors import Busy, is_busy
from bot.store.records import Event, EventRecord, RequestRecord, dm_owed
from bot.store.schema import approvals, events, outbox, requests
from bot.store.step_owed import step_owed

# A single request: no batch's user (issue 32). Every single-request step (approve, claim,
# schedule, claim at its time, deny, cancel, retry; the App Home's lists, the reminders) holds it
# in SQL, so a click naming a batch's user is never counted or sent, whatever got it that far: that
# user is decided, paced and reported by its batch (bot/batches/; its claims in bot/store/deciding.py
# and bot/store/retrying.py).
SINGLE = requests.c.batch_id.is_(None)

# The statements of the hot paths (every click and every Slack message runs them several times),
# built once with bound parameters: building a statement and its cache key costs more than
# running it, and a statement object reused keeps its cache key.
_GET = select(requests).where(requests.c.id == bindparam("request_id"))
_APPROVERS = (
    select(approvals.c.request_id, approvals.c.approver, approvals.c.stages)
    .where(approvals.c.request_id.in_(bindparam("ids", expanding=True)))
    .order_by(approvals.c.id)
)
# Unsent messages in order, leased ones included: the caller must not skip past them.
_UNSENT = (
    select(
        outbox.c.id,
        outbox.c.request_id,
        outbox.c.kind,
        outbox.c.text,
        outbox.c.attempts,
        outbox.c.lease_until,
    )
    .where(outbox.c.sent_at.is_(None))
    .order_by(outbox.c.id)
)
_UNSENT_FOR = _UNSENT.where(outbox.c.request_id == bindparam("request_id"))
_LEASE = (
    update(outbox)
    .where(
        outbox.c.id == bindparam("notice_id"),
        outbox.c.sent_at.is_(None),
        or_(outbox.c.lease_until.is_(None), outbox.c.lease_until < bindparam("now")),
    )
    .values(lease_until=bindparam("until"), attempts=outbox.c.attempts + 1)
)
_SENT = (
    update(outbox)
    .where(outbox.c.id == bindparam("notice_id"))
    .values(sent_at=bindparam("sent_at"), last_error=None)
)
_NOTICE = insert(outbox)


class WriteLock:
    """This process's writers, one at a time; a writer whose answer is due (`urgent`: the
    journal write before an ack) goes before those that are not."""

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._urgent = threading.Condition(self._mutex)
        self._normal = threading.Condition(self._mutex)
        self._held = False
        self._urgent_waiting = 0

    def acquire(self, timeout: float | None = None, *, urgent: bool = False) -> bool:
        with self._mutex:
            if urgent:
                self._urgent_waiting += 1
                try:
                    got = self._urgent.wait_for(lambda: not self._held, timeout)
                finally:
                    self._urgent_waiting -= 1
                if not got:
                    self._wake()  # the writers it held back may go now
                    return False
            elif not self._normal.wait_for(lambda: not self._held and not self._urgent_waiting, timeout):
                return False
            self._held = True
            return True

    def release(self) -> None:
        with self._mutex:
            self._held = False
            self._wake()

    def __enter__(self) -> None:
        self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()

    def _wake(self) -> None:
        if self._held:
            return
        if self._urgent_waiting:
            self._urgent.notify()
        else:
            self._normal.notify()


class StoreBase:
    """The engine, the reads and the transaction helpers of the store."""

    def __init__(self, engine: Engine, audit_key: str | None = None) -> None:
        self.engine = engine
        # Every event joins the audit hash chain (bot/audit/chain.py), HMAC-keyed by SFOX_AUDIT_KEY if set.
        self._chain = Chain(audit_key)
        # SQLite has one writer at a time, and a writer that finds the database locked sleeps and
        # polls (1, 2, 5 … 100 ms) until it gets in: with many threads, an unlucky one can lose
        # for seconds. Threads of one process therefore queue on this lock (woken in turn, never
        # polling), so at most one writer per process waits inside SQLite; a write before an ack
        # (`quick_transaction`) goes first, so a busy job pool cannot hold acks back.
        self._write_lock = WriteLock() if engine.dialect.name == "sqlite" else None
        self._bounds = text(
            "SELECT set_config('lock_timeout', :ms, true), set_config('statement_timeout', :ms, true)"
        )

    @classmethod
    def from_url(cls, url: str, audit_key: str | None = None) -> Self:
        return cls(make_engine(url), audit_key)

    def close(self) -> None:
        self.engine.dispose()

    def get(self, request_id: int) -> RequestRecord | None:
        with self._read() as conn:
            row = conn.execute(_GET, {"request_id": request_id}).mappings().first()
            if row is None:
                return None
            return self._with_approvals(conn, [row])[0]

    def history(
        self,
        *,
        limit: int | None = 50,
        status: str | None = None,
        user: str | None = None,
        since: datetime | None = None,
        batch: int = 500,
        batch_id: int | None = None,
        single: bool = False,
    ) -> Iterator[RequestRecord]:
        """Requests newest first, streamed in batches so memory does not grow with the table.
        `single`: single requests only, no batch's users (the App Home's lists)."""
        conditions = []
        if batch_id is not None:  # the users of one batch (bot.batches)
            conditions.append(requests.c.batch_id == batch_id)
        if single:
            conditions.append(SINGLE)
        if status:
            conditions.append(requests.c.status == status)
        if user:
            conditions.append(or_(requests.c.sfox_user_id == user, requests.c.requested_by == user))
        if since:
            conditions.append(requests.c.created_at >= since)
        last_id: int | None = None
        remaining = limit
        while remaining is None or remaining > 0:
            size = batch if remaining is None else min(batch, remaining)
            query = select(requests).where(*conditions).order_by(requests.c.id.desc()).limit(size)
            if last_id is not None:
                query = query.where(requests.c.id < last_id)
            with self._read() as conn:
                rows = conn.execute(query).mappings().all()
                records = self._with_approvals(conn, rows)
            yield from records
            if len(rows) < size:
                return
            last_id = rows[-1]["id"]
            if remaining is not None:
                remaining -= len(rows)

    def events_for(self, request_id: int) -> list[EventRecord]:
        with self._read() as conn:
            rows = conn.execute(
                select(events).where(events.c.request_id == request_id).order_by(events.c.seq)
            ).mappings()
            return [EventRecord(**row) for row in rows]

    def ping(self) -> None:
        with self._read() as conn:
            conn.execute(select(literal(1)))

    def transaction(self) -> Any:
        """A write transaction for a capability that keeps its own tables (e.g. the click journal),
        queued like every other writer of this store."""
        return self._write()

    @contextmanager
    def quick_transaction(self, seconds: float) -> Iterator[Connection]:
        """A write transaction that gives up with Busy (nothing written) rather than wait more
        than about `seconds` for other writers: for a write that must finish before an answer is
        due (Slack's 3 s)."""
        deadline = time.monotonic() + seconds
        if self._write_lock is not None and not self._write_lock.acquire(seconds, urgent=True):
            raise Busy()
        try:
            left_ms = max(1, int((deadline - time.monotonic()) * 1000))
            try:
                with self.engine.connect() as conn:
                    if conn.dialect.name == "sqlite":
                        conn = conn.execution_options(urgent_ms=left_ms)
                    with conn.begin():
                        if conn.dialect.name == "postgresql":
                            # Both bounds in one round trip (SET LOCAL, as set_config(..., true)).
                            conn.execute(self._bounds, {"ms": str(left_ms)})
                        yield conn
            except OperationalError as exc:
                if time.monotonic() >= deadline - 0.001 or is_busy(exc):
                    raise Busy() from exc
                raise
        finally:
            if self._write_lock is not None:
                self._write_lock.release()

    def append_event(self, conn: Connection, request_id: int | None, now: datetime, ev: Event) -> None:
        """Append an audit event inside a transaction of `transaction()` (e.g. bot/requests/reminders.py's
        conditional update): the event commits with it, or not at all."""
        self._event(conn, request_id, now, ev)

    def reader(self) -> Connection:
        """A read-only connection, for the same."""
        return self._read()

    def _read(self) -> Connection:
        return self.engine.connect().execution_options(readonly=True)

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        """A write transaction (committed on success), queued behind this process's other writers."""
        if self._write_lock is None:
            with self.engine.begin() as conn:
                yield conn
            return
        with self._write_lock, self.engine.begin() as conn:
            yield conn

    def _transition(
        self,
        request_id: int,
        now: datetime,
        *,
        where: list[Any],
        values: dict[str, Any],
        event: Event,
        notices: list[tuple[str, str | None]],
        guard: Callable[[Connection], bool] | None = None,
    ) -> bool:
        """One conditional change of a request's row, with its notices and audit event. `guard`,
        read in the same transaction before the change, may refuse it (a check SQL cannot say)."""
        with self._write() as conn:
            if guard is not None and not guard(conn):
                return False
            changed = conn.execute(
                update(requests)
                .where(requests.c.id == request_id, *where)
                .values(**values)
                .returning(requests.c.batch_id, requests.c.requested_via)
            ).first()
            if changed is None:
                return False
            # And the requester's DM, if final (none for a system: bot/intake/ calls it back), and
            # a Workflow Builder step's completion.
            owed = [
                *notices,
                *dm_owed({**values, "requested_via": changed.requested_via}),
                *step_owed(conn, request_id, values.get("status")),
            ]
            if changed.batch_id is not None:
                owed = []  # a batch's user has no card or DM of its own: the batch card tells (bot.batches)
            for kind, text in owed:
                conn.execute(
                    _NOTICE, {"request_id": request_id, "kind": kind, "text": text, "created_at": now}
                )
            # Last: the append locks the chain's head until the commit, so it holds it briefly.
            self._event(conn, request_id, now, event)
            return True

    def _event(self, conn: Connection, request_id: int | None, now: datetime, ev: Event) -> None:
        detail = ev.detail
        if isinstance(detail, dict):
            detail = json.dumps(detail, sort_keys=True)
        self._chain.append(
            conn,
            request_id=request_id,
            at=now,
            kind=ev.kind,
            actor=ev.actor,
            http_status=ev.http_status,
            duration_ms=ev.duration_ms,
            detail=detail,
        )

    @staticmethod
    def _with_approvals(conn: Connection, rows: Sequence[Any]) -> list[RequestRecord]:
        ids = [row["id"] for row in rows]
        by_request: dict[int, list[tuple[str, str | None]]] = {i: [] for i in ids}
        if ids:
            for request_id, approver, stages in conn.execute(_APPROVERS, {"ids": ids}):
                by_request[request_id].append((approver, stages))
        return [
            RequestRecord(
                **row,
                approved_by=tuple(a for a, _ in by_request[row["id"]]),
                approval_stages=tuple(
                    None if e is None else load_eligible(e) for _, e in by_request[row["id"]]
                ),
            )
            for row in rows
        ]
