"""Audit trail: hash-chain the events and make them append-only.

Adds `seq`, `prev_hash` and `hash` to `events`, chains the events already recorded in their
current order (by id), adds the one-row tables `audit_head` (the chain's newest event, locked by
every append) and `audit_anchor` (the last head posted to SFOX_AUDIT_CHANNEL), and installs
triggers that refuse UPDATE and DELETE on `events` (and TRUNCATE on PostgreSQL).

The existing events are hashed with the SFOX_AUDIT_KEY that `sfox-bot migrate` / `run` pass in
(plain SHA-256 without one). The encoding is written out here on purpose, frozen with this
revision; it is the one documented in bot/audit/chain.py and the README, and tests check they agree.

Revision ID: 0002_audit
Revises: 0001
Create Date: 2026-12-01
"""

import hashlib
import hmac
import json
from collections.abc import Sequence
from datetime import UTC

import sqlalchemy as sa
from alembic import context, op

from bot.store.schema import UTCDateTime

revision: str = "0002_audit"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

GENESIS = "0" * 64
REFUSAL = "events are append-only: UPDATE and DELETE are refused"

_events = sa.table(
    "events",
    sa.column("id", sa.Integer),
    sa.column("request_id", sa.Integer),
    sa.column("at", UTCDateTime),
    sa.column("kind", sa.String),
    sa.column("actor", sa.String),
    sa.column("http_status", sa.Integer),
    sa.column("duration_ms", sa.Integer),
    sa.column("detail", sa.Text),
    sa.column("seq", sa.BigInteger),
    sa.column("prev_hash", sa.String),
    sa.column("hash", sa.String),
)


def _hash(prev_hash: str, row: dict, key: bytes | None) -> str:
    at = row["at"].astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"
    body = {**row, "at": at}
    message = prev_hash.encode() + json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    if key:
        return hmac.new(key, message, hashlib.sha256).hexdigest()
    return hashlib.sha256(message).hexdigest()


def upgrade() -> None:
    op.add_column("events", sa.Column("seq", sa.BigInteger, nullable=True))
    op.add_column("events", sa.Column("prev_hash", sa.String(64), nullable=True))
    op.add_column("events", sa.Column("hash", sa.String(64), nullable=True))

    key_text = context.config.attributes.get("audit_key")
    key = key_text.encode() if key_text else None
    conn = op.get_bind()
    seq, prev = 0, GENESIS
    fields = ("request_id", "at", "kind", "actor", "http_status", "duration_ms", "detail")
    rows = conn.execute(sa.select(_events.c.id, *(_events.c[f] for f in fields)).order_by(_events.c.id))
    updates = []
    for r in rows.mappings().all():
        seq += 1
        digest = _hash(prev, {"seq": seq, **{f: r[f] for f in fields}}, key)
        updates.append({"row_id": r["id"], "seq": seq, "prev_hash": prev, "hash": digest})
        prev = digest
    if updates:
        conn.execute(
            sa.update(_events)
            .where(_events.c.id == sa.bindparam("row_id"))
            .values(seq=sa.bindparam("seq"), prev_hash=sa.bindparam("prev_hash"), hash=sa.bindparam("hash")),
            updates,
        )

    with op.batch_alter_table("events") as batch:
        batch.alter_column("seq", existing_type=sa.BigInteger, nullable=False)
        batch.alter_column("prev_hash", existing_type=sa.String(64), nullable=False)
        batch.alter_column("hash", existing_type=sa.String(64), nullable=False)
    op.create_index("uq_events_seq", "events", ["seq"], unique=True)

    op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.CheckConstraint("id = 1", name="ck_audit_head_one_row"),
    )
    op.create_table(
        "audit_anchor",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("posted_at", UTCDateTime, nullable=True),
        sa.CheckConstraint("id = 1", name="ck_audit_anchor_one_row"),
    )
    conn.execute(
        sa.text("INSERT INTO audit_head (id, seq, hash) VALUES (1, :seq, :hash)"), {"seq": seq, "hash": prev}
    )
    conn.execute(
        sa.text("INSERT INTO audit_anchor (id, seq, hash, posted_at) VALUES (1, 0, :hash, NULL)"),
        {"hash": GENESIS},
    )

    if conn.dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
            f"BEGIN RAISE EXCEPTION '{REFUSAL} (%)', TG_OP; END $$"
        )
        op.execute(
            "CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON events "
            "FOR EACH ROW EXECUTE FUNCTION events_append_only()"
        )
        op.execute(
            "CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON events "
            "FOR EACH STATEMENT EXECUTE FUNCTION events_append_only()"
        )
    else:
        for action in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER events_no_{action.lower()} BEFORE {action} ON events "
                f"BEGIN SELECT RAISE(ABORT, '{REFUSAL}'); END"
            )


def downgrade() -> None:
    conn = op.get_bind()
    if conn.dialect.name == "postgresql":
        op.execute("DROP TRIGGER events_no_truncate ON events")
        op.execute("DROP TRIGGER events_append_only ON events")
        op.execute("DROP FUNCTION events_append_only()")
    else:
        op.execute("DROP TRIGGER events_no_update")
        op.execute("DROP TRIGGER events_no_delete")
    op.drop_table("audit_anchor")
    op.drop_table("audit_head")
    op.drop_index("uq_events_seq", "events")
    with op.batch_alter_table("events") as batch:
        batch.drop_column("hash")
        batch.drop_column("prev_hash")
        batch.drop_column("seq")
