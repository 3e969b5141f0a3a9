"""Storage: every state change is one short transaction that also appends its audit event and the
Slack messages it owes (outbox), so state, trail and notifications cannot disagree.

Transitions that must happen once (claiming a request for execution, denying, expiring) are single
conditional UPDATEs (`... WHERE status = 'pending'`); the caller acts only if it changed a row.
That holds across threads, processes and replicas on SQLite (WAL, IMMEDIATE transactions, a busy
timeout) and PostgreSQL alike.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    and_,
    bindparam,
    create_engine,
    event,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.pool import StaticPool

from bot import schema
from bot.audit import Chain
from bot.schema import approvals, events, outbox, requests

SQLITE_BUSY_TIMEOUT_MS = 30_000

# The statements of the hot paths (every click and every Slack message runs them several times),
# built once with bound parameters: building a statement and its cache key costs more than
# running it, and a statement object reused keeps its cache key.
_GET = select(requests).where(requests.c.id == bindparam("request_id"))
_APPROVERS = (
    select(approvals.c.request_id, approvals.c.approver)
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


@dataclass(frozen=True)
class RequestRecord:
    id: int
    sfox_user_id: str
    reason: str
    requested_by: str
    channel_id: str
    message_ts: str | None
    status: str
    required_approvals: int
    target_name: str | None
    target_email: str | None
    target_status: str | None
    created_at: datetime
    expires_at: datetime
    decided_at: datetime | None
    claimed_at: datetime | None
    completed_at: datetime | None
    denied_by: str | None
    http_status: int | None
    error: str | None
    attempts: int
    retryable: bool
    balances: str | None = None  # the balance check as JSON (bot.balances), None when not read
    batch_id: int | None = None  # the batch it belongs to (bot.batch), None for a single request
    approved_by: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, datetime):
                value = value.isoformat()
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out


@dataclass(frozen=True)
class EventRecord:
    id: int
    request_id: int
    at: datetime
    kind: str
    actor: str | None
    http_status: int | None
    duration_ms: int | None
    detail: str | None
    seq: int
    prev_hash: str
    hash: str


@dataclass(frozen=True)
class Notice:
    """One Slack message owed for a request: `card` re-renders the card, `reply` posts `text` in
    the card's thread."""

    id: int
    request_id: int
    kind: str
    text: str | None
    attempts: int
    busy: bool = False


@dataclass(frozen=True)
class Event:
    """An audit event to append along with a state change."""

    kind: str
    actor: str | None = None
    detail: str | dict[str, Any] | None = None
    http_status: int | None = None
    duration_ms: int | None = None


class Busy(Exception):
    """The database could not take a write within the time the caller can wait."""


class AlreadyOpen(Exception):
    def __init__(self, request_id: int | None) -> None:
        super().__init__(f"request {request_id} is already open for this user")
        self.request_id = request_id


def make_engine(url: str) -> Engine:
    """An engine tuned for this workload; on SQLite: WAL, a busy timeout and IMMEDIATE write
    transactions, so concurrent writers wait for each other instead of failing."""
    if not url.startswith("sqlite"):
        return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)
    memory = url in ("sqlite://", "sqlite:///:memory:")
    engine = create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
        poolclass=StaticPool if memory else None,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves, below
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        if not memory:
            _enable_wal(cursor)
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        options = conn.get_execution_options()
        # A writer that must not wait long (e.g. the click journal, before an ack) says so.
        busy_ms = int(options.get("busy_timeout_ms", SQLITE_BUSY_TIMEOUT_MS))
        info = conn.connection.info
        if info.get("busy_timeout_ms", SQLITE_BUSY_TIMEOUT_MS) != busy_ms:
            conn.exec_driver_sql(f"PRAGMA busy_timeout={busy_ms}")
            info["busy_timeout_ms"] = busy_ms
        conn.exec_driver_sql("BEGIN" if options.get("readonly", False) else "BEGIN IMMEDIATE")

    return engine


