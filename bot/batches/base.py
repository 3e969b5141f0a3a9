"""What a batch's use cases share: the state they work with (the store, sFOX, the batch card's
Slack side, the policy, the rate limiter (the sFOX client's own, shared through the database,
wired in bootstrap: a slot taken here is the one the call goes out in), the job
pool, the clock) and the runner of approved batches. Asking is bot/batches/asking.py, deciding
bot/batches/deciding.py; they are put together as `Batches` in bot/batches/workflow.py."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from bot.batches.running import BatchNotifier, BatchRunner
from bot.policy.rules import Policy
from bot.sfox.client import SfoxClient
from bot.sfox.pacing import RateLimit
from bot.store.batches import BatchStore
from bot.store.db import Store

if TYPE_CHECKING:
    from bot.sfox.balances import BalanceCheck

log = logging.getLogger("sfox_bot.batch")


class BatchesBase:
    """The state every use case of a batch works with; each use case is a mixin of it."""

    def __init__(
        self,
        store: Store,
        sfox: SfoxClient,
        notifier: BatchNotifier,
        policy: Policy,
        *,
        limiter: RateLimit,
        submit: Callable[..., Any],
        batch_max: int = 500,
        balance_max: int = 20,
        balances: Callable[[str], BalanceCheck] | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store = store
        self.records = BatchStore(store)
        self.sfox = sfox
        self.notifier = notifier
        self.policy = policy
        self.limiter = limiter
        self.submit = submit
        self.batch_max = batch_max
        self.balance_max = balance_max
        self.balances = balances
        self.now = clock
        # Running an approved batch, its card's progress and its summary (bot/batches/running.py).
        self.runner = BatchRunner(store, sfox, notifier, policy, limiter=limiter, submit=submit, clock=clock)
        # Told when a batch was scheduled, so the schedule loop (bot/runtime/schedule.py) wakes for it.
        self.schedule_noted: Callable[[], None] = lambda: None
