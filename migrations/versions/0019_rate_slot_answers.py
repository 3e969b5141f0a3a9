"""A rate-limit slot counts until its answer came back (issue 26, bot/sfox/pacing.py):
`rate_slots.answered_at` (NULL while the call is in flight, or when its process died) and
`rate_slots.counts_until`, the end of the slot's place in its route's window, which takers count
and prune by (index `ix_rate_slots_route_until`, in place of the two on `at`).

Slots taken before it keep the older code's meaning: each counts for 10.2 s (the window and its
margin) from `at`. They last seconds, so nothing older is lost either way.

Revision ID: 0019_rate_slot_answers
Revises: 0018_callback_attempts
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019_rate_slot_answers"
down_revision: str | None = "0018_callback_attempts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLDER_SPAN_SECONDS = 10.2  # WINDOW_SECONDS + MARGIN_SECONDS when 0018 was current


def upgrade() -> None:
    # SQLite cannot add a NOT NULL column without a default: add it empty, fill it, then tighten it
    # (batch mode copies the table there; it has no foreign key or trigger to lose).
    with op.batch_alter_table("rate_slots") as batch:
        batch.add_column(sa.Column("answered_at", sa.Float, nullable=True))
        batch.add_column(sa.Column("counts_until", sa.Float, nullable=True))
    op.execute(sa.text("UPDATE rate_slots SET counts_until = at + :span").bindparams(span=OLDER_SPAN_SECONDS))
    with op.batch_alter_table("rate_slots") as batch:
        batch.alter_column("counts_until", existing_type=sa.Float, nullable=False)
        batch.drop_index("ix_rate_slots_route_at")
        batch.drop_index("ix_rate_slots_at")
        batch.create_index("ix_rate_slots_route_until", ["route", "counts_until"])


def downgrade() -> None:
    # The older code counts a slot for its window from `at`; a slot still in flight is one more
    # it counts for a moment less than this code would: they last seconds.
    with op.batch_alter_table("rate_slots") as batch:
        batch.drop_index("ix_rate_slots_route_until")
        batch.create_index("ix_rate_slots_at", ["at"])
        batch.create_index("ix_rate_slots_route_at", ["route", "at"])
        batch.drop_column("counts_until")
        batch.drop_column("answered_at")
