"""Running an approved batch: each user claimed and DELETEd once, at the pace of the rate limiter
shared by every replica (bot/sfox/pacing.py), with the card's progress, and a summary at the end.

The process that runs a batch holds a lease on it (`batches.runner_until`) and keeps renewing
it; `WORKERS` threads take the users in turn. For each: a slot of the shared limiter (the sFOX
client's own: the DELETE is sent in that slot, so one call takes one slot), then the
same conditional claim as a single request (`pending → executing`), then `Workflow.execute`,
unchanged (retries only when sFOX cannot have acted, an unknown outcome reconciled by a read).
A 429 closes the limiter for every replica for its Retry-After and the user is claimed again
(sFOX did nothing with it); so is a user a reconcile found never sent (its runner died between
claim and DELETE). If the runner dies, its lease runs out and any replica's sweep resumes the
batch; users whose DELETE may have gone out are reconciled by a read, never resent.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from bot.batches.summary import outcome_csv, summary_text
from bot.crashpoints import crash_point
from bot.policy.rules import Policy
from bot.requests.workflow import Workflow
from bot.sfox.client import SfoxClient
from bot.sfox.errors import CallResult, SfoxUser
from bot.sfox.pacing import RateLimit, Slot
from bot.slack.blocks import escape
from bot.slack.errors import NotifyError
from bot.store.batch_base import IN_FLIGHT, BatchRecord
from bot.store.batches import BatchStore
from bot.store.db import Store
from bot.store.outcomes import CLAIM_AGAIN, Outcome
from bot.store.records import RequestRecord

log = logging.getLogger("sfox_bot.batch")

# Threads sending one batch's DELETEs: enough to keep sFOX's 25 per second going at a few
# hundred ms per call; the shared limiter, not the thread count, sets the pace.
WORKERS = 12
PROGRESS_EVERY_SECONDS = 2.0
TICK_SECONDS = 0.25
# Rounds of one run: a user a dead runner claimed and never sent goes round again; the bound
# keeps a user whose sending keeps being cut off from holding the batch open for ever.
ROUNDS = 3
MAX_RATE_LIMITED_TRIES = 50


class BatchNotifier(Protocol):
    def post_card(self, batch: BatchRecord, counts: dict[str, int], preview: list[Any]) -> str: ...
    def update_card(self, batch: BatchRecord, counts: dict[str, int], preview: list[Any]) -> None: ...
    def reply(self, batch: BatchRecord, text: str) -> None: ...
    def upload(self, batch: BatchRecord, filename: str, content: str, title: str) -> None: ...


@dataclass
class _Run:
    """One process's run of one batch."""

    queue: deque[tuple[int, bool]]
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)


class _PacedDeletes:
    """The sFOX client as a batch's users see it: a 429 is not retried by the client but closes
    the shared limiter for everyone for its Retry-After (the runner then claims the user again);
    the DELETE goes out in the slot its worker took before claiming the user (`paid`)."""

    def __init__(self, sfox: SfoxClient, limiter: RateLimit) -> None:
        self.sfox = sfox
        self.limiter = limiter
        self._slot = threading.local()

    @contextmanager
    def paid(self, slot: Slot) -> Iterator[None]:
        """This thread's next DELETE uses `slot`; released if nothing used it."""
        self._slot.next = slot
        try:
            yield
        finally:
            self._slot.next = None
            slot.release()

    def deactivate(self, user_id: str) -> CallResult:
        slot, self._slot.next = getattr(self._slot, "next", None), None
        return self.sfox.deactivate(user_id, hold=self.limiter, slot=slot)

    def get_user(self, user_id: str) -> SfoxUser:
        return self.sfox.get_user(user_id)


class _NoCard:
    """A batch's user has no card of its own (the store owes it no Slack message)."""

    def __getattr__(self, name: str) -> Any:
        def refuse(*_args: Any, **_kwargs: Any) -> Any:
            raise NotifyError("no_card")

        return refuse


