"""Watching (issue 19): a request whose target still holds funds waits, as `watching`, for its
balances to read zero, instead of being closed as `blocked` and asked again by hand days later.

A watch starts from the command (`--when-empty`) or from a blocked request's *Watch* button; its
requester, or any approver, may stop it (`rules.watch_refusal`). Every `watch_interval` one
replica takes the due read (a compare-and-set on `watch_next_at`, bot/store/watching.py) and
reads the balances through the limiter every replica shares (bot/sfox/pacing.py, the balance
route's window). When every balance reads zero the request becomes `pending`, its TTL starting
then, and gets the normal card; the requester's DM links it. At `expires_at` (the watch's
deadline, `watch_span` after it began) it expires. Reads are not audited; the start, the card,
the expiry and a stop are.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from bot.policy import rules
from bot.requests.base import ClickResult, WorkflowBase, log, log_fields
from bot.sfox.balances import BalanceCheck, describe_funds
from bot.slack import watch_blocks
from bot.slack.blocks import code, mention
from bot.store.errors import AlreadyOpen
from bot.store.records import RequestRecord
from bot.store.schema import WATCHING


class Watching(WorkflowBase):
    def open_watch(self, request: dict[str, object], funds: str) -> str:
        """Record the request as a watch instead of blocked; the requester's answer."""
        now = request["now"]
        assert isinstance(now, datetime)
        until = now + self.watch_span
        try:
            record = self.store.start_watch(
                until=until, first_read_at=min(now + self.watch_interval, until), **request
            )
        except AlreadyOpen as exc:
            existing = self.store.get(exc.request_id) if exc.request_id else None
            who = f" (#{existing.id}, {existing.status})" if existing else ""
            return f":information_source: A request or watch for this user is already open{who}."
        log.info("watch started", extra=log_fields(record, actor=record.requested_by))
        self.retry_noted()  # its DM (Stop watching) is owed now
        return watch_blocks.watching_answer(record, funds, self.watch_interval)

    def _watch_clicked(self, request_id: int, actor: str) -> RequestRecord | ClickResult:
        """The request a Watch or Stop watching button names, or the answer when there is none or
        the person may not press it (the requester or any approver may)."""
        record = self.store.get(request_id)
        if record is None:
            return ClickResult("That request does not exist (any more).")
        refusal = rules.watch_refusal(self.policy, record, actor)
        return ClickResult(refusal.text) if refusal is not None else record

    def start_watching(self, request_id: int, actor: str) -> ClickResult:
        """The *Watch* button on a blocked request's DM: blocked → watching, once."""
        record = self._watch_clicked(request_id, actor)
        if isinstance(record, ClickResult):
            return record
        if self.watch_reader is None:
            return ClickResult(
                ":warning: Balances are not read (SFOX_BALANCE_CHECK is off): nothing to watch."
            )
        now = self.now()
        until = now + self.watch_span
        try:
            started = self.store.watch_blocked(
                request_id, actor, now, until, min(now + self.watch_interval, until), _read_at(record)
            )
        except AlreadyOpen as exc:
            return ClickResult(
                f":information_source: {code(record.sfox_user_id)} already has an open request or watch "
                f"(#{exc.request_id}); nothing was changed."
            )
        if not started:
            return ClickResult(self._watch_state(self.store.get(request_id)))
        log.info("watch started from a blocked request", extra=log_fields(record, actor=actor))
        self.retry_noted()
        current = self.store.get(request_id) or record
        check = BalanceCheck.from_json(current.balances)
        funds = describe_funds(check.funds) if check else "see the DM"
        return ClickResult(watch_blocks.watching_answer(current, funds, self.watch_interval))

    def stop_watching(self, request_id: int, actor: str) -> ClickResult:
        """*Stop watching*: watching → cancelled, once; the requester or any approver."""
        record = self._watch_clicked(request_id, actor)
        if isinstance(record, ClickResult):
            return record
        if not self.store.cancel_watch(request_id, actor, self.now()):
            return ClickResult(self._watch_state(self.store.get(request_id)))
        log.info("watch stopped", extra=log_fields(record, actor=actor))
        self.retry_noted()
        return ClickResult(
            f"Stopped watching {code(record.sfox_user_id)} (request #{record.id}); no card will be posted."
        )

    def watch_due(self, stop: Callable[[], bool] = lambda: False) -> int:
        """Take and carry out the watches' due reads (and deadlines), as many as are due now.
        Returns how many this process took."""
        taken = 0
        while not stop():
            due = self.store.due_watches(self.now())
            if not due:
                return taken
            progress = False
            for request_id, due_at in due:
                if stop():
                    break
                if self._watch_one(request_id, due_at):
                    taken += 1
                    progress = True
            if not progress:
                return taken
        return taken

    def _watch_one(self, request_id: int, due_at: object) -> bool:
        record = self.store.get(request_id)
        if record is None or record.status != WATCHING or record.watch_next_at != due_at:
            return False
        now = self.now()
        if record.expires_at <= now:
            error = watch_blocks.expired_error(self.watch_span)
            if self.store.expire_watch(request_id, now, error):
                log.info("watch expired", extra=log_fields(record))
                self.deliver(request_id)
                return True
            return False
        if not self.store.take_read(
            request_id, record.watch_next_at, min(now + self.watch_interval, record.expires_at)
        ):
            return False  # another replica took this read
        if self.watch_reader is None:
            return True
        check = self.watch_reader(record.sfox_user_id)
        if check.balances is None or check.funds:
            self.store.note_read(request_id, self.now(), check.to_json())
            return True
        self._cleared(record, check)
        return True

    def _cleared(self, record: RequestRecord, check: BalanceCheck) -> None:
        """Every balance read zero: the request becomes pending (its TTL from now) and gets its card."""
        now = self.now()
        if not self.store.watch_cleared(record.id, now, self.policy.ttl, check.to_json()):
            return
        log.info("watch cleared: posting the card", extra=log_fields(record))
        pending = self.store.get(record.id)
        if pending is not None:
            self.post_new_card(pending)
        self.deliver(record.id)

    def _watch_state(self, record: RequestRecord | None) -> str:
        if record is None:
            return "That request does not exist (any more)."
        if record.status == WATCHING:
            return f"Request #{record.id} is already being watched; nothing was changed."
        if record.status == "cancelled":
            return f"Watching request #{record.id} was already stopped by {mention(record.denied_by)}."
        if record.status == "pending":
            return (
                f"Request #{record.id} is no longer watched: its balances read zero and its card is posted "
                "(Deny on the card cancels it)."
            )
        return f"Request #{record.id} is {record.status}, not watched; nothing was changed."


def _read_at(record: RequestRecord) -> datetime | None:
    """When a blocked request's balances were read (the watch's first read)."""
    check = BalanceCheck.from_json(record.balances)
    return check.checked_at if check else None
