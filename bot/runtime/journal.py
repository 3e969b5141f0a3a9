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

from collections.abc import Callable, Collection
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Table, insert, select, update
from sqlalchemy.engine import RowMapping

from bot.store.db import Store
from bot.store.errors import Busy

# The journal write comes before the ack, which Slack wants within 3 s: work that cannot be
# recorded sooner is refused, visibly, rather than acknowledged and maybe lost.
RECORD_WITHIN_SECONDS = 2.0
# A response URL works for 30 minutes (and takes 5 posts): past that, the person who clicked or
# typed can no longer be answered privately through it.
RESPONSE_URL_LIFETIME = timedelta(minutes=30)
RESPONSE_URL_POSTS = 5


class Journal:
    """One journal table: its rows carry `id`, `received_at`, `lease_until`, `done_at` and
    `response_url` besides what their kind of work needs."""

    def __init__(self, store: Store, table: Table, lease: timedelta, clock: Callable[[], datetime]) -> None:
        self.store = store
        self.table = table
        self.lease = lease
        self.now = clock
        # Built once: every click or command runs it before its ack (see bot/store/base.py on
        # prebuilt statements).
        self._record = insert(table).returning(table.c.id)

    def record(self, values: dict[str, Any]) -> tuple[int, datetime]:
        """Write a row, leased to this process; call before acknowledging. Returns its id and
        when it was received. Raises store.Busy when the database cannot take it in time: then
        the work must not count."""
        now = self.now()
        with self.store.quick_transaction(RECORD_WITHIN_SECONDS) as conn:
            row_id = conn.execute(
                self._record, {**values, "received_at": now, "lease_until": now + self.lease}
            ).scalar_one()
        return int(row_id), now

    def due(self, limit: int = 500) -> list[RowMapping]:
        """Open rows whose lease has run out (their process died), oldest first."""
        t = self.table
        query = (
            select(t).where(t.c.done_at.is_(None), t.c.lease_until < self.now()).order_by(t.c.id).limit(limit)
        )
        with self.store.reader() as conn:
            return list(conn.execute(query).mappings().all())

    def take(self, row_id: int) -> bool:
        """Lease an open row whose lease has run out to this process; False if another got it."""
        now = self.now()
        t = self.table
        with self.store.transaction() as conn:
            return bool(
                conn.execute(
                    update(t)
                    .where(t.c.id == row_id, t.c.done_at.is_(None), t.c.lease_until < now)
                    .values(lease_until=now + self.lease)
                ).rowcount
            )

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