class BatchRunner:
    def __init__(
        self,
        store: Store,
        sfox: SfoxClient,
        notifier: BatchNotifier,
        policy: Policy,
        *,
        limiter: RateLimit,
        submit: Callable[..., Any],
        clock: Callable[[], datetime],
    ) -> None:
        self.store = store
        self.records = BatchStore(store)
        self.notifier = notifier
        self.policy = policy
        self.limiter = limiter
        self.submit = submit
        self.now = clock
        # The workflow each user goes through: its DELETEs paced, no card of its own.
        self.paced = _PacedDeletes(sfox, limiter)
        self.rows = Workflow(store, self.paced, _NoCard(), policy, clock)  # type: ignore[arg-type]
        self.runner_lease = policy.claim_lease
        self._card_lock = threading.Lock()

    # -- running ---------------------------------------------------------------------------------

    def run(self, batch_id: int) -> None:
        """Run an approved batch in this process, unless another process is running it."""
        runner = f"{socket.gethostname()[:30]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        while self.records.take_runner(batch_id, runner, self.now(), self.runner_lease):
            try:
                self._run(batch_id, runner)
            finally:
                self.records.release_runner(batch_id, runner)
            # A Resume clicked while this run was winding down found the batch taken: go on.
            batch = self.records.get(batch_id)
            if batch is None or batch.status != "running" or not self._has_work(batch_id):
                return

    def _has_work(self, batch_id: int) -> bool:
        now = self.now()
        return bool(self.records.row_ids(batch_id, "pending")) or any(
            _claim_again(r, now) for r in self.records.rows(batch_id)
        )

    def _run(self, batch_id: int, runner: str) -> None:
        for _ in range(ROUNDS):
            batch = self.records.get(batch_id)
            if batch is None:
                return
            if batch.status == "running":
                self._run_users(batch_id, runner)
            self._settle(batch_id, runner)
            # Users a dead runner had claimed are settled by a read once their claim runs out
            # (here, or by a sweep meanwhile): those found never sent go round again rather
            # than end the batch failed.
            if not self._left_unsent(batch_id, runner):
                break
        if self.records.finish(batch_id, self.now()):
            log.info("batch finished", extra={"batch_id": batch_id})
        self.refresh_card(batch_id)
        self._summarise(batch_id)

    def _run_users(self, batch_id: int, runner: str) -> None:
        """The users still to claim (and those to claim again), by `WORKERS` threads, while this
        process holds the batch's lease and the batch runs."""
        todo = [(i, False) for i in self.records.row_ids(batch_id, "pending")]
        now = self.now()
        todo += [(r.id, True) for r in self.records.rows(batch_id) if _claim_again(r, now)]
        run = _Run(deque(todo))
        workers = [
            threading.Thread(target=self._work, args=(run,), name=f"sfox-batch-{batch_id}-{n}", daemon=True)
            for n in range(min(WORKERS, len(todo)))
        ]
        for worker in workers:
            worker.start()
        last_card = time.monotonic()
        while any(w.is_alive() for w in workers):
            time.sleep(TICK_SECONDS)
            if not self.records.take_runner(batch_id, runner, self.now(), self.runner_lease):
                run.stop.set()  # lost the lease (the database was out of reach for long)
            current = self.records.get(batch_id)
            if current is None or current.status != "running":
                run.stop.set()
            if time.monotonic() - last_card >= PROGRESS_EVERY_SECONDS:
                last_card = time.monotonic()
                self.refresh_card(batch_id)
        for worker in workers:
            worker.join()

    def _work(self, run: _Run) -> None:
        try:
            self._work_through(run)
        except Exception:
            # The user being worked on keeps its claim: the sweep reconciles it (a read).
            log.exception("batch worker failed; the batch goes on without it")

    def _work_through(self, run: _Run) -> None:
        while not run.stop.is_set():
            with run.lock:
                if not run.queue:
                    return
                request_id, again = run.queue.popleft()
            slot = self.limiter.acquire(stop=run.stop.is_set)
            if slot is None:
                return
            with self.paced.paid(slot):
                # The batch's own claims: only while it runs (a pause stops them in SQL too), and
                # within its users' time, a claim again as much as a first one.
                if again:
                    if not self.store.claim_batch_user_again(request_id, self.now()):
                        continue
                elif not self.store.claim_batch_user(request_id, self.now()):
                    continue  # cancelled, paused, expired or taken meanwhile: it is not ours to send
                crash_point("batch_row_claimed")
                record = self.rows.execute(request_id)
            tries = 1
            while record is not None and _claim_again(record, self.now()) and tries < MAX_RATE_LIMITED_TRIES:
                # sFOX refused it with 429, so did nothing: wait for the limiter (closed for
                # everyone by the 429) and claim the user again, unless the batch was stopped.
                slot = self.limiter.acquire(stop=run.stop.is_set)
                if slot is None:
                    return
                with self.paced.paid(slot):
                    if not self.store.claim_batch_user_again(request_id, self.now()):
                        break
                    tries += 1
                    record = self.rows.execute(request_id)

    def _settle(self, batch_id: int, runner: str) -> None:
        """Wait for this batch's users in flight; reconcile those whose process died (a read,
        never a second DELETE), so the batch can finish."""
        deadline = time.monotonic() + 3 * self.runner_lease.total_seconds()
        while self.records.row_ids(batch_id, *IN_FLIGHT) and time.monotonic() < deadline:
            for record in self.records.stale_rows(batch_id, self.now() - self.policy.claim_lease):
                if self.store.take_over(record, self.now(), kind="reconcile_started"):
                    self.rows.reconcile(self.store.get(record.id) or record)
            self.records.take_runner(batch_id, runner, self.now(), self.runner_lease)
            time.sleep(TICK_SECONDS)

    def _left_unsent(self, batch_id: int, runner: str) -> bool:
        """Whether the batch, still running in this process, has a user a reconcile found never
        sent (its runner died between the claim and the DELETE): one to claim again."""
        batch = self.records.get(batch_id)
        if batch is None or batch.status != "running":
            return False
        now = self.now()
        unsent = any(
            _claim_again(r, now) and r.outcome == Outcome.STOPPED_BEFORE_SENDING
            for r in self.records.rows(batch_id)
        )
        return unsent and self.records.take_runner(batch_id, runner, self.now(), self.runner_lease)

    def sweep(self) -> dict[str, int]:
        """Expire overdue batches; resume approved ones nobody runs (their process died)."""
        expired_ids, orphans = self.records.due(self.now())
        expired = 0
        for batch_id in expired_ids:
            if self.records.expire(batch_id, self.now()):
                expired += 1
                self.refresh_card(batch_id)
        for batch_id in orphans:
            log.warning("batch resumed by the sweep", extra={"batch_id": batch_id})
            self.submit(self.run, batch_id)
        return {"batches_expired": expired, "batches_resumed": len(orphans)}

    # -- the end -----------------------------------------------------------------------------------

    def _summarise(self, batch_id: int) -> None:
        if not self.records.claim_summary(batch_id, self.now()):
            return
        batch = self.records.get(batch_id)
        assert batch is not None
        rows = self.records.rows(batch_id)
        counts = self.records.counts(batch_id)
        text = summary_text(batch, rows, counts)
        try:
            self.notifier.upload(
                batch, f"sfox-batch-{batch_id}.csv", outcome_csv(rows), f"Batch #{batch_id} outcome"
            )
            text += "\nEvery user's outcome is in the CSV file in this thread."
        except NotifyError as exc:
            log.warning("batch CSV not uploaded", extra={"batch_id": batch_id, "slack_error": exc.code})
            text += (
                f"\nThe CSV of every user's outcome could not be uploaded (Slack said `{escape(exc.code, 60)}`); "
                f"`sfox-bot history --batch {batch_id} --format csv` gives the same file."
            )
        try:
            self.notifier.reply(batch, text)
        except NotifyError as exc:
            log.warning("batch summary not posted", extra={"batch_id": batch_id, "slack_error": exc.code})
            self.records.unclaim_summary(batch_id)  # the sweep tries again

    # -- helpers -----------------------------------------------------------------------------------

    def refresh_card(self, batch_id: int) -> None:
        batch = self.records.get(batch_id)
        if batch is None or batch.message_ts is None:
            return
        try:
            with self._card_lock:
                self.notifier.update_card(
                    batch, self.records.counts(batch_id), self.records.preview(batch_id)
                )
        except NotifyError as exc:
            log.warning("batch card not updated", extra={"batch_id": batch_id, "slack_error": exc.code})

    def reply(self, batch_id: int, text: str) -> None:
        batch = self.records.get(batch_id)
        if batch is None or batch.message_ts is None:
            return
        try:
            self.notifier.reply(batch, text)
        except NotifyError as exc:
            log.warning("batch reply not posted", extra={"batch_id": batch_id, "slack_error": exc.code})


def _claim_again(record: RequestRecord, now: datetime) -> bool:
    """Refused with 429 (sFOX did nothing), or found by a reconcile never to have been sent (a
    runner died between the claim and the DELETE: the read saw the account, and the trail has no
    `sfox_call_started`): safe to claim again and send once, while its batch's approval holds (its
    `expires_at`, as for a first claim; past it, the user stays failed and the batch ends). Decided
    by the typed outcome the settling process recorded (bot/store/outcomes.py), never by the
    wording of its error; `claim_batch_user_again` holds the same in SQL."""
    return (
        record.status == "failed"
        and record.retryable
        and record.outcome in CLAIM_AGAIN
        and record.expires_at > now
    )
