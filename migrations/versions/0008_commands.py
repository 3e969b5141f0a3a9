"""The command journal (issue 17): each accepted slash command is recorded before its ack.

`commands` holds what is needed to carry a command out again after the process that acked it
died: its kind (a single request or a batch), the requester and channel, the validated command as
JSON, where to answer (the response URL, None for the batch form), how many posts that URL has
taken (Slack allows 5), and the lease that tells a live owner from a dead one.
`requests.command_id` and `batches.command_id` link what a command created to it, written in the
transaction that creates the row; their unique indexes make a command create one request or one
batch at most, however many processes carry it out.

Existing rows keep a NULL `command_id` (they were asked before the journal). Plain ADD/DROP COLUMN
(SQLite 3.35+ and PostgreSQL): no table is rebuilt, so the foreign keys onto `requests` and the
audit triggers on `events` are left alone.

Revision ID: 0008_commands
Revises: 0007_outcomes
Create Date: 2026-12-10
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from bot.store.schema import UTCDateTime

revision: str = "0008_commands"
down_revision: str | None = "0007_outcomes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "commands",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("requester", sa.String(32), nullable=False),
        sa.Column("channel_id", sa.String(32), nullable=False),
        sa.Column("command", sa.Text, nullable=False),
        sa.Column("response_url", sa.Text, nullable=True),
        sa.Column("posts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("received_at", UTCDateTime, nullable=False),
        sa.Column("lease_until", UTCDateTime, nullable=False),
        sa.Column("done_at", UTCDateTime, nullable=True),
    )
    op.create_index("ix_commands_open", "commands", ["done_at", "lease_until"])
    op.add_column("requests", sa.Column("command_id", sa.Integer, nullable=True))
    op.create_index("uq_requests_command", "requests", ["command_id"], unique=True)
    op.add_column("batches", sa.Column("command_id", sa.Integer, nullable=True))
    op.create_index("uq_batches_command", "batches", ["command_id"], unique=True)


def downgrade() -> None:
    op.drop_index("uq_batches_command", table_name="batches")
    op.drop_column("batches", "command_id")
    op.drop_index("uq_requests_command", table_name="requests")
    op.drop_column("requests", "command_id")
    op.drop_index("ix_commands_open", table_name="commands")
    op.drop_table("commands")
