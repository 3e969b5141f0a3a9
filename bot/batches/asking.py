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

Running (bot/batch_run.py): the process that sees the last approval runs the batch at the pace
of the rate limiter shared by all replicas (bot/pacing.py); a 429 slows every batch down and
fails nobody; if that process dies, any replica's sweep resumes the batch, and users whose
DELETE may have gone out are reconciled by a read, never resent.

This module: asking (validation, what is left out, pre-flight, the card) and deciding (approve,
deny, pause, resume, cancel), each a button step that returns what to tell the clicker.
"""

from __future__ import annotations

import csv
import io
import logging
import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import IntegrityError

from bot.batches.running import BatchNotifier, BatchRunner
from bot.requests.base import ClickResult, NotifyError, Policy
from bot.sfox.client import SfoxClient, SfoxError, SfoxUser
from bot.sfox.pacing import SharedRateLimiter
from bot.sfox.userid import InvalidUserId, parse_user_id
from bot.slack.blocks import code, escape, mention
from bot.store.batches import BatchRecord, BatchStore
from bot.store.db import Store

if TYPE_CHECKING:
    from bot.sfox.balances import BalanceCheck

log = logging.getLogger("sfox_bot.batch")

MAX_REASON = 500
LOOKUP_THREADS = 8
# An approved batch's users stay claimable this long (a paused batch may wait).
RUN_WITHIN = timedelta(days=7)
# How long the balance reads of a batch's pre-flight may wait for the route's slot each.
BALANCE_SLOT_WAIT_SECONDS = 60.0
USAGE = "Usage: `/sfox-deactivate batch id1,id2,id3 [reason]`, or `/sfox-deactivate batch` for a form"
_SPLIT = re.compile(r"[\s,;]+")


@dataclass(frozen=True)
class BatchAsk:
    """A validated batch request: the ids to look up and what was left out already."""

    requester: str
    channel_id: str
    ids: tuple[str, ...]
    reason: str
    malformed: tuple[tuple[str, str], ...] = ()
    duplicates: tuple[str, ...] = ()


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
        # Running an approved batch, its card's progress and its summary (bot/batch_run.py).
        self.runner = BatchRunner(store, sfox, notifier, policy, limiter=limiter, submit=submit, clock=clock)

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
                from bot.slack.blocks import funds_text

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
            ts = self.notifier.post_card(batch, self.records.counts(batch_id), self.records.preview(batch_id))
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
        self.runner.refresh_card(batch_id)
        if outcome == "recorded":
            current = self.records.get(batch_id)
            waiting = (current.required_approvals - len(current.approved_by)) if current else 0
            return ClickResult(f"Approval recorded. {waiting} more approval(s) needed.")
        log.info("batch approved", extra={"batch_id": batch_id, "actor": actor})
        self.submit(self.runner.run, batch_id)
        return ClickResult(None)

    def deny(self, batch_id: int, actor: str) -> ClickResult:
        batch, refusal = self._clickable(batch_id, actor, "deny")
        if refusal:
            return ClickResult(refusal)
        if not self.records.deny(batch_id, actor, self.now()):
            return ClickResult(self._state(self.records.get(batch_id)))
        self.runner.refresh_card(batch_id)
        self.runner.reply(
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
        self.runner.refresh_card(batch_id)
        self.runner.reply(
            batch_id, f":double_vertical_bar: Paused by {mention(actor)}; the users already started finish."
        )
        return ClickResult(None)

    def resume(self, batch_id: int, actor: str) -> ClickResult:
        refusal = self._approver_refusal(actor)
        if refusal:
            return ClickResult(refusal)
        if not self.records.set_status(batch_id, "paused", "running", actor):
            return ClickResult(self._state(self.records.get(batch_id)))
        self.runner.refresh_card(batch_id)
        self.runner.reply(batch_id, f":arrow_forward: Resumed by {mention(actor)}.")
        self.submit(self.runner.run, batch_id)
        return ClickResult(None)

    def cancel(self, batch_id: int, actor: str) -> ClickResult:
        refusal = self._approver_refusal(actor)
        if refusal:
            return ClickResult(refusal)
        cancelled = self.records.cancel(batch_id, actor, self.now())
        if cancelled is None:
            return ClickResult(self._state(self.records.get(batch_id)))
        self.runner.refresh_card(batch_id)
        self.runner.reply(
            batch_id,
            f":heavy_multiplication_x: Cancelled by {mention(actor)}: {cancelled} users not yet started "
            "will not be deactivated; the ones already started finish.",
        )
        self.submit(self.runner.run, batch_id)  # finishes the batch once the users in flight are settled
        return ClickResult(None)

    # -- running (bot/batch_run.py) --------------------------------------------------------------

    def run(self, batch_id: int) -> None:
        self.runner.run(batch_id)

    def sweep(self) -> dict[str, int]:
        """Expire overdue batches; resume approved ones nobody runs (their process died)."""
        return self.runner.sweep()

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
                self.runner.refresh_card(batch_id)
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


def build_batches(runtime: Any, reader: Any) -> Batches:
    """Wire batches into a Runtime (bot/runtime.py): its store, sFOX client, Slack client and
    job pool; the buttons go through the click journal like the card's."""
    from bot.sfox.balances import BalanceReader
    from bot.slack.batch_card import (
        BATCH_APPROVE,
        BATCH_CANCEL,
        BATCH_DENY,
        BATCH_PAUSE,
        BATCH_RESUME,
        BatchSlack,
    )

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
