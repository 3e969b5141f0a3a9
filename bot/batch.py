"""Batches: many sFOX users under one card and one approval, each DELETE exactly once, at the
pace sFOX allows.

Asking: `/sfox-deactivate batch id,id,… [reason]`. The ids are validated like a single request's
(bot/userid.py); malformed, duplicated and already-open ones are left out and named. Pre-flight
looks every remaining user up (and reads balances for small batches), then one card is posted
with the counts, the first users and the full list in its thread.

Each user is its own `requests` row (`batch_id` set) with its own status and audit trail. The
batch's approval is recorded on every listed user's row, so a user is claimed with the same
conditional `pending → executing` as a single request, only when the batch had enough distinct
approvers other than the requester. Each claimed user is then deactivated by `Workflow.execute`,
unchanged: retries only when sFOX cannot have acted, an unknown outcome reconciled by a read,
never a blind second DELETE.

Pacing: every DELETE first takes a slot of the rate limiter shared by all replicas through the
database (bot/pacing.py). A 429 closes that limiter for everyone until its Retry-After has
passed, and the user is claimed again (`failed` with 429 means sFOX did nothing): it slows the
batch down and fails nobody.

Running: the process that sees the last approval runs the batch, holding a lease on it that it
keeps renewing. If it dies, the lease runs out and any replica's sweep resumes the batch: users
not yet claimed are claimed then; users whose DELETE may have gone out are reconciled by a read
(bot/workflow.py), never resent.
"""

from __future__ import annotations

import csv
import io
import logging
import os
import re
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy.exc import IntegrityError

from bot.batch_store import IN_FLIGHT, BatchRecord, BatchStore
from bot.blocks import code, escape, mention
from bot.crashpoints import crash_point
from bot.pacing import SharedRateLimiter
from bot.sfox import CallResult, SfoxClient, SfoxError, SfoxUser
from bot.store import RequestRecord, Store
from bot.userid import InvalidUserId, parse_user_id
from bot.workflow import ClickResult, NotifyError, Policy, Workflow

if TYPE_CHECKING:
    from bot.balances import BalanceCheck

log = logging.getLogger("sfox_bot.batch")

MAX_REASON = 500
# Threads sending one batch's DELETEs: enough to keep sFOX's 25 per second going at a few
# hundred ms per call; the shared limiter, not the thread count, sets the pace.
WORKERS = 12
LOOKUP_THREADS = 8
PROGRESS_EVERY_SECONDS = 2.0
TICK_SECONDS = 0.25
# An approved batch's users stay claimable this long (a paused batch may wait).
RUN_WITHIN = timedelta(days=7)
# A 429 without Retry-After: sFOX documents a 60 s wait past its limit; start lower.
DEFAULT_HOLD_SECONDS = 10.0
MAX_HOLD_SECONDS = 120.0
MAX_RATE_LIMITED_TRIES = 50
# How long the balance reads of a batch's pre-flight may wait for the route's slot each.
BALANCE_SLOT_WAIT_SECONDS = 60.0
LISTED_FAILURES = 30
# What bot/workflow.py's reconcile records for a claim whose DELETE never went out.
NEVER_SENT = "the bot stopped before sending the DELETE"
USAGE = "Usage: `/sfox-deactivate batch id1,id2,id3 [reason]`, or `/sfox-deactivate batch` for a form"
_SPLIT = re.compile(r"[\s,;]+")


class BatchNotifier(Protocol):
    def post_card(self, batch: BatchRecord, counts: dict[str, int], preview: list[Any]) -> str: ...
    def update_card(self, batch: BatchRecord, counts: dict[str, int], preview: list[Any]) -> None: ...
    def reply(self, batch: BatchRecord, text: str) -> None: ...
    def upload(self, batch: BatchRecord, filename: str, content: str, title: str) -> None: ...


