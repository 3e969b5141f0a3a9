"""Deciding: the card's buttons (approve, deny, retry), who may press them, and what a
click on a card the bot lost track of does. A batch's user is never decided here: its batch's
card decides it (bot/batches/deciding.py); the store refuses it too (`SINGLE`)."""

from __future__ import annotations

from datetime import datetime

from bot.policy import rules
from bot.policy.retrying import retry_refusal
from bot.policy.step_up import step_up_refusal
from bot.requests.base import CardRef, ClickResult, WorkflowBase, log, log_fields
from bot.slack import blocks
from bot.slack.blocks import code, mention, run_date
from bot.slack.scheduled import reply_cancelled, reply_scheduled
from bot.store.records import RequestRecord
from bot.store.schema import HELD_STATUSES


class Deciding(WorkflowBase):
    def approve(self, request_id: int, actor: str, step_up: str | None = None) -> ClickResult:
        """`step_up`: the second factor this approval came with ("totp", checked before it was
        journalled), None for a plain click; the policy says whether it may count without one."""
        record = self.store.get(request_id)
        refusal = self._click_refusal(record, actor)
        if refusal:
            return ClickResult(refusal)
        assert record is not None
        own = rules.own_approval_refusal(record, actor, rules.Subject.REQUEST)
        if own is not None:
            return ClickResult(own.text)
        eligible, outside = rules.stages_open_to(self.policy, record, actor)
        if outside is not None:
            return ClickResult(outside.text)
        now = self.now()
        # An approval already recorded is not added twice, but the claim is tried again: the
        # click that recorded it may have stopped before claiming (the bot died in between).
        if actor not in record.approved_by:
            stepless = step_up_refusal(self.policy, step_up)
            if stepless is not None:
                return ClickResult(stepless.text)
            if not self.store.add_approval(request_id, actor, now, eligible, step_up=step_up):
                return ClickResult(self._not_pending(self.store.get(request_id), actor))
        if record.run_at is not None:
            scheduled = self._schedule(request_id, actor, now)
            if scheduled is not None:
                return scheduled
        elif self.store.claim(request_id, now, actor=actor):
            log.info("request claimed", extra=log_fields(record, actor=actor))
            return ClickResult(execute=True)
        current = self.store.get(request_id)
        if actor in record.approved_by:
            return ClickResult(self._not_pending(current, actor))
        if current is not None and current.status == "pending":
            self.store.queue_card(request_id, now)
            return ClickResult(rules.still_needed_for(current))
        # Another approver's click completed the claim a moment earlier.
        if current is not None and current.status == "scheduled":
            return ClickResult(
                f"Your approval was recorded; request #{request_id} is already scheduled for {run_date(current.run_at)}."
            )
        return ClickResult(f"Your approval was recorded; request #{request_id} is already being deactivated.")

    def _schedule(self, request_id: int, actor: str, now: datetime) -> ClickResult | None:
        """pending → scheduled once the quorum is met, for a request to run later: the same
        conditions as the claim, and nothing sent to sFOX. None when it was not this click's."""
        current = self.store.get(request_id)
        if current is None:
            return None
        reply = reply_scheduled(current, rules.counted_approvals(current))
        if not self.store.schedule(request_id, now, reply, actor=actor):
            return None
        log.info("request scheduled", extra=log_fields(current, actor=actor, run_at=str(current.run_at)))
        self.schedule_noted()
        return ClickResult(
            f"Approved: {code(current.sfox_user_id)} will be deactivated {run_date(current.run_at)}, "
            "not before. Until then it can be cancelled on the card."
        )

    def deny(self, request_id: int, actor: str, reason: str | None = None) -> ClickResult:
        record = self.store.get(request_id)
        if record is not None and record.status == "scheduled":
            return self._cancel_scheduled(record, actor, reason)
        refusal = self._click_refusal(record, actor)
        if refusal:
            return ClickResult(refusal)
        assert record is not None
        reply = blocks.reply_denied(record, actor, reason)
        if not self.store.deny(request_id, actor, self.now(), reply, reason):
            return ClickResult(self._not_pending(self.store.get(request_id), actor))
        log.info("request denied", extra=log_fields(record, actor=actor))
        return ClickResult(None)

    def _cancel_scheduled(self, record: RequestRecord, actor: str, reason: str | None) -> ClickResult:
        """The card's Cancel (its Deny) on an approved request before its time: `cancelled`, by
        the requester or anyone who may deny it; at its time the claim has it instead."""
        refusal = rules.decide_refusal(self.policy, actor, rules.Step.DENY, record)
        if refusal is not None:
            return ClickResult(refusal.text)
        reply = reply_cancelled(record, actor, reason)
        if not self.store.cancel_scheduled(record.id, actor, self.now(), reply, reason):
            return ClickResult(self._not_pending(self.store.get(record.id), actor))
        log.info("scheduled request cancelled", extra=log_fields(record, actor=actor))
        return ClickResult(None)

    def retry(self, request_id: int, actor: str, step_up: str | None = None) -> ClickResult:
        """Retry sends the DELETE again, so it is an approval (issue 32): the rules of Approve
        (an approver in a stage the request was asked under, never its requester, the code with
        step-up: `step_up` as for `approve`), and the retry's own (bot/policy/retrying.py): within
        SFOX_RETRY_WINDOW_HOURS of the failure, no newer request for the user. Too late: the card
        stops offering Retry, and its thread says why."""
        record = self.store.get(request_id)
        refusal = self._retry_refusal(record, actor)
        if refusal is not None:
            return ClickResult(refusal)
        assert record is not None
        now = self.now()
        late = self._too_late(record, now)
        if late is not None:
            if self.store.close_retry(request_id, now, late.kind.value, late.text):
                log.info("retry closed", extra=log_fields(record, actor=actor, why=late.kind.value))
            return ClickResult(late.text)
        stepless = step_up_refusal(self.policy, step_up, rules.Step.RETRY)
        if stepless is not None:
            return ClickResult(stepless.text)
        if not self.store.claim_retry(request_id, actor, now, self.policy.retry_window, step_up=step_up):
            # Crossed a line between the check and the claim (a newer request, the window), or
            # another approver's Retry won: say what it is now.
            current = self.store.get(request_id)
            late = self._too_late(current, now) if current is not None and current.retryable else None
            return ClickResult(late.text if late is not None else self._not_pending(current, actor))
        log.info("retry claimed", extra=log_fields(record, actor=actor))
        return ClickResult(execute=True)

    def retry_counts_with_a_code(self, request_id: int, actor: str) -> bool:
        """Whether a Retry by `actor` would go out, given a code: the Retry button's code modal
        opens only then (handlers/approve_modal.py); anything else goes to `retry`, which says why."""
        record = self.store.get(request_id)
        if self._retry_refusal(record, actor) is not None:
            return False
        assert record is not None
        return self._too_late(record, self.now()) is None

    def _retry_refusal(self, record: RequestRecord | None, actor: str) -> str | None:
        """Why `actor` may not retry `record` whatever its time: the rules of an approval."""
        if record is None:
            return "That deactivation request does not exist (any more)."
        if record.batch_id is not None:
            return _batch_user(record)
        refusal = (
            rules.decide_refusal(self.policy, actor, rules.Step.RETRY)
            or rules.own_retry_refusal(record, actor)
            or rules.stages_open_to(self.policy, record, actor)[1]
        )
        if refusal is not None:
            return refusal.text
        if record.status != "failed" or not record.retryable:
            return self._not_pending(record, actor)
        return None

    def _too_late(self, record: RequestRecord, now: datetime) -> rules.Refusal | None:
        newer = self.store.newer_request(record)
        is_open = newer is not None and newer.status in HELD_STATUSES
        return retry_refusal(self.policy, record, now, newer, newer_open=is_open)

    def adopt_card(self, request_id: int, card: CardRef | None) -> bool:
        """A click on a card the bot posted but never recorded (it died in between): make that
        message the request's card, so the outcome reaches its thread and no button stays live.
        Only the bot's own message in the request's channel is taken."""
        record = self.store.get(request_id)
        if (
            record is None
            or record.message_ts is not None
            or card is None
            or not card.ours
            or card.channel_id != record.channel_id
        ):
            return False
        closed = record.status != "pending"
        reply = blocks.reply_card_adopted(record) if closed else None
        if not self.store.adopt_card(request_id, card.ts, self.now(), found_by="click", reply=reply):
            return False
        log.warning("card adopted from a click", extra=log_fields(record, ts=card.ts, status=record.status))
        return True

    def _click_refusal(self, record: RequestRecord | None, actor: str) -> str | None:
        if record is None:
            return "That deactivation request does not exist (any more)."
        if record.batch_id is not None:
            return _batch_user(record)
        refusal = rules.decide_refusal(self.policy, actor, rules.Step.DECIDE, record)
        if refusal is not None:
            return refusal.text
        if record.status == "pending" and self._expire_if_due(record):
            return (
                f"Request #{record.id} has expired; nothing was changed. Start a new request if still needed."
            )
        if record.status != "pending":
            return self._not_pending(record, actor)
        return None

    def _expire_if_due(self, record: RequestRecord) -> bool:
        now = self.now()
        if record.status == "pending" and record.expires_at <= now:
            if self.store.expire(record.id, now):
                self.deliver(record.id)
            return True
        return False

    def _not_pending(self, record: RequestRecord | None, actor: str) -> str:
        if record is None:
            return "That deactivation request does not exist (any more)."
        if record.status == "pending" and actor in record.approved_by:
            return "You have already approved this request."
        if record.status == "pending" and record.expires_at <= self.now():
            return f"Request #{record.id} has expired; nothing was changed."
        states = {
            "denied": f"was denied by {mention(record.denied_by)}",
            "expired": "has expired",
            "executing": "is approved and being deactivated right now",
            "unknown": "is waiting for sFOX to confirm its outcome",
            "succeeded": "is done: the account is deactivated",
            "failed": "has failed; see its thread",
            "blocked": "was closed before any card: the account holds funds",
            "pending": "is still pending",
            "scheduled": f"is approved and scheduled for {run_date(record.run_at)}",
            "cancelled": "was cancelled with its batch before it started"
            if record.batch_id is not None
            else "was cancelled before it ran"
            if record.run_at is not None
            else "was cancelled while its balances were watched",
            "watching": "has no card yet: the bot is watching its balances until they read zero",
        }
        return f"Request #{record.id} {states.get(record.status, record.status)}; your click changed nothing."


def _batch_user(record: RequestRecord) -> str:
    """A click of a single request's button naming a batch's user (issue 32: forged, or a stale
    view): that user is decided on its batch's card and sent at its batch's pace, never alone."""
    return (
        f"Request #{record.id} is one user of batch #{record.batch_id}: it is approved, denied and "
        "run with its batch, on the batch's card. Your click changed nothing."
    )
