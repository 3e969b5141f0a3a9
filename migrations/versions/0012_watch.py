"""Watch until empty (issue 19): the `watching` status, when a watch's next balance read is due
and when it was last read, and a window of its own for the balance route in the shared limiter.

`requests.watch_next_at` is the compare-and-set a replica wins to take one due read;
`requests.watch_read_at` the last read's time (shown by `status`, `list`, the App Home and
`history`). A watch holds its sFOX user like an open request, so `uq_requests_open_user` is
rebuilt with `watching` in its condition: a partial index's WHERE cannot be altered, on SQLite
or PostgreSQL, so it is dropped and created again (a plain DROP/CREATE INDEX on both: the table is
not copied, so the foreign keys onto `requests` and the audit triggers are left alone). No row
is `watching` before this migration, so the new index cannot find a duplicate.

`rate_slots.route` names the window a slot belongs to, as `rate_gate.id` names its gate: route 1
is every call (the batches', as before: existing slots keep it), route 2 the balance route
(bot/sfox/pacing.py). Its gate row is inserted here.

Revision ID: 0012_watch
Revises: 0011_schedule
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from bot.store.schema import UTCDateTime

revision: str = "0012_watch"
down_revision: str | None = "0011_schedule"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OPEN = sa.text("status IN ('pending', 'scheduled', 'executing', 'unknown')")
HELD = sa.text("status IN ('pending', 'scheduled', 'executing', 'unknown', 'watching')")
BALANCE_ROUTE = 2


def _open_index(where: sa.TextClause) -> None:
    op.drop_index("uq_requests_open_user", table_name="requests")
    op.create_index(
        "uq_requests_open_user",
        "requests",
        ["sfox_user_id"],
        unique=True,
        sqlite_where=where,
        postgresql_where=where,
    )


def upgrade() -> None:
    op.add_column("requests", sa.Column("watch_next_at", UTCDateTime, nullable=True))
    op.add_column("requests", sa.Column("watch_read_at", UTCDateTime, nullable=True))
    _open_index(HELD)
    op.add_column("rate_slots", sa.Column("route", sa.Integer, nullable=False, server_default="1"))
    op.create_index("ix_rate_slots_route_at", "rate_slots", ["route", "at"])
    gate = sa.table("rate_gate", sa.column("id", sa.Integer), sa.column("blocked_until", sa.Float))
    op.bulk_insert(gate, [{"id": BALANCE_ROUTE, "blocked_until": 0.0}])


def downgrade() -> None:
    # A watch still open has no card and nothing to approve: it is closed, as cancelled, so the
    # narrower index holds and no older code meets a status it does not know.
    requests = sa.table(
        "requests",
        sa.column("status", sa.String),
        sa.column("error", sa.Text),
    )
    op.execute(
        requests.update()
        .where(requests.c.status == "watching")
        .values(status="cancelled", error="the bot was downgraded while the watch was open")
    )
    op.execute(sa.text("DELETE FROM rate_gate WHERE id = :id").bindparams(id=BALANCE_ROUTE))
    op.drop_index("ix_rate_slots_route_at", table_name="rate_slots")
    op.execute(sa.text("DELETE FROM rate_slots WHERE route <> 1"))
    op.drop_column("rate_slots", "route")
    _open_index(OPEN)
    op.drop_column("requests", "watch_read_at")
    op.drop_column("requests", "watch_next_at")
