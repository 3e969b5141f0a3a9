"""Visibility (issue 13): a deny's reason, the one reminder per request, a click's deny reason.

`requests.deny_reason` keeps what the approver typed in the Deny modal (shown on the card and in
the thread); `requests.reminded_at` records the reminder posted in the card's thread, set by one
conditional UPDATE so that of several replicas' sweeps exactly one reminds; `clicks.reason` carries
a Deny modal's reason from the moment the submission is recorded (before its ack) to its step.
Outbox rows of kind "dm" (a direct message to the requester) need no schema change.

Revision ID: 0006_visibility
Revises: 0005_batches
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from bot.store.schema import UTCDateTime

revision: str = "0006_visibility"
down_revision: str | None = "0005_batches"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ADD/DROP COLUMN (SQLite 3.35+ and PostgreSQL): no table is rebuilt, so the foreign
    # keys onto `requests` and the audit triggers are left alone.
    op.add_column("requests", sa.Column("deny_reason", sa.Text, nullable=True))
    op.add_column("requests", sa.Column("reminded_at", UTCDateTime, nullable=True))
    op.add_column("clicks", sa.Column("reason", sa.Text, nullable=True))


def downgrade() -> None:
    op.drop_column("clicks", "reason")
    op.drop_column("requests", "reminded_at")
    op.drop_column("requests", "deny_reason")
