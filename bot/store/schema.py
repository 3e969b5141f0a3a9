"""The database tables. Alembic migrations create them; this module only describes them for queries.

`requests` holds the current state of each deactivation request, `approvals` one row per approver
(the unique key makes a double click harmless), `events` the append-only audit trail, and
`outbox` the Slack messages owed for a request, so a failed post is retried instead of lost;
`audit_head` and `audit_anchor` hold the head of the events' hash chain and its last anchor,
`audit_stream` how far the audit webhook has acknowledged it and which replica sends to it;
`clicks` every button click as it arrives, before it is acknowledged, so a click Slack was told we
received is handled even if the process dies before handling it; `commands` every accepted slash
command (a request or a batch) the same way (bot/runtime/journal.py); `steps` each Workflow
Builder step Slack ran (migration 0013_step); the intake API's, bot/store/intake_schema.py.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

# The column types (and the MetaData) live in bot/store/types.py; migrations import them from here too.
# The intake API's tables are bot/store/intake_schema.py's, gathered here.
from bot.store import intake_schema  # noqa: F401 - its tables are part of the schema
from bot.store.types import OutcomeType, UTCDateTime, metadata

# `blocked`: closed before any card because the target still holds funds (see bot.sfox.balances).
# `cancelled`: a batch's user not yet started when its batch was cancelled (bot.batches), a
# scheduled request cancelled before its time, or a watch stopped by its requester or an approver.
# `scheduled`: approved, to be deactivated at `run_at` and never before (bot/requests/scheduling.py).
# `watching`: no card yet; the bot re-reads the balances until they read zero, then posts the card
# and the request becomes `pending` (bot/requests/watching.py, migration 0012_watch).
# fmt: off
STATUSES = ("pending", "denied", "expired", "executing", "unknown", "succeeded", "failed", "blocked",
            "cancelled", "scheduled", "watching")
# fmt: on
# Open with a card (or one owed): what the expiry sweep, reminders, reconcile and claims look at.
OPEN_STATUSES = ("pending", "scheduled", "executing", "unknown")
# One of these per sFOX user at most (the partial unique index below): a watch holds its user too.
WATCHING = "watching"
HELD_STATUSES = (*OPEN_STATUSES, WATCHING)
# The partial unique index's condition, from HELD_STATUSES: index and code cannot disagree (0012).
HELD_WHERE = "status IN (" + ", ".join(f"'{s}'" for s in HELD_STATUSES) + ")"


requests = Table(
    "requests",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("sfox_user_id", String(128), nullable=False),
    Column("reason", Text, nullable=False, default=""),
    Column("requested_by", String(32), nullable=False),
    Column("channel_id", String(32), nullable=False),
    Column("message_ts", String(32), nullable=True),
    Column("status", String(16), nullable=False),
    Column("required_approvals", Integer, nullable=False),
    Column("target_name", String(200), nullable=True),
    Column("target_email", String(200), nullable=True),
    Column("target_status", String(32), nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("decided_at", UTCDateTime, nullable=True),
    Column("claimed_at", UTCDateTime, nullable=True),
    Column("completed_at", UTCDateTime, nullable=True),
    Column("denied_by", String(32), nullable=True),
    Column("http_status", Integer, nullable=True),
    Column("error", Text, nullable=True),
    Column("attempts", Integer, nullable=False, default=0),
    Column("retryable", Boolean, nullable=False, default=False),
    # The balance check before the card, as JSON (bot.sfox.balances): what was read, or why not.
    Column("balances", Text, nullable=True),
    # The batch this request belongs to (bot.batches, migration 0005), None for a single request.
    Column("batch_id", Integer, nullable=True),
    # Visibility (issue 13, migration 0006): the Deny modal's reason, and the one reminder's time.
    Column("deny_reason", Text, nullable=True),
    Column("reminded_at", UTCDateTime, nullable=True),
    # What the bot knows about the DELETE (bot/store/outcomes.py, migration 0007).
    Column("outcome", OutcomeType, nullable=True),
    # The journalled command that created it (bot/runtime/commands.py, 0008), written with it: a
    # command resumed after a crash finds it. None before the journal and for a batch's users.
    Column("command_id", Integer, nullable=True),
    # The stages it was asked under, as JSON (bot/policy/stages.py, migration 0009); NULL: one
    # stage of `required_approvals` (which is always the sum of the stages' counts).
    Column("stages", Text, nullable=True),
    # When to deactivate, never before (`--at`, bot/policy/when.py; migration 0011); None: at once.
    Column("run_at", UTCDateTime, nullable=True),
    # A watch (migration 0012_watch): when its next balance read is due (claimed by one replica
    # with a compare-and-set that moves it on), and when its balances were last read.
    Column("watch_next_at", UTCDateTime, nullable=True),
    Column("watch_read_at", UTCDateTime, nullable=True),
    # The system that asked through the intake API (bot/intake/, migration 0014_intake): "via …".
    Column("requested_via", String(200), nullable=True),
    Index("ix_requests_status", "status"),
    Index("ix_requests_batch", "batch_id", "status"),
    Index("ix_requests_user_created", "sfox_user_id", "created_at"),
    Index("ix_requests_requested_by", "requested_by"),
    Index("ix_requests_created_at", "created_at"),
    # At most one open request or watch per sFOX user, even when two admins type the command at once.
    Index(
        "uq_requests_open_user",
        "sfox_user_id",
        unique=True,
        sqlite_where=text(HELD_WHERE),
        postgresql_where=text(HELD_WHERE),
    ),
    # A command creates one request at most, however many processes carry it out.
    Index("uq_requests_command", "command_id", unique=True),
)

approvals = Table(
    "approvals",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("request_id", Integer, ForeignKey("requests.id"), nullable=False),
    Column("approver", String(32), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    # The stages the approver could fill when they approved, as a JSON list of indexes
    # (migration 0009); NULL: the first (and only) stage.
    Column("stages", Text, nullable=True),
    UniqueConstraint("request_id", "approver", name="uq_approvals_request_approver"),
)

events = Table(
    "events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    # None for an event about a person rather than a request (MFA enrolled, reset, locked;
    # migration 0009_mfa).
    Column("request_id", Integer, ForeignKey("requests.id"), nullable=True),
    Column("at", UTCDateTime, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("actor", String(32), nullable=True),
    Column("http_status", Integer, nullable=True),
    Column("duration_ms", Integer, nullable=True),
    Column("detail", Text, nullable=True),
    # The hash chain (bot/audit/chain.py): a global sequence number, the previous event's hash and this
    # event's hash. The database refuses UPDATE and DELETE on this table (migration 0002_audit).
    Column("seq", BigInteger, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    Index("ix_events_request", "request_id", "id"),
    Index("uq_events_seq", "seq", unique=True),
)

# One row (id 1): the newest event of the chain. Every append locks it, so appends are serialised
# across threads, processes and replicas and the chain cannot fork.
audit_head = Table(
    "audit_head",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("seq", BigInteger, nullable=False),
    Column("hash", String(64), nullable=False),
)

# One row (id 1): the last head posted to SFOX_AUDIT_CHANNEL, claimed by one replica at a time.
audit_anchor = Table(
    "audit_anchor",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("seq", BigInteger, nullable=False),
    Column("hash", String(64), nullable=False),
    Column("posted_at", UTCDateTime, nullable=True),
)

# One row (id 1): the audit stream's cursor and sender's lease (bot/audit/stream_cursor.py, 0013).
audit_stream = Table(
    "audit_stream",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("cursor_seq", BigInteger, nullable=False),
    Column("holder", String(64), nullable=True),
    Column("lease_until", UTCDateTime, nullable=True),
    Column("failures", Integer, nullable=False, server_default="0"),
    Column("retry_at", UTCDateTime, nullable=True),
    Column("last_error", String(200), nullable=True),
    Column("sent_at", UTCDateTime, nullable=True),
)

outbox = Table(
    "outbox",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("request_id", Integer, ForeignKey("requests.id"), nullable=False),
    # "card" (re-render the card), "reply" (thread text) or "dm" (the requester's direct message)
    Column("kind", String(16), nullable=False),
    Column("text", Text, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("sent_at", UTCDateTime, nullable=True),
    Column("lease_until", UTCDateTime, nullable=True),
    Column("attempts", Integer, nullable=False, default=0),
    Column("last_error", Text, nullable=True),
    # Given up for good (a permanent Slack error; migration 0007): never tried again.
    Column("gave_up", Boolean, nullable=False, default=False),
    Index("ix_outbox_unsent", "sent_at", "request_id"),
)

clicks = Table(
    "clicks",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    # No foreign key: a click naming a request that does not exist is recorded and answered too.
    Column("request_id", Integer, nullable=False),
    Column("action", String(32), nullable=False),
    Column("actor", String(32), nullable=False),
    Column("channel_id", String(32), nullable=True),
    Column("message_ts", String(32), nullable=True),
    # Where to answer the clicker privately; Slack's response URLs live 30 minutes. Cleared once
    # the click is handled.
    Column("response_url", Text, nullable=True),
    Column("received_at", UTCDateTime, nullable=False),
    Column("lease_until", UTCDateTime, nullable=False),
    Column("done_at", UTCDateTime, nullable=True),
    # A Deny modal's reason (issue 13, migration 0006); None for a plain click.
    Column("reason", Text, nullable=True),
    # The factor an Approve came with ("totp"; migration 0009_mfa), None for a plain click.
    Column("step_up", String(16), nullable=True),
    # Issue 26 (migration 0020): how many processes held it (0: handed to a worker by the web
    # role), when a worker last took it, and where to answer the clicker ("home", or None: the
    # response URL).
    Column("holds", Integer, nullable=False, server_default="1"),
    Column("taken_at", UTCDateTime, nullable=True),
    Column("answer_in", String(8), nullable=True),
    Index("ix_clicks_open", "done_at", "lease_until"),
    Index("ix_clicks_taken_at", "taken_at"),
)

# Each accepted slash command, recorded before its ack (bot/runtime/commands.py, migration 0008):
# a command Slack was told we received is carried out even if the process dies before it.
commands = Table(
    "commands",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(16), nullable=False),  # "request" or "batch"
    Column("requester", String(32), nullable=False),
    Column("channel_id", String(32), nullable=False),
    # The validated command as JSON: the user id and reason, or a batch's ids, reason and what was
    # left out already (malformed, duplicated).
    Column("command", Text, nullable=False),
    # Where to answer the requester privately (30 minutes, 5 posts); None for the batch form,
    # answered by chat.postEphemeral. Cleared once the command is done.
    Column("response_url", Text, nullable=True),
    Column("posts", Integer, nullable=False, server_default="0"),  # posts the response URL took
    Column("received_at", UTCDateTime, nullable=False),
    Column("lease_until", UTCDateTime, nullable=False),
    Column("done_at", UTCDateTime, nullable=True),
    # As the clicks' (migration 0020): processes that held it, when a worker last took it.
    Column("holds", Integer, nullable=False, server_default="1"),
    Column("taken_at", UTCDateTime, nullable=True),
    Index("ix_commands_open", "done_at", "lease_until"),
    Index("ix_commands_taken_at", "taken_at"),
)

# -- batches (bot/batches/, bot/store/batches.py; migration 0005_batches) ---------------------------

# One row per batch: its card, approval state and runner lease. Each user of a batch is its own
# `requests` row with `batch_id` set; the batch keeps the users left out (unknown, holding funds).
BATCH_STATUSES = (
    "pending",
    "scheduled",
    "denied",
    "expired",
    "running",
    "paused",
    "cancelled",
    "done",
    "failed",
)

batches = Table(
    "batches",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("requested_by", String(32), nullable=False),
    Column("channel_id", String(32), nullable=False),
    Column("message_ts", String(32), nullable=True),
    Column("reason", Text, nullable=False, default=""),
    Column("status", String(16), nullable=False),
    Column("required_approvals", Integer, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("decided_at", UTCDateTime, nullable=True),
    Column("completed_at", UTCDateTime, nullable=True),
    Column("denied_by", String(32), nullable=True),
    Column("stopped_by", String(32), nullable=True),  # who paused or cancelled it last
    # The users left out before the card, as JSON: unknown on sFOX, holding funds, not looked up.
    Column("excluded", Text, nullable=True),
    Column("balances_skipped", Boolean, nullable=False, default=False),
    # The process running the batch holds it until `runner_until`; past that, any sweep resumes it.
    Column("runner", String(64), nullable=True),
    Column("runner_until", UTCDateTime, nullable=True),
    Column("summary_at", UTCDateTime, nullable=True),
    # The journalled command that created it (migration 0008; see requests.command_id).
    Column("command_id", Integer, nullable=True),
    # The stages it was asked under (migration 0009; see requests.stages).
    Column("stages", Text, nullable=True),
    # When its runner may start (`batch … --at`; migration 0011); None: as soon as it is approved.
    Column("run_at", UTCDateTime, nullable=True),
    Index("ix_batches_status", "status"),
    Index("uq_batches_command", "command_id", unique=True),
)

batch_approvals = Table(
    "batch_approvals",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("batch_id", Integer, ForeignKey("batches.id"), nullable=False),
    Column("approver", String(32), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("stages", Text, nullable=True),  # as approvals.stages (migration 0009)
    UniqueConstraint("batch_id", "approver", name="uq_batch_approvals_batch_approver"),
)

# The sFOX rate limiters shared by every replica (bot/sfox/pacing.py): one row per call in the window
# of its route (epoch seconds of the database's clock: `at` when the slot was taken, `answered_at`
# when the answer came back, `counts_until` the end of its place in the window; 0019_rate_slot_answers),
# and one gate row per route (id 1: every call; id 2: the balance route; 0012_watch) that serialises
# takers and holds everyone back after a 429 (`blocked_until`).
rate_slots = Table(
    "rate_slots",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", Float, nullable=False),
    Column("route", Integer, nullable=False, server_default="1"),
    Column("answered_at", Float, nullable=True),
    Column("counts_until", Float, nullable=False),
    Index("ix_rate_slots_route_until", "route", "counts_until"),
)

rate_gate = Table(
    "rate_gate",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("blocked_until", Float, nullable=False, default=0.0),
)

# -- the second factor on Approve (bot/mfa/, bot/store/mfa_*.py; migration 0009_mfa) ----------------

# One row per enrolled person: their TOTP secret, sealed (bot/mfa/sealing.py; never in the clear),
# and until when their approvals are locked after too many wrong codes.
mfa_enrolments = Table(
    "mfa_enrolments",
    metadata,
    Column("slack_user_id", String(32), primary_key=True),
    Column("secret_sealed", Text, nullable=False),
    Column("enrolled_at", UTCDateTime, nullable=False),
    Column("locked_until", UTCDateTime, nullable=True),
)

# The time step of each code a person used: the primary key is the replay rule (one insert wins).
mfa_used_codes = Table(
    "mfa_used_codes",
    metadata,
    Column("slack_user_id", String(32), primary_key=True),
    Column("step", BigInteger, primary_key=True, autoincrement=False),
    Column("used_at", UTCDateTime, nullable=False),
)

# Each wrong code a person typed, for the lock-out.
mfa_failures = Table(
    "mfa_failures",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("slack_user_id", String(32), nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Index("ix_mfa_failures_user_at", "slack_user_id", "at"),
)

# Each `function_executed` (the Workflow Builder step, bot/runtime/steps.py; migration 0013_step),
# keyed by Slack's execution id: its command, or why none (`error`), and when Slack was told.
steps = Table(
    "steps",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("execution_id", String(64), nullable=False),
    Column("command_id", Integer, nullable=True),
    Column("error", Text, nullable=True),
    Column("received_at", UTCDateTime, nullable=False),
    Column("lease_until", UTCDateTime, nullable=True),
    Column("completed_at", UTCDateTime, nullable=True),
    Index("uq_steps_execution", "execution_id", unique=True),
    Index("uq_steps_command", "command_id", unique=True),
)
