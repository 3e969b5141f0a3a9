"""The batches' records: the `batches` and `batch_approvals` tables, and the bulk changes to a
batch's users (`requests` rows with `batch_id`). Every change is one transaction that also
appends each user's audit event, like bot/store/db.py does for a single request; transitions that
must happen once are conditional UPDATEs.

The writes live in one module per use case: asking (bot/store/batch_asking.py), deciding
(bot/store/batch_deciding.py), running (bot/store/batch_running.py), starting one asked for later
(bot/store/batch_scheduling.py); the record, the reads and the
bulk change they share in bot/store/batch_base.py.
"""

from __future__ import annotations

from bot.store.batch_asking import BatchAskingStore
from bot.store.batch_deciding import BatchDecidingStore
from bot.store.batch_running import BatchRunningStore
from bot.store.batch_scheduling import BatchSchedulingStore


class BatchStore(BatchAskingStore, BatchDecidingStore, BatchRunningStore, BatchSchedulingStore):
    """A batch's records, from asking to its summary."""
