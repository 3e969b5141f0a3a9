"""Storage: every state change is one short transaction that also appends its audit event and the
Slack messages it owes (outbox), so state, trail and notifications cannot disagree.

Transitions that must happen once (claiming a request for execution, denying, expiring) are single
conditional UPDATEs (`... WHERE status = 'pending'`); the caller acts only if it changed a row.
That holds across threads, processes and replicas on SQLite (WAL, IMMEDIATE transactions, a busy
timeout) and PostgreSQL alike.

The writes live in one module per use case: asking (`bot.store_asking`), deciding
(`bot.store_deciding`), executing and reconciling (`bot.store_executing`), delivering
(`bot.store_delivering`); the engine, the records, the reads and the transaction helpers they share
in `bot.store_base`.
"""

from __future__ import annotations

from bot.store.asking import AskingStore
from bot.store.base import (
    SQLITE_BUSY_TIMEOUT_MS,
    AlreadyOpen,
    Busy,
    Event,
    EventRecord,
    Notice,
    RequestRecord,
    make_engine,
)
from bot.store.deciding import DecidingStore
from bot.store.delivering import DeliveringStore
from bot.store.executing import ExecutingStore

__all__ = [
    "SQLITE_BUSY_TIMEOUT_MS",
    "AlreadyOpen",
    "Busy",
    "Event",
    "EventRecord",
    "Notice",
    "RequestRecord",
    "Store",
    "make_engine",
]


class Store(AskingStore, DecidingStore, ExecutingStore, DeliveringStore):
    """The bot's database: requests, approvals, the audit trail and the outbox."""