def _enable_wal(cursor: Any) -> None:
    """Switch a SQLite file to WAL. The switch needs a moment alone with the file, and SQLite
    answers "locked" at once (no busy wait) while another process is creating it, as when two
    replicas start together; WAL mode is then kept in the file, so only the first switch waits."""
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


class Store:
    def __init__(self, engine: Engine, audit_key: str | None = None) -> None:
        self.engine = engine
        # Every event joins the audit hash chain (bot/audit.py), HMAC-keyed by SFOX_AUDIT_KEY if set.
        self._chain = Chain(audit_key)
        # SQLite has one writer at a time, and a writer that finds the database locked sleeps and
        # polls (1, 2, 5 … 100 ms) until it gets in: with many threads, an unlucky one can lose
        # for seconds. Threads of one process therefore queue on this lock (woken in turn, never
        # polling), so at most one writer per process waits inside SQLite.
        self._write_lock = threading.Lock() if engine.dialect.name == "sqlite" else None

    @classmethod
    def from_url(cls, url: str, audit_key: str | None = None) -> Store:
        return cls(make_engine(url), audit_key)

    def close(self) -> None:
        self.engine.dispose()

    # -- reads -------------------------------------------------------------------------------

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
    ) -> Iterator[RequestRecord]:
        """Requests newest first, streamed in batches so memory does not grow with the table."""
        conditions = []
        if batch_id is not None:  # the users of one batch (bot.batch)
            conditions.append(requests.c.batch_id == batch_id)
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

    def open_request_for(self, sfox_user_id: str) -> RequestRecord | None:
        with self._read() as conn:
            row = (
                conn.execute(
                    select(requests).where(
                        requests.c.sfox_user_id == sfox_user_id,
                        requests.c.status.in_(schema.OPEN_STATUSES),
                    )
                )
                .mappings()
                .first()
            )
            return self._with_approvals(conn, [row])[0] if row else None

    def due_for_expiry(self, now: datetime) -> list[int]:
        with self._read() as conn:
            query = select(requests.c.id).where(requests.c.status == "pending", requests.c.expires_at <= now)
            return list(conn.execute(query).scalars())

    def cardless_pending(self, created_before: datetime) -> list[int]:
        """Pending requests whose card was never posted (the process stopped in between)."""
        with self._read() as conn:
            query = select(requests.c.id).where(
                requests.c.status == "pending",
                requests.c.message_ts.is_(None),
                requests.c.created_at < created_before,
                requests.c.batch_id.is_(None),  # a batch's users share the batch's card
            )
            return list(conn.execute(query).scalars())

    def stale_claims(self, claimed_before: datetime) -> list[RequestRecord]:
        """Requests whose execution outcome nobody is working on: `unknown` ones, and `executing`
        ones claimed so long ago that the process that claimed them must be gone."""
        with self._read() as conn:
            query = select(requests).where(
                or_(
                    requests.c.status == "unknown",
                    and_(requests.c.status == "executing", requests.c.claimed_at < claimed_before),
                )
            )
            return self._with_approvals(conn, conn.execute(query).mappings().all())

    def unsent_notices(self, now: datetime, request_id: int | None = None) -> list[Notice]:
        """Messages not yet sent, in order, including those leased by another thread or waiting
        for a retry (`busy`): a later message of the same request must wait behind them."""
        with self._read() as conn:
            if request_id is None:
                rows = conn.execute(_UNSENT)
            else:
                rows = conn.execute(_UNSENT_FOR, {"request_id": request_id})
            return [
                Notice(
                    row.id,
                    row.request_id,
                    row.kind,
                    row.text,
                    row.attempts,
                    busy=row.lease_until is not None and row.lease_until >= now,
                )
                for row in rows
            ]

    def ping(self) -> None:
        with self._read() as conn:
            conn.execute(select(literal(1)))

    # -- writes ------------------------------------------------------------------------------

    def create_request(
        self,
        *,
        sfox_user_id: str,
        reason: str,
        requested_by: str,
        channel_id: str,
        required_approvals: int,
        target_name: str | None,
        target_email: str | None,
        target_status: str | None,
        now: datetime,
        ttl: timedelta,
        balances: str | None = None,
    ) -> RequestRecord:
        """Record a new pending request; raises AlreadyOpen if this sFOX user already has one (a
        partial unique index makes that hold even for two requests typed at the same moment)."""
        values = {
            "sfox_user_id": sfox_user_id,
            "reason": reason,
            "requested_by": requested_by,
            "channel_id": channel_id,
            "status": "pending",
            "required_approvals": required_approvals,
            "target_name": target_name,
            "target_email": target_email,
            "target_status": target_status,
            "created_at": now,
            "expires_at": now + ttl,
            "attempts": 0,
            "retryable": False,
            "balances": balances,
        }
        try:
            request_id = self._insert_request(values, Event("requested", requested_by, {"reason": reason}))
        except IntegrityError:
            existing = self.open_request_for(sfox_user_id)
            raise AlreadyOpen(existing.id if existing else None) from None
        record = self.get(request_id)
        assert record is not None
        return record

    def block(self, *, error: str, event: Event, **request: Any) -> RequestRecord:
        """Record a request that is closed before any card (`blocked`: the target holds funds),
        with its `requested` and `event` trail entries, in one transaction. `request` takes the
        arguments of `create_request`."""
        now: datetime = request.pop("now")
        request.pop("ttl", None)
        values = {
            **request,
            "status": "blocked",
            "created_at": now,
            "expires_at": now,
            "completed_at": now,
            "error": error,
            "attempts": 0,
            "retryable": False,
        }
        request_id = self._insert_request(
            values, Event("requested", request["requested_by"], {"reason": request["reason"]}), event
        )
        record = self.get(request_id)
        assert record is not None
        return record

    def _insert_request(self, values: dict[str, Any], *trail: Event) -> int:
        with self._write() as conn:
            request_id: int = conn.execute(
                insert(requests).values(**values).returning(requests.c.id)
            ).scalar_one()
            for ev in trail:
                self._event(conn, request_id, values["created_at"], ev)
        return request_id

    def set_card(self, request_id: int, message_ts: str, now: datetime) -> None:
        """Note where the card is. A click that adopted this very card a moment earlier already
        did; a different ts is never written over the one recorded."""
        with self._write() as conn:
            rows = conn.execute(
                update(requests)
                .where(requests.c.id == request_id, requests.c.message_ts.is_(None))
                .values(message_ts=message_ts)
            ).rowcount
            if rows:
                self._event(conn, request_id, now, Event("card_posted", detail={"ts": message_ts}))

    def adopt_card(
        self, request_id: int, message_ts: str, now: datetime, *, found_by: str, reply: str | None
    ) -> bool:
        """Record a card the bot posted but never noted (it died in between), found by a click on
        it or by the sweep; owe Slack a re-render of it (and `reply` in its thread). Only when no
        card is recorded: False if one is."""
        with self._write() as conn:
            rows = conn.execute(
                update(requests)
                .where(requests.c.id == request_id, requests.c.message_ts.is_(None))
                .values(message_ts=message_ts)
            ).rowcount
            if not rows:
                return False
            notices: list[tuple[str, str | None]] = [("card", None)] + ([("reply", reply)] if reply else [])
            for kind, text in notices:
                conn.execute(
                    _NOTICE, {"request_id": request_id, "kind": kind, "text": text, "created_at": now}
                )
            # Last, like every transition's event: the chain's head stays locked only briefly.
            self._event(
                conn, request_id, now, Event("card_adopted", detail={"ts": message_ts, "found_by": found_by})
            )
            return True

    def add_approval(self, request_id: int, approver: str, now: datetime) -> bool:
        """Record an approval while the request is pending and unexpired; False if it was not
        (already approved by this person, or no longer pending)."""
        source = select(requests.c.id, literal(approver), literal(now, schema.UTCDateTime)).where(
            requests.c.id == request_id, requests.c.status == "pending", requests.c.expires_at > now
        )
        try:
            with self._write() as conn:
                rows = conn.execute(
                    insert(approvals).from_select(["request_id", "approver", "created_at"], source)
                ).rowcount
                if rows:
                    self._event(conn, request_id, now, Event("approved", approver))
                return bool(rows)
        except IntegrityError:
            return False

    def claim(self, request_id: int, now: datetime, *, actor: str | None = None) -> bool:
        """pending → executing, once: only if unexpired and approved by enough people. The caller
        that gets True (and only that one) calls sFOX."""
        approved = (
            select(func.count())
            .select_from(approvals)
            .where(approvals.c.request_id == request_id)
            .scalar_subquery()
        )
        return self._transition(
            request_id,
            now,
            where=[
                requests.c.status == "pending",
                requests.c.expires_at > now,
                approved >= requests.c.required_approvals,
            ],
            values={
                "status": "executing",
                "decided_at": now,
                "claimed_at": now,
                "attempts": requests.c.attempts + 1,
            },
            event=Event("claimed", actor),
            notices=[("card", None)],
        )

    def claim_retry(self, request_id: int, actor: str, now: datetime) -> bool:
        """failed (and marked retryable) → executing, once, for an explicit retry by an approver."""
        return self._transition(
            request_id,
            now,
            where=[requests.c.status == "failed", requests.c.retryable.is_(True)],
            values={
                "status": "executing",
                "claimed_at": now,
                "attempts": requests.c.attempts + 1,
                "retryable": False,
                "completed_at": None,
            },
            event=Event("retry_claimed", actor),
            notices=[("card", None)],
        )

    def deny(self, request_id: int, actor: str, now: datetime, reply: str) -> bool:
        return self._transition(
            request_id,
            now,
            where=[requests.c.status == "pending", requests.c.expires_at > now],
            values={"status": "denied", "denied_by": actor, "decided_at": now, "completed_at": now},
            event=Event("denied", actor),
            notices=[("card", None), ("reply", reply)],
        )

    def expire(self, request_id: int, now: datetime) -> bool:
        return self._transition(
            request_id,
            now,
            where=[requests.c.status == "pending", requests.c.expires_at <= now],
            values={"status": "expired", "completed_at": now},
            event=Event("expired"),
            notices=[("card", None)],
        )

    def abandon(self, request_id: int, now: datetime, error: str) -> bool:
        """A pending request whose card could not be posted: nobody can approve it, so close it
        (and free its sFOX user for a new request)."""
        return self._transition(
            request_id,
            now,
            where=[requests.c.status == "pending", requests.c.message_ts.is_(None)],
            values={"status": "failed", "completed_at": now, "error": error, "retryable": False},
            event=Event("card_failed", detail=error),
            notices=[],
        )

    def finish(
        self,
        request_id: int,
        now: datetime,
        *,
        status: str,
        http_status: int | None,
        error: str | None,
        retryable: bool,
        event: Event,
        reply: str,
        from_statuses: Sequence[str] = ("executing",),
    ) -> bool:
        """Record the outcome of the sFOX call (or of a reconcile) and the messages it owes."""
        assert status in ("succeeded", "failed", "unknown")
        return self._transition(
            request_id,
            now,
            where=[requests.c.status.in_(from_statuses)],
            values={
                "status": status,
                "http_status": http_status,
                "error": error,
                "retryable": retryable,
                "completed_at": None if status == "unknown" else now,
            },
            event=event,
            notices=[("card", None), ("reply", reply)],
        )

    def take_over(self, record: RequestRecord, now: datetime, *, kind: str) -> bool:
        """Become the one process working on a claim: compare-and-set on (status, claimed_at), so
        of a live executor and a sweeper that thinks the claim abandoned, exactly one wins."""
        with self._write() as conn:
            rows = conn.execute(
                update(requests)
                .where(
                    requests.c.id == record.id,
                    requests.c.status == record.status,
                    requests.c.claimed_at == record.claimed_at
                    if record.claimed_at
                    else requests.c.claimed_at.is_(None),
                )
                .values(claimed_at=now)
            ).rowcount
            if rows:
                self._event(conn, record.id, now, Event(kind, detail={"status": record.status}))
            return bool(rows)

    def queue_card(self, request_id: int, now: datetime) -> None:
        """Owe Slack a refresh of the card (e.g. the approval count changed)."""
        with self._write() as conn:
            conn.execute(_NOTICE, {"request_id": request_id, "kind": "card", "text": None, "created_at": now})

    def record_event(self, request_id: int, now: datetime, ev: Event) -> None:
        with self._write() as conn:
            self._event(conn, request_id, now, ev)

    def lease_notice(self, notice_id: int, now: datetime, seconds: float = 30.0) -> bool:
        with self._write() as conn:
            until = now + timedelta(seconds=seconds)
            return bool(conn.execute(_LEASE, {"notice_id": notice_id, "now": now, "until": until}).rowcount)

    def notice_sent(self, notice_id: int, now: datetime) -> None:
        with self._write() as conn:
            conn.execute(_SENT, {"notice_id": notice_id, "sent_at": now})

    def notice_failed(
        self, notice: Notice, now: datetime, error: str, retry_in: float, *, give_up: bool = False
    ) -> None:
        """Note a failed Slack call; retried after `retry_in` s, or never again when `give_up`."""
        values: dict[str, Any] = {"last_error": error[:500], "lease_until": now + timedelta(seconds=retry_in)}
        if give_up:
            values.update(sent_at=now, last_error=f"gave up: {error}"[:500])
        with self._write() as conn:
            conn.execute(update(outbox).where(outbox.c.id == notice.id).values(**values))
            self._event(
                conn,
                notice.request_id,
                now,
                Event("slack_failed", detail={"kind": notice.kind, "error": error}),
            )

    # -- helpers -----------------------------------------------------------------------------

    def append_event(self, conn: Connection, request_id: int, now: datetime, ev: Event) -> None:
        """Append `ev` to the trail inside a transaction of `transaction()` (for a capability that
        changes requests in bulk, e.g. a batch's approval)."""
        self._event(conn, request_id, now, ev)

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
        if self._write_lock is not None and not self._write_lock.acquire(timeout=seconds):
            raise Busy()
        try:
            left_ms = max(1, int((deadline - time.monotonic()) * 1000))
            try:
                with self.engine.connect() as conn:
                    if conn.dialect.name == "sqlite":
                        conn = conn.execution_options(busy_timeout_ms=left_ms)
                    with conn.begin():
                        if conn.dialect.name == "postgresql":
                            conn.exec_driver_sql(f"SET LOCAL lock_timeout = {left_ms}")
                            conn.exec_driver_sql(f"SET LOCAL statement_timeout = {left_ms}")
                        yield conn
            except OperationalError as exc:
                if time.monotonic() >= deadline - 0.001 or "locked" in str(exc) or "timeout" in str(exc):
                    raise Busy() from exc
                raise
        finally:
            if self._write_lock is not None:
                self._write_lock.release()

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
    ) -> bool:
        with self._write() as conn:
            changed = conn.execute(
                update(requests)
                .where(requests.c.id == request_id, *where)
                .values(**values)
                .returning(requests.c.batch_id)
            ).first()
            if changed is None:
                return False
            if changed.batch_id is not None:
                notices = []  # a batch's user has no card of its own: the batch card tells (bot.batch)
            for kind, text in notices:
                conn.execute(
                    _NOTICE, {"request_id": request_id, "kind": kind, "text": text, "created_at": now}
                )
            # Last: the append locks the chain's head until the commit, so it holds it briefly.
            self._event(conn, request_id, now, event)
            return True

    def _event(self, conn: Connection, request_id: int, now: datetime, ev: Event) -> None:
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
        by_request: dict[int, list[str]] = {i: [] for i in ids}
        if ids:
            for request_id, approver in conn.execute(_APPROVERS, {"ids": ids}):
                by_request[request_id].append(approver)
        return [RequestRecord(**row, approved_by=tuple(by_request[row["id"]])) for row in rows]
