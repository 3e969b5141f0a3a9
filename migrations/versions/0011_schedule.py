"""Deactivation on a date (issue 19): `requests.run_at` and `batches.run_at`, and `scheduled` as an
open status of the one-open-request-per-user index.

A request (or batch) asked with `--at <when>` keeps its time in `run_at`; once approved it is
`scheduled` until then (bot/requests/scheduling.py). A scheduled request is still open: nobody may
ask for the same sFOX user meanwhile, so the partial unique index `uq_requests_open_user` is
rebuilt with `scheduled` in its condition (SQLite and PostgreSQL alike: drop, create; no row can
violate it yet, as no row is `scheduled` before this migration).

Existing rows keep NULL (`run_at`): they run as soon as they are approved, as before. Downgrading
restores the old index; a request still `scheduled` then would never run, so the downgrade refuses
while any is.

Revision ID: 0011_schedule
Revises: 0010_policy
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from bot.store.schema import UTCDateTime

revision: str = "0011_schedule"
down_revision: str | None = "0010_policy"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OLD_OPEN = sa.text("status IN ('pending', 'executing', 'unknown')")
_NEW_OPEN = sa.text("status IN ('pending', 'scheduled', 'executing', 'unknown')")


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
    op.add_column("requests", sa.Column("run_at", UTCDateTime, nullable=True))
    op.add_column("batches", sa.Column("run_at", UTCDateTime, nullable=True))
    _open_index(_NEW_OPEN)


def downgrade() -> None:
    bind = op.get_bind()
    waiting = bind.execute(
        sa.text(
            "SELECT (SELECT count(*) FROM requests WHERE status = 'scheduled') "
            "+ (SELECT count(*) FROM batches WHERE status = 'scheduled')"
        )
    ).scalar_one()
    if waiting:
        raise RuntimeError(
            f"{waiting} request(s) or batch(es) are scheduled: they would never run after this "
            "downgrade. Cancel them (or let them run) first."
        )
    _open_index(_OLD_OPEN)
    op.drop_column("batches", "run_at")
    op.drop_column("requests", "run_at")
