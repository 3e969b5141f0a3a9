"""Batches: many users under one approval (`batches`, `batch_approvals`, `requests.batch_id`) and
the sFOX rate limiter shared by all replicas (`rate_slots`, `rate_gate`).

Revision ID: 0005_batches
Revises: 0004_clicks
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from bot.store.schema import UTCDateTime

revision: str = "0005_batches"
down_revision: str | None = "0004_clicks"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "batches",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("requested_by", sa.String(32), nullable=False),
        sa.Column("channel_id", sa.String(32), nullable=False),
        sa.Column("message_ts", sa.String(32), nullable=True),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("required_approvals", sa.Integer, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("expires_at", UTCDateTime, nullable=False),
        sa.Column("decided_at", UTCDateTime, nullable=True),
        sa.Column("completed_at", UTCDateTime, nullable=True),
        sa.Column("denied_by", sa.String(32), nullable=True),
        sa.Column("stopped_by", sa.String(32), nullable=True),
        sa.Column("excluded", sa.Text, nullable=True),
        sa.Column("balances_skipped", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("runner", sa.String(64), nullable=True),
        sa.Column("runner_until", UTCDateTime, nullable=True),
        sa.Column("summary_at", UTCDateTime, nullable=True),
    )
    op.create_index("ix_batches_status", "batches", ["status"])
    op.create_table(
        "batch_approvals",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("batch_id", sa.Integer, sa.ForeignKey("batches.id"), nullable=False),
        sa.Column("approver", sa.String(32), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.UniqueConstraint("batch_id", "approver", name="uq_batch_approvals_batch_approver"),
    )
    # A plain ALTER TABLE (SQLite 3.35+ and PostgreSQL): no copy of the requests table.
    op.add_column("requests", sa.Column("batch_id", sa.Integer, nullable=True))
    op.create_index("ix_requests_batch", "requests", ["batch_id", "status"])
    op.create_table(
        "rate_slots",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", sa.Float, nullable=False),
    )
    op.create_index("ix_rate_slots_at", "rate_slots", ["at"])
    gate = op.create_table(
        "rate_gate",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("blocked_until", sa.Float, nullable=False),
    )
    op.bulk_insert(gate, [{"id": 1, "blocked_until": 0.0}])


def downgrade() -> None:
    op.drop_table("rate_gate")
    op.drop_index("ix_rate_slots_at", table_name="rate_slots")
    op.drop_table("rate_slots")
    op.drop_index("ix_requests_batch", table_name="requests")
    op.drop_column("requests", "batch_id")
    op.drop_table("batch_approvals")
    op.drop_index("ix_batches_status", table_name="batches")
    op.drop_table("batches")
