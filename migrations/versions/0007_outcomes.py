"""Typed outcomes (issue 16): `requests.outcome` and `outbox.gave_up`.

`requests.outcome` records what the bot knows about a request's DELETE (bot/store/outcomes.py),
so a batch decides whether a failed user may be claimed again from a typed value instead of the
start of its error text. `outbox.gave_up` marks a Slack message given up for good, which the DMs
read instead of matching "gave up:" at the start of `last_error`.

Existing rows: the only ones whose kind matters afterwards are failed users a batch would claim
again, so those are translated once, here, from what the older code wrote: the error text a
reconcile gave a claim whose DELETE was never sent, and the 429 status; every other settled row
keeps a NULL outcome (settled before kinds were recorded, never claimed again on its own). Messages
given up before are found by the "gave up:" prefix the older code wrote. Both are plain ADD COLUMN
and UPDATE statements (SQLite 3.35+ and PostgreSQL): no table is rebuilt, so the foreign keys
onto `requests` and the audit triggers on `events` are left alone.

Revision ID: 0007_outcomes
Revises: 0006_visibility
Create Date: 2026-12-08
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_outcomes"
down_revision: str | None = "0006_visibility"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# What bot/requests/executing.py's reconcile wrote, before 0007, for a claim never sent.
LEGACY_NEVER_SENT = "the bot stopped before sending the DELETE%"


def upgrade() -> None:
    op.add_column("requests", sa.Column("outcome", sa.String(32), nullable=True))
    op.add_column("outbox", sa.Column("gave_up", sa.Boolean, nullable=False, server_default=sa.false()))
    requests = sa.table(
        "requests",
        sa.column("status", sa.String),
        sa.column("error", sa.Text),
        sa.column("http_status", sa.Integer),
        sa.column("outcome", sa.String),
    )
    op.execute(
        requests.update()
        .where(requests.c.status == "failed", requests.c.error.like(LEGACY_NEVER_SENT))
        .values(outcome="stopped_before_sending")
    )
    op.execute(
        requests.update()
        .where(requests.c.status == "failed", requests.c.http_status == 429, requests.c.outcome.is_(None))
        .values(outcome="rate_limited")
    )
    outbox = sa.table("outbox", sa.column("last_error", sa.Text), sa.column("gave_up", sa.Boolean))
    op.execute(outbox.update().where(outbox.c.last_error.like("gave up:%")).values(gave_up=True))


def downgrade() -> None:
    op.drop_column("outbox", "gave_up")
    op.drop_column("requests", "outcome")
