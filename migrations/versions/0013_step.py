"""The Workflow Builder step (issue 20): one row per `function_executed` Slack sent.

`steps.execution_id` is Slack's `function_execution_id`, unique: a repeated event (Slack re-sends
one it did not see acknowledged within 3 s, to any replica) finds the row and opens nothing new.
`command_id` is the journalled command the step became (unique; its request is the one whose
`requests.command_id` it is); `error` the plain-words reason when no request could be opened;
`completed_at` when Slack took the completion. The workflow token that came with the event is
never stored: the completion is sent with the bot token (README, "Workflow Builder step").

Revision ID: 0013_step
Revises: 0012_watch
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from bot.store.schema import UTCDateTime

revision: str = "0013_step"
down_revision: str | None = "0012_watch"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "steps",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("execution_id", sa.String(64), nullable=False),
        sa.Column("command_id", sa.Integer, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("received_at", UTCDateTime, nullable=False),
        sa.Column("lease_until", UTCDateTime, nullable=True),
        sa.Column("completed_at", UTCDateTime, nullable=True),
    )
    op.create_index("uq_steps_execution", "steps", ["execution_id"], unique=True)
    op.create_index("uq_steps_command", "steps", ["command_id"], unique=True)


def downgrade() -> None:
    op.drop_index("uq_steps_command", table_name="steps")
    op.drop_index("uq_steps_execution", table_name="steps")
    op.drop_table("steps")
