"""The web tier hands its journals' rows to workers (issue 26).

- `holds`: how many processes have held the row. The process that records a command or click and
  carries it out itself writes 1; the web role writes 0 (handed over, due at once). Each take adds
  one, so the taker knows from the row alone whether it is the first to work on it (fresh: answer
  as usual) or whether a process died holding it (resumed: say the bot restarted).
- `taken_at`: when a worker last took the row, so `/readyz` can say when a worker last took work.
- `clicks.answer_in`: where to answer the clicker (`home`: republish their App Home tab; None:
  the click's response URL), since the worker that handles a click is not the process that
  received it.

Rows written before it were held by the process that recorded them: 1.

Revision ID: 0020_worker_handover
Revises: 0019_rate_slot_answers
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from bot.store.schema import UTCDateTime

revision: str = "0020_worker_handover"
down_revision: str | None = "0019_rate_slot_answers"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JOURNALS = ("clicks", "commands")


def upgrade() -> None:
    for table in JOURNALS:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("holds", sa.Integer(), nullable=False, server_default="1"))
            batch.add_column(sa.Column("taken_at", UTCDateTime, nullable=True))
            batch.create_index(f"ix_{table}_taken_at", ["taken_at"])
    with op.batch_alter_table("clicks") as batch:
        batch.add_column(sa.Column("answer_in", sa.String(8), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("clicks") as batch:
        batch.drop_column("answer_in")
    for table in JOURNALS:
        with op.batch_alter_table(table) as batch:
            batch.drop_index(f"ix_{table}_taken_at")
            batch.drop_column("taken_at")
            batch.drop_column("holds")
