"""The audit trail streamed out (issue 20): one row holding how far SFOX_AUDIT_WEBHOOK_URL has
acknowledged the chain (`cursor_seq`, the last acknowledged seq; 0 before anything was sent, so
a new webhook receives every event from seq 1) and the lease of the one replica sending to it
(`holder`, `lease_until`, taken by a compare-and-set), with its failures in a row, when to try
again and the last error (no URL, no secret: only a status or an error's class).

Revision ID: 0015_stream
Revises: 0014_intake
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from bot.store.schema import UTCDateTime

revision: str = "0015_stream"
down_revision: str | None = "0014_intake"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    stream = op.create_table(
        "audit_stream",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("cursor_seq", sa.BigInteger, nullable=False),
        sa.Column("holder", sa.String(64), nullable=True),
        sa.Column("lease_until", UTCDateTime, nullable=True),
        sa.Column("failures", sa.Integer, nullable=False, server_default="0"),
        sa.Column("retry_at", UTCDateTime, nullable=True),
        sa.Column("last_error", sa.String(200), nullable=True),
        sa.Column("sent_at", UTCDateTime, nullable=True),
    )
    op.bulk_insert(stream, [{"id": 1, "cursor_seq": 0, "failures": 0}])


def downgrade() -> None:
    # The cursor goes with it: upgraded again, the stream starts over from seq 1 (at least once).
    op.drop_table("audit_stream")
