"""Storage: every state change is one short transaction that also appends its audit event and the
Slack messages it owes (outbox), so state, trail and notifications cannot disagree.

Transitions that must happen once (claiming a request for execution, denying, expiring) are single
conditional UPDATEs (`... WHERE status = 'pending'`); the caller acts only if it changed a row.
That holds across threads, processes and replicas on SQLite (WAL, IMMEDIATE transactions, a busy
timeout) and PostgreSQL alike.

The writes live in one module per use case: asking (`bot.store.asking`), deciding
(`bot.store.deciding`), retrying (`bot.store.retrying`), executing and reconciling (`bot.store.executing`), delivering
(`bot.store.delivering`), batches (`bot.store.batches`); the reads and the transaction helpers they
share in `bot.store.base`, the engine in `bot.store.engine`, the records and typed errors in
`bot.store.records`.
"""

from __future__ import annotations

from bot.store.asking import AskingStore
from bot.store.delivering import DeliveringStore
from bot.store.executing import ExecutingStore
from bot.store.retrying import RetryingStore
from bot.store.stepping import SteppingStore
from bot.store.watching import WatchingStore


class Store(WatchingStore, AskingStore, RetryingStore, ExecutingStore, DeliveringStore, SteppingStore):
    """The bot's database: requests, approvals, the audit trail and the outbox."""
