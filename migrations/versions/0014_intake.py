"""The intake API (issue 20): `requests.requested_via` (the asking system, shown "via …" on the
card) and the `intake` table: one row per Idempotency-Key (unique), written in the transaction
that journals its command (`command_id`, unique), with the first answer and the outcome callback
owed (its next try, attempts, when it was delivered).

Revision ID: 0014_intake
Revises: 0013_step
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from bot.store.schema import UTCDateTime

revision: str = "0014_intake"
down_revision: str | None = "0013_step"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("requests", sa.Column("requested_via", sa.String(200), nullable=True))
    op.create_table(
        "intake",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("idempotency_key", sa.String(255), nullable=False),
        sa.Column("body_hash", sa.String(64), nullable=False),
        sa.Column("command_id", sa.Integer, nullable=False),
        sa.Column("received_at", UTCDateTime, nullable=False),
        sa.Column("answer", sa.Text, nullable=True),
        sa.Column("callback_url", sa.Text, nullable=True),
        sa.Column("callback_due_at", UTCDateTime, nullable=True),
        sa.Column("callback_attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("callback_sent_at", UTCDateTime, nullable=True),
        sa.Column("callback_error", sa.Text, nullable=True),
    )
    op.create_index("uq_intake_key", "intake", ["idempotency_key"], unique=True)
    op.create_index("uq_intake_command", "intake", ["command_id"], unique=True)


def downgrade() -> None:
    op.drop_index("uq_intake_command", table_name="intake")
    op.drop_index("uq_intake_key", table_name="intake")
    op.drop_table("intake")
    op.drop_column("requests", "requested_via")
