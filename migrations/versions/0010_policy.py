"""The approval policy (issue 18): the stages each request and batch was asked under, and the
stages each approval could fill.

`requests.stages` and `batches.stages` hold the policy's stages as JSON (bot/policy/stages.py),
written when the row is created, so a policy edited later never changes what an open request
needs. `approvals.stages` and `batch_approvals.stages` hold the indexes of the stages the
approver could fill when they approved (groups read then), so the claim decides from rows alone.

Existing rows keep NULL: a request or batch reads as one stage of its `required_approvals` that
every approval may fill, which is exactly the rule they were asked under. Plain ADD/DROP COLUMN
(SQLite 3.35+ and PostgreSQL), like 0008.

Revision ID: 0010_policy
Revises: 0009_mfa
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_policy"
down_revision: str | None = "0009_mfa"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TABLES = ("requests", "batches", "approvals", "batch_approvals")


def upgrade() -> None:
    for table in _TABLES:
        op.add_column(table, sa.Column("stages", sa.Text, nullable=True))


def downgrade() -> None:
    for table in reversed(_TABLES):
        op.drop_column(table, "stages")
