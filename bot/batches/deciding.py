"""Deciding a batch: the card's buttons (approve, deny; pause, resume and cancel while it runs),
each a button step that returns what to tell the clicker. The rules are a single request's
(bot/policy/rules.py): people in a stage only, never the requester, every stage met by distinct
people, expiry; an outage of a group is said as such."""

from __future__ import annotations

from datetime import timedelta

from bot.batches.base import BatchesBase, log
from bot.policy import rules
from bot.policy.step_up import step_up_refusal
from bot.requests.base import ClickResult
from bot.slack.blocks import mention, run_date
from bot.store.batch_base import BatchRecord

# An approved batch's users stay claimable this long (a paused batch may wait).
RUN_WITHIN = timedelta(days=7)


class BatchDeciding(BatchesBase):
    """The batch card's buttons."""

    def approve(self, batch_id: int, actor: str, step_up: str | None = None) -> ClickResult:
        """`step_up`: the second factor this approval came with, as for a single request."""
        batch, refusal = self._clickable(batch_id, actor, rules.Step.APPROVE)
        if refusal:
            return ClickResult(refusal)
        assert batch is not None
        own = rules.own_approval_refusal(batch, actor, rules.Subject.BATCH)
        if own is not None:
            return ClickResult(own.text)
        if actor in batch.approved_by:
            return ClickResult("You have already approved this batch.")
        eligible, outside = rules.stages_open_to(self.policy, batch, actor)
        if outside is not None:
            return ClickResult(outside.text)
        stepless = step_up_refusal(self.policy, step_up)
        if stepless is not None:
            return ClickResult(stepless.text)
        outcome = self.records.approve(batch_id, actor, self.now(), RUN_WITHIN, eligible, step_up=step_up)
        if outcome == "duplicate":
            return ClickResult("You have already approved this batch.")
        if outcome == "closed":
            return ClickResult(self._state(self.records.get(batch_id)))
        self.runner.refresh_card(batch_id)
        if outcome == "recorded":
            current = self.records.get(batch_id)
            return ClickResult(rules.still_needed_for(current))
        if outcome == "scheduled":
            current = self.records.get(batch_id)
            assert current is not None
            log.info("batch scheduled", extra={"batch_id": batch_id, "actor": actor})
            self.runner.reply(
                batch_id,
                f":calendar: Batch #{batch_id} is approved and scheduled: its users will be deactivated "
                f"{run_date(current.run_at)}, not before; nothing is sent to sFOX until then. An approver can "
                "still cancel it on the card.",
            )
            self.schedule_noted()
            return ClickResult(f"Approved: batch #{batch_id} runs {run_date(current.run_at)}, not before.")
        log.info("batch approved", extra={"batch_id": batch_id, "actor": actor})
        self.submit(self.runner.run, batch_id)
        return ClickResult(None)

    def deny(self, batch_id: int, actor: str) -> ClickResult:
        batch, refusal = self._clickable(batch_id, actor, rules.Step.DENY)
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
        refusal = rules.decide_refusal(self.policy, actor, rules.Step.CHANGE_BATCH)
        if refusal is not None:
            return ClickResult(refusal.text)
        if not self.records.set_status(batch_id, "running", "paused", actor):
            return ClickResult(self._state(self.records.get(batch_id)))
        self.runner.refresh_card(batch_id)
        self.runner.reply(
            batch_id, f":double_vertical_bar: Paused by {mention(actor)}; the users already started finish."
        )
        return ClickResult(None)

    def resume(self, batch_id: int, actor: str) -> ClickResult:
        refusal = rules.decide_refusal(self.policy, actor, rules.Step.CHANGE_BATCH)
        if refusal is not None:
            return ClickResult(refusal.text)
        if not self.records.set_status(batch_id, "paused", "running", actor):
            return ClickResult(self._state(self.records.get(batch_id)))
        self.runner.refresh_card(batch_id)
        self.runner.reply(batch_id, f":arrow_forward: Resumed by {mention(actor)}.")
        self.submit(self.runner.run, batch_id)
        return ClickResult(None)

    def cancel(self, batch_id: int, actor: str) -> ClickResult:
        refusal = rules.decide_refusal(self.policy, actor, rules.Step.CHANGE_BATCH)
        if refusal is not None:
            return ClickResult(refusal.text)
        batch = self.records.get(batch_id)
        if batch is not None and batch.status == "scheduled":
            return self._cancel_scheduled(batch, actor)
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

    def _cancel_scheduled(self, batch: BatchRecord, actor: str) -> ClickResult:
        """Cancel before its time: every user `cancelled`, nothing sent; the runner posts the summary."""
        cancelled = self.records.cancel_scheduled(batch.id, actor, self.now())
        if cancelled is None:
            return ClickResult(self._state(self.records.get(batch.id)))
        self.runner.refresh_card(batch.id)
        self.runner.reply(
            batch.id,
            f":heavy_multiplication_x: Cancelled by {mention(actor)} before its time "
            f"({run_date(batch.run_at)}): none of its {cancelled} users was deactivated.",
        )
        self.submit(self.runner.run, batch.id)  # closes it (done) and posts the summary
        return ClickResult(None)

    def _clickable(
        self, batch_id: int, actor: str, step: rules.Step
    ) -> tuple[BatchRecord | None, str | None]:
        """The batch, and why `actor` cannot take `step` on it now (None: they can)."""
        batch = self.records.get(batch_id)
        if batch is None:
            return None, "That batch does not exist (any more)."
        refusal = rules.decide_refusal(self.policy, actor, step, batch)
        if refusal is not None:
            return batch, refusal.text
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
            "scheduled": f"is approved and scheduled for {run_date(batch.run_at)}",
            "paused": "is paused",
            "cancelled": "was cancelled",
            "done": "is finished",
            "failed": "was closed: its card could not be posted",
        }
        return f"Batch #{batch.id} {states.get(batch.status, batch.status)}; your click changed nothing."
