"""The values the store hands out and takes in: request and event records, owed Slack messages,
audit events to append, and the store's typed errors."""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from bot.store.outcomes import Outcome

# A final outcome owes the requester a direct message, queued in the same transaction as the
# outcome; bot/slack/dms.py renders and sends it through the outbox.
DM_OUTCOMES = frozenset({"succeeded", "failed", "denied", "expired", "blocked"})


def dm_owed(values: dict[str, Any]) -> list[tuple[str, str | None]]:
    status = values.get("status")
    if status not in DM_OUTCOMES or values.get("requested_via"):
        return []  # a system that asked through the intake API has no DM: it is called back
    return [("dm", json.dumps({"status": status, "error": values.get("error")}))]


def record_as_dict(record: Any) -> dict[str, Any]:
    """A record (a dataclass) as JSON-ready values: times in ISO 8601, tuples as lists."""
    out: dict[str, Any] = {}
    for f in fields(record):
        value = getattr(record, f.name)
        if isinstance(value, datetime):
            value = value.isoformat()
        elif isinstance(value, tuple):
            value = list(value)
        out[f.name] = value
    return out


@dataclass(frozen=True)
class RequestRecord:
    id: int
    sfox_user_id: str
    reason: str
    requested_by: str
    channel_id: str
    message_ts: str | None
    status: str
    required_approvals: int
    target_name: str | None
    target_email: str | None
    target_status: str | None
    created_at: datetime
    expires_at: datetime
    decided_at: datetime | None
    claimed_at: datetime | None
    completed_at: datetime | None
    denied_by: str | None
    http_status: int | None
    error: str | None
    attempts: int
    retryable: bool
    balances: str | None = None  # the balance check as JSON (bot.sfox.balances), None when not read
    deny_reason: str | None = None  # what the denier typed in the Deny dialog
    reminded_at: datetime | None = None  # when its one reminder was posted (bot/requests/reminders.py)
    batch_id: int | None = None  # the batch it belongs to (bot.batches), None for a single request
    outcome: Outcome | None = None  # what is known of its DELETE (bot/store/outcomes.py)
    command_id: int | None = None  # the journalled command that created it (bot/runtime/commands.py)
    stages: str | None = None  # the stages it was asked under, JSON (bot/policy/stages.py)
    run_at: datetime | None = None  # deactivate at this instant, never before (`--at`); None: at once
    # A watch (bot/requests/watching.py): when its next balance read is due, when it was last read.
    watch_next_at: datetime | None = None
    watch_read_at: datetime | None = None
    # The system that asked through the intake API (bot/intake/), shown "via …"; None: a person.
    requested_via: str | None = None
    approved_by: tuple[str, ...] = ()
    # For each of `approved_by`, the stages that approval may fill (None: recorded before stages).
    approval_stages: tuple[tuple[int, ...] | None, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return record_as_dict(self)

    @property
    def pending_since(self) -> datetime:
        """When it began to wait for approval: its creation, or the read that ended its watch
        (bot/requests/watching.py); its TTL, its reminder and its card's grace count from here."""
        return self.watch_read_at or self.created_at


@dataclass(frozen=True)
class EventRecord:
    id: int
    request_id: int | None  # None: an event about a person (MFA), not a request
    at: datetime
    kind: str
    actor: str | None
    http_status: int | None
    duration_ms: int | None
    detail: str | None
    seq: int
    prev_hash: str
    hash: str


@dataclass(frozen=True)
class Notice:
    """One Slack message owed for a request: `card` re-renders the card, `reply` posts `text` in
    the card's thread."""

    id: int
    request_id: int
    kind: str
    text: str | None
    attempts: int
    busy: bool = False


@dataclass(frozen=True)
class Event:
    """An audit event to append along with a state change."""

    kind: str
    actor: str | None = None
    detail: str | dict[str, Any] | None = None
    http_status: int | None = None
    duration_ms: int | None = None