@dataclass(frozen=True)
class BatchAsk:
    """A validated batch request: the ids to look up and what was left out already."""

    requester: str
    channel_id: str
    ids: tuple[str, ...]
    reason: str
    malformed: tuple[tuple[str, str], ...] = ()
    duplicates: tuple[str, ...] = ()


@dataclass
class _Run:
    """One process's run of one batch."""

    queue: deque[tuple[int, bool]]
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)


def split_ids(text: str) -> list[str]:
    """Ids separated by newlines, commas, semicolons or spaces."""
    return [t for t in _SPLIT.split(text or "") if t]


def ids_from_csv(content: str) -> list[str]:
    """The first column of a CSV or text file, its header row skipped when it is not an id."""
    rows = [r for r in csv.reader(io.StringIO(content)) if r and r[0].strip()]
    ids = [r[0].strip() for r in rows]
    if ids:
        try:
            parse_user_id(ids[0])
            if ids[0].lower() in ("id", "user_id", "sfox_user_id", "user", "userid"):
                ids = ids[1:]
        except InvalidUserId:
            ids = ids[1:]
    return ids


class _PacedDeletes:
    """The sFOX client as a batch's users see it: a 429 is not retried by the client but closes
    the shared limiter for everyone for its Retry-After (the runner then claims the user again)."""

    def __init__(self, sfox: SfoxClient, limiter: SharedRateLimiter) -> None:
        self.sfox = sfox
        self.limiter = limiter

    def deactivate(self, user_id: str) -> CallResult:
        try:
            return self.sfox.deactivate(user_id, retry_rate_limited=False)
        except SfoxError as exc:
            if exc.status == 429:
                hold = exc.retry_after if exc.retry_after is not None else DEFAULT_HOLD_SECONDS
                self.limiter.hold(min(max(hold, 0.5), MAX_HOLD_SECONDS))
                log.warning("sFOX rate limited a batch DELETE; every batch waits", extra={"hold": hold})
            raise

    def get_user(self, user_id: str) -> SfoxUser:
        return self.sfox.get_user(user_id)


class _NoCard:
    """A batch's user has no card of its own (the store owes it no Slack message)."""

    def __getattr__(self, name: str) -> Any:
        def refuse(*_args: Any, **_kwargs: Any) -> Any:
            raise NotifyError("no_card")

        return refuse


