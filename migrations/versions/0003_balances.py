"""The balance check read before a card: one nullable JSON text column on requests.

Revision ID: 0003_balances
Revises: 0002_audit
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_balances"
down_revision: str | None = "0002_audit"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("requests") as batch:
        batch.add_column(sa.Column("balances", sa.Text, nullable=True))


def downgrade() -> None:
    # Not batch mode: on SQLite that rebuilds `requests`, which the audit trail's events reference
    # (foreign keys on), so the rebuild would be refused. SQLite drops a plain column in place.
    op.drop_column("requests", "balances")
