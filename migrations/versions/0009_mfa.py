"""The second factor on Approve (issue 18): enrolments, used codes, wrong codes; person events.

- `mfa_enrolments`: one row per enrolled person: the TOTP secret sealed with the key derived from
  SFOX_MFA_KEY (bot/mfa/sealing.py; never in the clear), when, and until when their approvals are
  locked after too many wrong codes.
- `mfa_used_codes`: the time step of every code a person used (never the code or the secret); its
  primary key (person, step) is the replay rule, race-free across replicas: of two submissions of
  one code, one insert wins.
- `mfa_failures`: each wrong code, for the lock-out (5 in 10 minutes lock 10 minutes).
- `clicks.step_up`: the factor an Approve came with ("totp"), journalled with the click so a click
  replayed after a crash counts exactly as it would have.
- `events.request_id` becomes nullable: an event about a person (enrolled, reset, locked) belongs to
  no request. The hash chain encodes it as JSON null (bot/audit/chain.py); events already chained
  all have a request and hash exactly as before. PostgreSQL drops the NOT NULL in place; SQLite
  cannot, so `events` is rebuilt (rows copied as they are, seq and hashes included) and its
  append-only triggers are created again, as 0002_audit made them.

Self-contained (no other revision depends on it), so it can be renumbered when branches merge.

Revision ID: 0009_mfa
Revises: 0008_commands
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from bot.store.schema import UTCDateTime

revision: str = "0009_mfa"
down_revision: str | None = "0008_commands"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

REFUSAL = "events are append-only: UPDATE and DELETE are refused"  # as 0002_audit


def upgrade() -> None:
    op.create_table(
        "mfa_enrolments",
        sa.Column("slack_user_id", sa.String(32), primary_key=True),
        sa.Column("secret_sealed", sa.Text, nullable=False),
        sa.Column("enrolled_at", UTCDateTime, nullable=False),
        sa.Column("locked_until", UTCDateTime, nullable=True),
    )
    op.create_table(
        "mfa_used_codes",
        sa.Column("slack_user_id", sa.String(32), primary_key=True),
        sa.Column("step", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("used_at", UTCDateTime, nullable=False),
    )
    op.create_table(
        "mfa_failures",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("slack_user_id", sa.String(32), nullable=False),
        sa.Column("at", UTCDateTime, nullable=False),
    )
    op.create_index("ix_mfa_failures_user_at", "mfa_failures", ["slack_user_id", "at"])
    op.add_column("clicks", sa.Column("step_up", sa.String(16), nullable=True))
    _events_request_nullable(True)


def downgrade() -> None:
    conn = op.get_bind()
    people = conn.execute(sa.text("SELECT COUNT(*) FROM events WHERE request_id IS NULL")).scalar()
    if people:
        # The trail is append-only: its events about people cannot be dropped to go back.
        raise RuntimeError(
            f"cannot downgrade below 0009_mfa: the audit trail holds {people} event(s) about people "
            "(MFA enrolments), which have no request and cannot be removed"
        )
    _events_request_nullable(False)
    op.drop_column("clicks", "step_up")
    op.drop_index("ix_mfa_failures_user_at", table_name="mfa_failures")
    op.drop_table("mfa_failures")
    op.drop_table("mfa_used_codes")
    op.drop_table("mfa_enrolments")


def _events_request_nullable(nullable: bool) -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column("events", "request_id", existing_type=sa.Integer, nullable=nullable)
        return
    # SQLite: the table is rebuilt (copied, dropped, renamed), which drops its triggers.
    for action in ("update", "delete"):
        op.execute(f"DROP TRIGGER IF EXISTS events_no_{action}")
    with op.batch_alter_table("events", recreate="always") as batch:
        batch.alter_column("request_id", existing_type=sa.Integer, nullable=nullable)
    for action in ("UPDATE", "DELETE"):
        op.execute(
            f"CREATE TRIGGER events_no_{action.lower()} BEFORE {action} ON events "
            f"BEGIN SELECT RAISE(ABORT, '{REFUSAL}'); END"
        )