class Batches:
    def __init__(
        self,
        store: Store,
        sfox: SfoxClient,
        notifier: BatchNotifier,
        policy: Policy,
        *,
        limiter: SharedRateLimiter,
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
        self.rows = Workflow(store, _PacedDeletes(sfox, limiter), _NoCard(), policy, clock)  # type: ignore[arg-type]
        self.runner_lease = policy.claim_lease
        self._card_lock = threading.Lock()

    # -- asking ----------------------------------------------------------------------------------

    def refusal(self, requester: str, channel_id: str) -> str | None:
        if self.policy.allowed_channels and channel_id not in self.policy.allowed_channels:
            places = ", ".join(f"<#{c}>" for c in sorted(self.policy.allowed_channels))
            return f":no_entry: `/sfox-deactivate` can only be used in {places}."
        if requester not in self.policy.approvers:
            return ":no_entry: You are not on the sFOX approver list, so you cannot request deactivations."
        return None

    def check_inline(self, requester: str, channel_id: str, text: str) -> BatchAsk | str:
        """`batch id,id,… [reason]` (the word `batch` already taken off)."""
        token, reason = [*(text or "").split(None, 1), "", ""][:2]
        if not token:
            return f"Which sFOX users? {USAGE}"
        return self.check(requester, channel_id, split_ids(token), reason)

    def check(self, requester: str, channel_id: str, tokens: list[str], reason: str) -> BatchAsk | str:
        """Validate a batch's ids (from the command, the form or its file): a BatchAsk, or why not."""
        refusal = self.refusal(requester, channel_id)
        if refusal:
            return refusal
        reason = " ".join((reason or "").split())
        if len(reason) > MAX_REASON:
            return f":warning: The reason is too long ({len(reason)} characters; at most {MAX_REASON})."
        ids: list[str] = []
        seen: set[str] = set()
        malformed: list[tuple[str, str]] = []
        duplicates: list[str] = []
        for token in tokens:
            try:
                uid = parse_user_id(token)
            except InvalidUserId as exc:
                malformed.append((token, str(exc)))
                continue
            if uid in seen:
                duplicates.append(uid)
                continue
            seen.add(uid)
            ids.append(uid)
        if len(ids) > self.batch_max:
            return (
                f":warning: {len(ids)} users is more than a batch may hold ({self.batch_max}, "
                "SFOX_BATCH_MAX). Nothing was recorded: split the list."
            )
        if not ids:
            return ":warning: No valid sFOX user id in that list; nothing was recorded.\n" + _left_out_text(
                malformed, duplicates, {}, [], [], []
            )
        return BatchAsk(requester, channel_id, tuple(ids), reason, tuple(malformed), tuple(duplicates))

    def open_batch(self, ask: BatchAsk, progress: Callable[[str], None] = lambda _t: None) -> str:
        """Pre-flight (lookups, balances), record the batch and post its card. Returns what to
        tell the requester."""
        open_now = self.records.open_requests_for(ask.ids)
        todo = [uid for uid in ask.ids if uid not in open_now]
        found, unknown, failed = self._look_up(todo, progress)
        skip_balances = self.balances is not None and len(found) > self.balance_max
        funds: list[dict[str, Any]] = []
        users: list[dict[str, Any]] = []
        for n, (uid, target) in enumerate(found):
            check = None
            if self.balances is not None and not skip_balances:
                if n and n % 4 == 0:
                    progress(f"Reading balances on sFOX: {n} of {len(found)} (about 5 reads per 10 s)…")
                check = self.balances(uid)
            if check is not None and check.blocks:
                from bot.blocks import funds_text

                funds.append({"sfox_user_id": uid, "name": target.name, "funds": funds_text(check)})
                continue
            users.append(
                {
                    "sfox_user_id": uid,
                    "target_name": target.name or None,
                    "target_email": target.email,
                    "target_status": target.status,
                    "balances": check.to_json() if check else None,
                }
            )
        left = _left_out_text(ask.malformed, ask.duplicates, open_now, unknown, funds, failed)
        if not users:
            return ":information_source: Nobody in that list can be deactivated; no card was posted.\n" + left
        excluded = {"unknown": unknown, "funds": funds, "lookup_failed": failed}
        for _attempt in range(3):
            try:
                batch_id = self.records.create(
                    requested_by=ask.requester,
                    channel_id=ask.channel_id,
                    reason=ask.reason,
                    required_approvals=self.policy.required_approvals,
                    now=self.now(),
                    ttl=self.policy.ttl,
                    users=users,
                    excluded=excluded,
                    balances_skipped=skip_balances,
                )
                break
            except IntegrityError:
                # Someone opened a request for one of these users meanwhile: leave them out too.
                late = self.records.open_requests_for([u["sfox_user_id"] for u in users])
                open_now.update(late)
                users = [u for u in users if u["sfox_user_id"] not in late]
                left = _left_out_text(ask.malformed, ask.duplicates, open_now, unknown, funds, failed)
                if not users:
                    return (
                        ":information_source: Nobody in that list can be deactivated; no card was posted.\n"
                        + left
                    )
        else:
            return ":warning: The batch could not be recorded (requests kept being opened for its users); try again."
        batch = self.records.get(batch_id)
        assert batch is not None
        try:
            ts = self.notifier.post_card(batch, self.records.counts(batch_id), self._preview(batch_id))
        except NotifyError as exc:
            self.records.card_failed(
                batch_id, self.now(), f"the batch card could not be posted (Slack: {exc.code})"
            )
            return (
                f":warning: I could not post the batch card (Slack said `{escape(exc.code, 60)}`). "
                "The batch was closed, so nothing can be approved by mistake."
            )
        self.records.set_card(batch_id, ts)
        batch = self.records.get(batch_id) or batch
        self._post_list(batch)
        log.info("batch opened", extra={"batch_id": batch_id, "users": len(users), "actor": ask.requester})
        return (
            f":white_check_mark: Batch #{batch_id} posted for approval: {len(users)} users to deactivate.\n"
            + left
        )

    def _look_up(
        self, ids: list[str], progress: Callable[[str], None]
    ) -> tuple[list[tuple[str, SfoxUser]], list[dict[str, Any]], list[dict[str, Any]]]:
        found: dict[str, SfoxUser] = {}
        unknown: list[dict[str, Any]] = []
        failed: list[dict[str, Any]] = []
        done = [0]
        lock = threading.Lock()
        last = [time.monotonic()]

        def one(uid: str) -> None:
            self.limiter.acquire()
            try:
                user = self.sfox.get_user(uid)
            except SfoxError as exc:
                with lock:
                    if exc.not_found:
                        unknown.append({"sfox_user_id": uid})
                    else:
                        failed.append({"sfox_user_id": uid, "error": exc.message})
            else:
                with lock:
                    found[uid] = user
            with lock:
                done[0] += 1
                if time.monotonic() - last[0] >= 3.0:
                    last[0] = time.monotonic()
                    progress(f"Looking the users up on sFOX: {done[0]} of {len(ids)}…")

        with ThreadPoolExecutor(LOOKUP_THREADS, thread_name_prefix="sfox-batch-lookup") as pool:
            list(pool.map(one, ids))
        order = {uid: i for i, uid in enumerate(ids)}
        unknown.sort(key=lambda u: order[u["sfox_user_id"]])
        failed.sort(key=lambda u: order[u["sfox_user_id"]])
        return [(uid, found[uid]) for uid in ids if uid in found], unknown, failed

    def _post_list(self, batch: BatchRecord) -> None:
        """The full list, as CSV, in the card's thread (in pieces under Slack's message size)."""
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["sfox_user_id", "name", "email", "status"])
        for record in self.records.rows(batch.id):
            writer.writerow(
                [
                    record.sfox_user_id,
                    record.target_name or "",
                    record.target_email or "",
                    record.target_status or "",
                ]
            )
        lines = out.getvalue().splitlines()
        chunks: list[list[str]] = [[]]
        for line in lines:
            if sum(len(x) + 1 for x in chunks[-1]) + len(line) > 3500:
                chunks.append([])
            chunks[-1].append(line)
        for n, chunk in enumerate(chunks, 1):
            head = f"Users of batch #{batch.id}" + (f" ({n}/{len(chunks)})" if len(chunks) > 1 else "") + ":"
            body = "\n".join(chunk).replace("```", "'''")
            try:
                self.notifier.reply(batch, f"{head}\n```\n{escape(body, 3900)}\n```")
            except NotifyError as exc:
                log.warning("batch list not posted", extra={"batch_id": batch.id, "slack_error": exc.code})
                return

    # -- deciding (button steps; each returns what to tell the clicker) ------------------------

    def approve(self, batch_id: int, actor: str) -> ClickResult:
        batch, refusal = self._clickable(batch_id, actor, "approve")
        if refusal:
            return ClickResult(refusal)
        assert batch is not None
        if actor == batch.requested_by:
            return ClickResult(
                "You requested this batch, so you cannot approve it: a second admin must approve."
            )
        if actor in batch.approved_by:
            return ClickResult("You have already approved this batch.")
        outcome = self.records.approve(batch_id, actor, self.now(), RUN_WITHIN)
        if outcome == "duplicate":
            return ClickResult("You have already approved this batch.")
        if outcome == "closed":
            return ClickResult(self._state(self.records.get(batch_id)))
        self.refresh_card(batch_id)
        if outcome == "recorded":
            current = self.records.get(batch_id)
            waiting = (current.required_approvals - len(current.approved_by)) if current else 0
            return ClickResult(f"Approval recorded. {waiting} more approval(s) needed.")
        log.info("batch approved", extra={"batch_id": batch_id, "actor": actor})
        self.submit(self.run, batch_id)
        return ClickResult(None)

    def deny(self, batch_id: int, actor: str) -> ClickResult:
        batch, refusal = self._clickable(batch_id, actor, "deny")
        if refusal:
            return ClickResult(refusal)
        if not self.records.deny(batch_id, actor, self.now()):
            return ClickResult(self._state(self.records.get(batch_id)))
        self.refresh_card(batch_id)
        self._reply(
            batch_id,
            f":no_entry_sign: Batch #{batch_id} was denied by {mention(actor)}. Nobody was deactivated.",
        )
        return ClickResult(None)

    def pause(self, batch_id: int, actor: str) -> ClickResult:
        refusal = self._approver_refusal(actor)
        if refusal:
            return ClickResult(refusal)
        if not self.records.set_status(batch_id, "running", "paused", actor):
            return ClickResult(self._state(self.records.get(batch_id)))
        self.refresh_card(batch_id)
        self._reply(
            batch_id, f":double_vertical_bar: Paused by {mention(actor)}; the users already started finish."
        )
        return ClickResult(None)

    def resume(self, batch_id: int, actor: str) -> ClickResult:
        refusal = self._approver_refusal(actor)
        if refusal:
            return ClickResult(refusal)
        if not self.records.set_status(batch_id, "paused", "running", actor):
            return ClickResult(self._state(self.records.get(batch_id)))
        self.refresh_card(batch_id)
        self._reply(batch_id, f":arrow_forward: Resumed by {mention(actor)}.")
        self.submit(self.run, batch_id)
        return ClickResult(None)

    def cancel(self, batch_id: int, actor: str) -> ClickResult:
        refusal = self._approver_refusal(actor)
        if refusal:
            return ClickResult(refusal)
        cancelled = self.records.cancel(batch_id, actor, self.now())
        if cancelled is None:
            return ClickResult(self._state(self.records.get(batch_id)))
        self.refresh_card(batch_id)
        self._reply(
            batch_id,
            f":heavy_multiplication_x: Cancelled by {mention(actor)}: {cancelled} users not yet started "
            "will not be deactivated; the ones already started finish.",
        )
        self.submit(self.run, batch_id)  # finishes the batch once the users in flight are settled
        return ClickResult(None)

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
        return bool(self.records.row_ids(batch_id, "pending")) or any(
            _rate_limited(r) for r in self.records.rows(batch_id)
        )

    def _run(self, batch_id: int, runner: str) -> None:
        batch = self.records.get(batch_id)
        if batch is None:
            return
        if batch.status == "running":
            todo = [(i, False) for i in self.records.row_ids(batch_id, "pending")]
            todo += [(r.id, True) for r in self.records.rows(batch_id) if _rate_limited(r)]
            run = _Run(deque(todo))
            workers = [
                threading.Thread(
                    target=self._work, args=(run,), name=f"sfox-batch-{batch_id}-{n}", daemon=True
                )
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
        self._settle(batch_id, runner)
        if self.records.finish(batch_id, self.now()):
            log.info("batch finished", extra={"batch_id": batch_id})
        self.refresh_card(batch_id)
        self._summarise(batch_id)

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
            if not self.limiter.acquire(stop=run.stop.is_set):
                return
            if again:
                if not self.store.claim_retry(request_id, "batch", self.now()):
                    continue
            elif not self.store.claim(request_id, self.now()):
                continue  # cancelled, expired or taken meanwhile: it is not ours to send
            crash_point("batch_row_claimed")
            record = self.rows.execute(request_id)
            tries = 1
            while record is not None and _rate_limited(record) and tries < MAX_RATE_LIMITED_TRIES:
                # sFOX refused it with 429, so did nothing: wait for the limiter (closed for
                # everyone by the 429) and claim the user again, unless the batch was stopped.
                if not self.limiter.acquire(stop=run.stop.is_set):
                    return
                if not self.store.claim_retry(request_id, "batch", self.now()):
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
                self.notifier.update_card(batch, self.records.counts(batch_id), self._preview(batch_id))
        except NotifyError as exc:
            log.warning("batch card not updated", extra={"batch_id": batch_id, "slack_error": exc.code})

    def _preview(self, batch_id: int) -> list[tuple[str, str | None, str | None]]:
        return self.records.preview(batch_id)

    def _reply(self, batch_id: int, text: str) -> None:
        batch = self.records.get(batch_id)
        if batch is None or batch.message_ts is None:
            return
        try:
            self.notifier.reply(batch, text)
        except NotifyError as exc:
            log.warning("batch reply not posted", extra={"batch_id": batch_id, "slack_error": exc.code})

    def _approver_refusal(self, actor: str) -> str | None:
        if actor not in self.policy.approvers:
            return ":no_entry: You are not on the sFOX approver list, so you cannot change a batch."
        return None

    def _clickable(self, batch_id: int, actor: str, verb: str) -> tuple[BatchRecord | None, str | None]:
        batch = self.records.get(batch_id)
        if batch is None:
            return None, "That batch does not exist (any more)."
        if actor not in self.policy.approvers:
            return batch, f":no_entry: You are not on the sFOX approver list, so you cannot {verb}."
        if batch.status == "pending" and batch.expires_at <= self.now():
            if self.records.expire(batch_id, self.now()):
                self.refresh_card(batch_id)
            return (
                batch,
                f"Batch #{batch_id} has expired; nothing was changed. Start a new batch if still needed.",
            )
        if batch.status != "pending":
            return batch, self._state(batch)
        return batch, None

    def _state(self, batch: BatchRecord | None) -> str:
        if batch is None:
            return "That batch does not exist (any more)."
        states = {
            "pending": "is still waiting for approval",
            "denied": f"was denied by {mention(batch.denied_by)}",
            "expired": "has expired",
            "running": "is approved and running",
            "paused": "is paused",
            "cancelled": "was cancelled",
            "done": "is finished",
            "failed": "was closed: its card could not be posted",
        }
        return f"Batch #{batch.id} {states.get(batch.status, batch.status)}; your click changed nothing."


def _rate_limited(record: RequestRecord) -> bool:
    """Refused with 429 (sFOX did nothing), or found by a reconcile never to have been sent (a
    runner died between the claim and the DELETE: the read saw the account, and the trail has no
    `sfox_call_started`): safe to claim again and send once."""
    if record.status != "failed" or not record.retryable:
        return False
    return record.http_status == 429 or (record.error or "").startswith(NEVER_SENT)


def _left_out_text(
    malformed: Any,
    duplicates: Any,
    open_now: dict[str, int],
    unknown: list[Any],
    funds: list[Any],
    failed: list[Any],
) -> str:
    parts: list[str] = []

    def listed(items: list[str]) -> str:
        shown = ", ".join(items[:15])
        return shown + (f" … and {len(items) - 15} more" if len(items) > 15 else "")

    if malformed:
        parts.append(
            f"• malformed ({len(malformed)}): "
            + listed([f"{code(t, 60)} ({escape(why, 80)})" for t, why in malformed])
        )
    if duplicates:
        parts.append(f"• duplicated ({len(duplicates)}): " + listed([code(d, 60) for d in duplicates]))
    if open_now:
        parts.append(
            f"• already in an open request ({len(open_now)}): "
            + listed([f"{code(u, 60)} (#{rid})" for u, rid in open_now.items()])
        )
    if unknown:
        parts.append(
            f"• unknown on sFOX ({len(unknown)}): " + listed([code(u["sfox_user_id"], 60) for u in unknown])
        )
    if funds:
        parts.append(
            f"• holding funds ({len(funds)}): "
            + listed([f"{code(u['sfox_user_id'], 60)} ({escape(u['funds'], 80)})" for u in funds])
        )
    if failed:
        parts.append(
            f"• could not be looked up ({len(failed)}): "
            + listed([f"{code(u['sfox_user_id'], 60)} ({escape(u['error'], 80)})" for u in failed])
        )
    return ("Left out:\n" + "\n".join(parts)) if parts else "Nobody was left out."


def summary_text(batch: BatchRecord, rows: list[RequestRecord], counts: dict[str, int]) -> str:
    done = counts.get("succeeded", 0)
    failed = [r for r in rows if r.status == "failed"]
    others = {s: n for s, n in counts.items() if s not in ("succeeded", "failed")}
    text = f"*Batch #{batch.id} finished*: {done} deactivated, {len(failed)} failed"
    for status, n in sorted(others.items()):
        text += f", {n} {status}"
    text += f" (of {len(rows)})."
    if failed:
        text += "\nFailed:"
        for record in failed[:LISTED_FAILURES]:
            text += (
                f"\n• {code(record.sfox_user_id, 60)}: {escape(record.error or 'no reason recorded', 200)}"
            )
        if len(failed) > LISTED_FAILURES:
            text += f"\n… and {len(failed) - LISTED_FAILURES} more (see the CSV)."
    return text


OUTCOME_FIELDS = (
    "request_id",
    "sfox_user_id",
    "name",
    "email",
    "status",
    "http_status",
    "error",
    "completed_at",
)


def outcome_csv(rows: list[RequestRecord]) -> str:
    """Every user's outcome: the file uploaded at the end of a batch, and what
    `sfox-bot history --batch ID --format csv` gives too."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(OUTCOME_FIELDS)
    for r in rows:
        writer.writerow(
            [
                r.id,
                _cell(r.sfox_user_id),
                _cell(r.target_name or ""),
                _cell(r.target_email or ""),
                r.status,
                r.http_status or "",
                _cell(r.error or ""),
                r.completed_at.isoformat() if r.completed_at else "",
            ]
        )
    return out.getvalue()


def _cell(text: str) -> str:
    """A spreadsheet must not run a cell as a formula."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def build_batches(runtime: Any, reader: Any) -> Batches:
    """Wire batches into a Runtime (bot/runtime.py): its store, sFOX client, Slack client and
    job pool; the buttons go through the click journal like the card's."""
    from bot.balances import BalanceReader
    from bot.batch_slack import BATCH_APPROVE, BATCH_CANCEL, BATCH_DENY, BATCH_PAUSE, BATCH_RESUME, BatchSlack

    settings = runtime.settings
    check = None
    if reader is not None:
        # The route's own limiter, shared with single requests, but a longer wait for a slot.
        check = BalanceReader(
            runtime.sfox, reader.mode, limiter=reader.limiter, slot_wait_seconds=BALANCE_SLOT_WAIT_SECONDS
        ).check
    batches = Batches(
        runtime.store,
        runtime.sfox,
        BatchSlack(runtime.slack),
        runtime.workflow.policy,
        limiter=SharedRateLimiter(runtime.store, settings.sfox_rate_limit_per_10s),
        submit=runtime.submit,
        batch_max=settings.batch_max,
        balance_max=settings.batch_balance_max,
        balances=check,
        clock=runtime.workflow.now,
    )
    runtime.clicks.add_steps(
        {
            BATCH_APPROVE: batches.approve,
            BATCH_DENY: batches.deny,
            BATCH_PAUSE: batches.pause,
            BATCH_RESUME: batches.resume,
            BATCH_CANCEL: batches.cancel,
        }
    )
    return batches
