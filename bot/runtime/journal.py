"""Work Slack was told we received, recorded before the ack: the mechanism every journal shares
(button clicks in bot/runtime/clicks.py, slash commands in bot/runtime/commands.py).

Slack is told "received" the moment a listener returns, and the work runs after that. If the
process died in between, the work would vanish although Slack (and the person) saw it accepted.
So each piece of work is first written to its journal table, then acknowledged, then carried out
and marked done. Each row is leased to the process carrying it out; a row still open when its
lease has run out (that process is gone) is taken by the sweep of any process. Taking is a
compare-and-set on the lease, so one taker wins however many replicas sweep at the same moment.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Table, insert, select, update
from sqlalchemy.engine import Connection, RowMapping
from sqlalchemy.sql.elements import ColumnElement

from bot.store.db import Store
from bot.store.errors import Busy

# The journal write comes before the ack, which Slack wants within 3 s: work that cannot be
# recorded sooner is refused, visibly, rather than acknowledged and maybe lost.
RECORD_WITHIN_SECONDS = 2.0
# A response URL works for 30 minutes (and takes 5 posts): past that, the person who clicked or
# typed can no longer be answered privately through it.
RESPONSE_URL_LIFETIME = timedelta(minutes=30)
RESPONSE_URL_POSTS = 5
# A handed-over row's lease ran out this long before it was recorded: more than hosts' clocks
# disagree, so a worker on another host finds it due at once.
HANDED_OVER_SKEW = timedelta(minutes=5)
# Rows one take leases at most: a worker takes what it can start now, and leaves the rest to others.
TAKE_AT_ONCE = 50


@dataclass
class _Pending:
    """A row waiting to be written by `Journal.record`, and what came of it."""

    values: dict[str, Any]
    deadline: float
    settled: bool = False
    row_id: int | None = None
    received_at: datetime | None = None
    error: Exception | None = None

    def result(self) -> tuple[int, datetime]:
        if self.row_id is None or self.received_at is None:
            # Each waiter raises its own exception: one object is never raised by many threads.
            if isinstance(self.error, Busy):
                raise Busy() from self.error
            raise RuntimeError("the journal write failed") from self.error
        return self.row_id, self.received_at


class Journal:
    """One journal table: its rows carry `id`, `received_at`, `lease_until`, `done_at` and
    `response_url` besides what their kind of work needs."""

    def __init__(self, store: Store, table: Table, lease: timedelta, clock: Callable[[], datetime]) -> None:
        self.store = store
        self.table = table
        self.lease = lease
        self.now = clock
        # Set by the web role (bot/runtime/roles.py): rows are recorded handed over, due at once to
        # any worker, and `wake` tells the workers after the commit. None: the recording process
        # holds the row and carries it out itself.
        self.wake: Callable[[], None] | None = None
        # Built once: every click or command runs it before its ack (see bot/store/base.py on
        # prebuilt statements).
        self._record = insert(table).returning(table.c.id, sort_by_parameter_order=True)
        self._changed = threading.Condition()
        self._waiting: list[_Pending] = []
        self._writing = False

    def record(self, values: dict[str, Any]) -> tuple[int, datetime]:
        """Write a row, leased to this process; call before acknowledging. Returns its id and
        when it was received. Raises store.Busy when the database cannot take it in time: then
        the work must not count.

        Rows that arrive together are written together (group commit): the first caller writes
        everything waiting in one transaction while later ones queue for the next. A burst of
        acks then waits for a few transactions in turn instead of one each, and no caller can
        be overtaken again and again on the way to the database."""
        mine = _Pending(values, time.monotonic() + RECORD_WITHIN_SECONDS)
        with self._changed:
            self._waiting.append(mine)
            while not mine.settled:
                if not self._writing:
                    self._writing = True
                    batch, self._waiting = self._waiting, []
                    break
                left = mine.deadline - time.monotonic()
                if left <= 0 and mine in self._waiting:
                    self._waiting.remove(mine)  # not taken by a writer: it never will be
                    raise Busy()
                # Taken by a writer, it waits for that transaction, bounded by its deadline too.
                self._changed.wait(max(left, 0.01))
            else:
                return mine.result()
        try:
            self._write(batch)
        finally:
            with self._changed:
                self._writing = False
                self._changed.notify_all()
        return mine.result()

    def record_with(
        self, values: dict[str, Any], also: Callable[[Connection, int], None]
    ) -> tuple[int, datetime]:
        """Write a row, leased to this process, in a transaction of its own that also runs
        `also(conn, row_id)` (the intake API's idempotency key): both are written or neither.
        Raises what the transaction raises (a duplicate key's IntegrityError)."""
        now = self.now()
        row = {**values, "received_at": now, **self._held(now)}
        with self.store.transaction() as conn:
            row_id = int(
                conn.execute(insert(self.table).values(**row).returning(self.table.c.id)).scalar_one()
            )
            also(conn, row_id)
        self.wake_workers()
        return row_id, now

    @property
    def hands_over(self) -> bool:
        """Whether rows are recorded for a worker to carry out (the web role)."""
        return self.wake is not None

    def _held(self, now: datetime) -> dict[str, Any]:
        """A new row's lease: this process's, or (handed over) one that ran out before it began,
        by more than any clock skew between hosts, so every worker finds it due at once."""
        if self.wake is not None:
            return {"lease_until": now - HANDED_OVER_SKEW, "holds": 0}
        return {"lease_until": now + self.lease, "holds": 1}

    def wake_workers(self) -> None:
        """Tell the workers there is work (the web role); nothing when this process does it."""
        if self.wake is not None:
            self.wake()

    def _write(self, batch: list[_Pending]) -> None:
        try:
            budget = min(p.deadline for p in batch) - time.monotonic()
            if budget <= 0:
                raise Busy()
            now = self.now()
            rows = [{**p.values, "received_at": now, **self._held(now)} for p in batch]
            with self.store.quick_transaction(budget) as conn:
                # One statement for the whole batch (RETURNING in the order of `rows`).
                ids = conn.execute(self._record, rows).scalars().all()
            for p, row_id in zip(batch, ids, strict=True):
                p.row_id, p.received_at = int(row_id), now
            self.wake_workers()
        except Exception as exc:  # nothing of the batch is written
            for p in batch:
                p.error = exc
        finally:
            for p in batch:
                p.settled = True

    def take_due(
        self, limit: int = TAKE_AT_ONCE, *, only: ColumnElement[bool] | None = None
    ) -> list[RowMapping]:
        """Lease to this process, in one statement, up to `limit` open rows whose lease has run out
        (handed over by the web role, or left by a dead process), oldest first, of those `only`
        admits; each comes back
        with its new `holds` (1: nobody worked on it before). Several takers at once never take one
        row twice: on PostgreSQL the candidates are locked with SKIP LOCKED, so takers share the
        rows instead of queueing; SQLite runs one write transaction at a time anyway."""
        now = self.now()
        t = self.table
        with self.store.transaction() as conn:
            due = (
                select(t.c.id)
                .where(t.c.done_at.is_(None), t.c.lease_until < now, *(() if only is None else (only,)))
                .order_by(t.c.id)
                .limit(limit)
            )
            if conn.dialect.name == "postgresql":
                due = due.with_for_update(skip_locked=True)
            taken = conn.execute(
                update(t)
                .where(t.c.id.in_(due.scalar_subquery()), t.c.lease_until < now)
                .values(lease_until=now + self.lease, holds=t.c.holds + 1, taken_at=now)
                .returning(*t.c)
            )
            return sorted(taken.mappings().all(), key=lambda row: row["id"])

    def renew(self, row_ids: Collection[int]) -> None:
        """Extend the leases of open rows this process is still working on."""
        ids = sorted(row_ids)
        t = self.table
        until = self.now() + self.lease
        with self.store.transaction() as conn:
            for start in range(0, len(ids), 500):
                conn.execute(
                    update(t)
                    .where(t.c.id.in_(ids[start : start + 500]), t.c.done_at.is_(None))
                    .values(lease_until=until)
                )

    def postpone(self, row_id: int, until: datetime) -> None:
        """Leave an open row alone until `until`: nothing can come of it before then."""
        with self.store.transaction() as conn:
            conn.execute(
                update(self.table)
                .where(self.table.c.id == row_id, self.table.c.done_at.is_(None))
                .values(lease_until=until)
            )

    def done(self, row_id: int) -> None:
        """The work is carried out and its person answered: never taken again. The response URL
        is no longer needed, so it is not kept."""
        with self.store.transaction() as conn:
            conn.execute(
                update(self.table)
                .where(self.table.c.id == row_id)
                .values(done_at=self.now(), response_url=None)
            )

    def answerable(self, received_at: datetime | None) -> bool:
        """Whether a response URL received at `received_at` still works."""
        return received_at is not None and self.now() - received_at < RESPONSE_URL_LIFETIME


def not_recorded(what: str, again: str, exc: Exception) -> str:
    """The answer when the journal could not take the work (`what`: "click", "command"): it
    changed nothing, and the person should `again` ("click again") in a moment."""
    busy = "busy" if isinstance(exc, Busy) else f"unable to record {what}s right now"
    return (
        f":warning: The bot's database is {busy}: your {what} was *not* recorded and "
        f"changed nothing. Please {again} in a moment."
    )
