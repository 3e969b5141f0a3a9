"""Asking for a batch: `/sfox-deactivate batch id,id,… [reason]` or the form. The ids are
validated like a single request's (bot/sfox/userid.py) under the same rules (bot/policy/rules.py);
malformed, duplicated and already-open ones are left out and named. Pre-flight looks every
remaining user up (and reads balances for small batches), then one card is posted with the
counts, the first users and the full list in its thread."""

from __future__ import annotations

import csv
import io
import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from bot.batches.base import BatchesBase, log
from bot.policy import reasons, rules, when
from bot.policy.rules import Refusal
from bot.policy.stages import dump_stages
from bot.sfox.errors import SfoxError, SfoxUser
from bot.sfox.userid import InvalidUserId, parse_user_id
from bot.slack.blocks import code, escape, funds_text
from bot.slack.errors import NotifyError
from bot.store.batch_base import BatchRecord
from bot.store.errors import BatchUsersOpen

LOOKUP_THREADS = 8
USAGE = (
    "Usage: `/sfox-deactivate batch id1,id2,id3 [reason] [--at &lt;when&gt;]`, "
    "or `/sfox-deactivate batch` for a form"
)
_SPLIT = re.compile(r"[\s,;]+")
NOBODY = ":information_source: Nobody in that list can be deactivated; no card was posted.\n"


@dataclass(frozen=True)
class BatchAsk:
    """A validated batch request: the ids to look up and what was left out already."""

    requester: str
    channel_id: str
    ids: tuple[str, ...]
    reason: str
    malformed: tuple[tuple[str, str], ...] = ()
    duplicates: tuple[str, ...] = ()
    # Its row in the command journal (bot/runtime/commands.py), recorded with the batch it creates.
    command_id: int | None = None
    # `--at <when>` (bot/policy/when.py): its runner starts at this instant (UTC), never before.
    run_at: datetime | None = None


def posted_answer(batch_id: int, users: int) -> str:
    """What the requester is told once the batch's card is up."""
    return f":white_check_mark: Batch #{batch_id} posted for approval: {users} users to deactivate.\n"


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


class BatchAsking(BatchesBase):
    """Asking: validation, what is left out, pre-flight, the card."""

    def refusal(self, requester: str, channel_id: str) -> str | None:
        """Why `requester` may not ask for a batch here (the same rule as a single request's, an
        approver group outage said as such), or None."""
        refusal = rules.ask_refusal(self.policy, requester, channel_id)
        return refusal.text if refusal is not None else None

    def check_inline(self, requester: str, channel_id: str, text: str) -> BatchAsk | str:
        """`batch id,id,… [reason]` (the word `batch` already taken off)."""
        token, reason = [*(text or "").split(None, 1), "", ""][:2]
        if not token:
            return f"Which sFOX users? {USAGE}"
        options = when.split_options(reason, self.now(), self.policy.schedule_horizon)
        if isinstance(options, Refusal):
            return options.text
        if options.when_empty:
            return (
                f":warning: {code(when.WHEN_EMPTY)} is for a single request: a batch leaves out the users "
                f"holding funds and deactivates the rest. Ask for each funded user on its own with "
                f"{code(when.WHEN_EMPTY)}, or give the batch a time with {code(when.AT + ' <when>')}. "
                "Nothing was posted."
            )
        ask = self.check(requester, channel_id, split_ids(token), options.reason)
        return replace(ask, run_at=options.run_at) if isinstance(ask, BatchAsk) else ask

    def check(self, requester: str, channel_id: str, tokens: list[str], reason: str) -> BatchAsk | str:
        """Validate a batch's ids (from the command, the form or its file): a BatchAsk, or why not."""
        refusal = self.refusal(requester, channel_id)
        if refusal:
            return refusal
        reason = reasons.clean_reason(reason)
        too_long = reasons.reason_refusal(reason)
        if too_long is not None:
            return too_long.text
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
            return NOBODY + left
        excluded = {"unknown": unknown, "funds": funds, "lookup_failed": failed}
        for _attempt in range(3):
            try:
                batch_id = self.records.create(
                    requested_by=ask.requester,
                    channel_id=ask.channel_id,
                    reason=ask.reason,
                    required_approvals=self.policy.total_approvals,
                    stages=dump_stages(self.policy.effective_stages()),
                    now=self.now(),
                    ttl=self.policy.ttl,
                    users=users,
                    excluded=excluded,
                    balances_skipped=skip_balances,
                    command_id=ask.command_id,
                    run_at=ask.run_at,
                )
                break
            except BatchUsersOpen:
                # Someone opened a request for one of these users meanwhile: leave them out too.
                late = self.records.open_requests_for([u["sfox_user_id"] for u in users])
                open_now.update(late)
                users = [u for u in users if u["sfox_user_id"] not in late]
                left = _left_out_text(ask.malformed, ask.duplicates, open_now, unknown, funds, failed)
                if not users:
                    return NOBODY + left
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
        return posted_answer(batch_id, len(users)) + left

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
            slot = self.limiter.acquire()  # the lookup goes out in it: one slot for one call
            try:
                user = self.sfox.get_user(uid, slot=slot)
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
