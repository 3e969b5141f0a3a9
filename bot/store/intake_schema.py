"""The intake API's tables (bot/intake/), described on the schema's MetaData: bot/store/schema.py
gathers them with the rest, so the migrations' comparison and every query see one schema.

`intake` holds its idempotency keys (migration 0014_intake), `intake_replay` the signatures it
accepted, each until its window is over (issue 32, migration 0017_intake_replay)."""

from __future__ import annotations

from sqlalchemy import Column, Index, Integer, String, Table, Text

from bot.store.types import UTCDateTime, metadata

# The first request of a key journals its command in the same transaction; its answer (JSON) and
# the outcome callback owed.
intake = Table(
    "intake",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("idempotency_key", String(255), nullable=False),
    Column("body_hash", String(64), nullable=False),
    Column("command_id", Integer, nullable=False),
    Column("received_at", UTCDateTime, nullable=False),
    Column("answer", Text, nullable=True),
    Column("callback_url", Text, nullable=True),
    Column("callback_due_at", UTCDateTime, nullable=True),  # next try, or the lease of the one sending
    Column("callback_attempts", Integer, nullable=False, server_default="0"),
    Column("callback_sent_at", UTCDateTime, nullable=True),  # when delivered, or given up
    Column("callback_error", Text, nullable=True),  # the last attempt's status or error class
    # None without a callback_url; else `owed`, then `delivered` or `abandoned` (0018_callback_attempts)
    Column("callback_state", String(16), nullable=True),
    Index("uq_intake_key", "idempotency_key", unique=True),
    Index("uq_intake_command", "command_id", unique=True),
)

# Every accepted signature by its SHA-256 (bot/intake/replay.py), until its timestamp's window is
# over: the primary key is the replay rule (of two replicas that get the same request, one insert wins).
intake_replay = Table(
    "intake_replay",
    metadata,
    Column("digest", String(64), primary_key=True),
    Column("expires_at", UTCDateTime, nullable=False),
    Index("ix_intake_replay_expires", "expires_at"),
)
