"""The intake API's spent signatures (issue 32): one row per accepted signature (its SHA-256, the
primary key) until its timestamp's five-minute window is over (`expires_at`, indexed so expired
rows are pruned cheaply), so a captured request sent again, to any replica, is refused.

Revision ID: 0017_intake_replay
Revises: 0015_stream
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from bot.store.schema import UTCDateTime

revision: str = "0017_intake_replay"
down_revision: str | None = "0015_stream"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "intake_replay",
        sa.Column("digest", sa.String(64), primary_key=True),
        sa.Column("expires_at", UTCDateTime, nullable=False),
    )
    op.create_index("ix_intake_replay_expires", "intake_replay", ["expires_at"])


def downgrade() -> None:
    # Only spent signatures go: for five minutes after, a request captured before may be sent again.
    op.drop_index("ix_intake_replay_expires", table_name="intake_replay")
    op.drop_table("intake_replay")
