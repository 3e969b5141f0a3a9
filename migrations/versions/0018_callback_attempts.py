"""The intake callback's state (issue 32): `intake.callback_state`, None without a callback_url,
else `owed`, `delivered` or `abandoned` (tried SFOX_INTAKE_CALLBACK_ATTEMPTS times, refused for
good by its receiver, or a destination the bot must not call), so a given-up callback is a state
and not a sent one. Rows written before it: a callback not sent yet is `owed`; a sent one
`delivered`, unless its error says the bot gave up (the only words 0014's code wrote then).

Revision ID: 0018_callback_attempts
Revises: 0017_intake_replay
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018_callback_attempts"
down_revision: str | None = "0017_intake_replay"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("intake", sa.Column("callback_state", sa.String(16), nullable=True))
    op.execute(
        "UPDATE intake SET callback_state = CASE"
        " WHEN callback_sent_at IS NULL THEN 'owed'"
        " WHEN callback_error LIKE 'gave up:%' THEN 'abandoned'"
        " ELSE 'delivered' END"
        " WHERE callback_url IS NOT NULL"
    )


def downgrade() -> None:
    # The older code reads a callback as owed while callback_sent_at is NULL, and an abandoned one
    # has it set: none is sent again. SQLite drops a plain column in place.
    op.drop_column("intake", "callback_state")
