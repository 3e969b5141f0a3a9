"""The audit stream's one row (`audit_stream`, migration 0015_stream): how far the webhook has
acknowledged the chain, and which replica may send to it.

One sender at a time across replicas: the lease is taken by a compare-and-set (free, run out, or
already ours), renewed before every POST, and the cursor moves only under a lease still held and
only from where the sender read it, so a replica that lost its lease while a POST was out cannot
move the cursor back or forward over another's. A dead sender's lease simply runs out.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, or_, select, update

from bot.audit.chain import READ_HEAD
from bot.store.base import StoreBase
from bot.store.schema import audit_stream, events

ROW_ID = 1


@dataclass(frozen=True)
class StreamState:
    """The row as read, with the chain's head and the oldest event not acknowledged yet."""

    cursor: int
    holder: str | None
    lease_until: datetime | None
    failures: int
    retry_at: datetime | None
    last_error: str | None
    sent_at: datetime | None
    head: int
    oldest_unsent_at: datetime | None

    @property
    def lag(self) -> int:
        """Events appended and not yet acknowledged by the webhook."""
        return max(0, self.head - self.cursor)

    def held_by_other(self, me: str, now: datetime) -> bool:
        return self.holder not in (None, me) and self.lease_until is not None and self.lease_until > now


def read_state(store: StoreBase) -> StreamState:
    with store.reader() as conn:
        return state_in(conn)


def state_in(conn: Connection) -> StreamState:
    row = conn.execute(select(audit_stream).where(audit_stream.c.id == ROW_ID)).mappings().one()
    head = conn.execute(READ_HEAD).first()
    head_seq = int(head[0]) if head else 0
    oldest = None
    if head_seq > row["cursor_seq"]:
        oldest = conn.execute(  # the first after the cursor, by the seq index
            select(events.c.at).where(events.c.seq > row["cursor_seq"]).order_by(events.c.seq).limit(1)
        ).scalar()
    return StreamState(
        cursor=int(row["cursor_seq"]),
        holder=row["holder"],
        lease_until=row["lease_until"],
        failures=int(row["failures"]),
        retry_at=row["retry_at"],
        last_error=row["last_error"],
        sent_at=row["sent_at"],
        head=head_seq,
        oldest_unsent_at=oldest,
    )


def take_lease(store: StoreBase, me: str, now: datetime, lease: timedelta) -> StreamState | None:
    """Take or renew the lease (free, run out, or ours); the row as it is then, or None when
    another replica holds it."""
    with store.transaction() as conn:
        taken = conn.execute(
            update(audit_stream)
            .where(
                audit_stream.c.id == ROW_ID,
                or_(
                    audit_stream.c.holder.is_(None),
                    audit_stream.c.holder == me,
                    audit_stream.c.lease_until.is_(None),
                    audit_stream.c.lease_until < now,
                ),
            )
            .values(holder=me, lease_until=now + lease)
        ).rowcount
        return state_in(conn) if taken else None


def advance(store: StoreBase, me: str, start: int, end: int, now: datetime, lease: timedelta) -> bool:
    """The webhook acknowledged seq `start + 1` to `end`: move the cursor there (and renew the
    lease), only if we still hold it and the cursor is still where we read it."""
    with store.transaction() as conn:
        return bool(
            conn.execute(
                update(audit_stream)
                .where(
                    audit_stream.c.id == ROW_ID,
                    audit_stream.c.holder == me,
                    audit_stream.c.cursor_seq == start,
                )
                .values(
                    cursor_seq=end,
                    lease_until=now + lease,
                    failures=0,
                    retry_at=None,
                    last_error=None,
                    sent_at=now,
                )
            ).rowcount
        )


def note_failure(store: StoreBase, me: str, failures: int, error: str, retry_at: datetime) -> None:
    """A POST failed (the `failures`-th in a row): try again at `retry_at`, whoever sends then."""
    with store.transaction() as conn:
        conn.execute(
            update(audit_stream)
            .where(audit_stream.c.id == ROW_ID, audit_stream.c.holder == me)
            .values(failures=failures, retry_at=retry_at, last_error=error[:200])
        )


def release(store: StoreBase, me: str) -> None:
    """Give the lease up (stopping): another replica may take over at once."""
    with store.transaction() as conn:
        conn.execute(
            update(audit_stream)
            .where(audit_stream.c.id == ROW_ID, audit_stream.c.holder == me)
            .values(holder=None, lease_until=None)
        )
