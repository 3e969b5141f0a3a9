"""Executing and reconciling: the one DELETE of a claim, the read that settles an outcome
nobody knows, and the sweep that finishes what a stopped process left."""

from __future__ import annotations

import time
from datetime import datetime

from bot.crashpoints import crash_point
from bot.requests.base import CARDLESS_GRACE, RETRYABLE_STATUSES, WorkflowBase, log, log_fields, ms_since
from bot.sfox.errors import SfoxError, clip
from bot.slack import blocks
from bot.slack.errors import NotifyError
from bot.store.outcomes import Outcome
from bot.store.records import Event, RequestRecord


class Executing(WorkflowBase):
    def execute(self, request_id: int) -> RequestRecord | None:
        """Send the one DELETE for a request this process has claimed, and record the outcome."""
        record = self.store.get(request_id)
        if record is None or record.status != "executing":
            return record
        crash_point("claimed")
        # Restart the lease at the moment the call goes out, compare-and-set: if a sweep already
        # took this claim over (it looked abandoned), we must not send anything.
        if not self.store.take_over(record, self.now(), kind="sfox_call_started"):
            return self.store.get(request_id)
        started = time.monotonic()
        try:
            result = self.sfox.deactivate(record.sfox_user_id)
        except SfoxError as exc:
            crash_point("delete_answered")
            ms = ms_since(started)
            if exc.not_found and record.attempts > 1 and not exc.unknown:
                # A retry that finds the account gone may be finding an earlier attempt's work.
                exc.unknown = True
                exc.message = f"{exc.message} on a retry; an earlier attempt may have done it"
            event = Event(
                "sfox_delete",
                http_status=exc.status,
                duration_ms=ms,
                detail={"attempts": exc.attempts, "error": exc.message, "unknown": exc.unknown},
            )
            if exc.unknown:
                self._finish(
                    record,
                    "unknown",
                    exc.status,
                    exc.message,
                    False,
                    Outcome.UNKNOWN,
                    event,
                    blocks.reply_unknown(record, exc.message),
                )
                # Reconcile at once, unless a sweep got there first (compare-and-set on the claim).
                current = self.store.get(request_id)
                if (
                    current
                    and current.status == "unknown"
                    and self.store.take_over(current, self.now(), kind="reconcile_started")
                ):
                    return self.reconcile(self.store.get(request_id) or current)
                return self.store.get(request_id)
            retryable = exc.status is None or exc.status in RETRYABLE_STATUSES
            self._finish(
                record,
                "failed",
                exc.status,
                exc.message,
                retryable,
                _refusal(exc),
                event,
                blocks.reply_failed(record, exc.status, exc.message, retryable),
            )
        else:
            crash_point("delete_answered")
            event = Event(
                "sfox_delete",
                http_status=result.status,
                duration_ms=ms_since(started),
                detail={"attempts": result.attempts},
            )
            self._finish(
                record,
                "succeeded",
                result.status,
                None,
                False,
                Outcome.DEACTIVATED,
                event,
                blocks.reply_succeeded(record),
            )
        return self.store.get(request_id)

    def reconcile(self, record: RequestRecord) -> RequestRecord | None:
        """Settle an outcome that is not known (no answer to the DELETE, or a process died while
        waiting for it) by reading the account: gone means deactivated; present means not."""
        started = time.monotonic()
        try:
            self.sfox.get_user(record.sfox_user_id)
        except SfoxError as exc:
            if exc.not_found:
                crash_point("reconcile_read")
            else:
                self.store.record_event(
                    record.id,
                    self.now(),
                    Event(
                        "reconcile_failed",
                        http_status=exc.status,
                        duration_ms=ms_since(started),
                        detail=exc.message,
                    ),
                )
                if record.status == "executing":
                    self._finish(
                        record,
                        "unknown",
                        None,
                        f"the bot stopped before sFOX answered; {exc.message}",
                        False,
                        Outcome.UNKNOWN,
                        Event("outcome_unknown"),
                        blocks.reply_unknown(record, exc.message),
                    )
                return self.store.get(record.id)
            self._finish(
                record,
                "succeeded",
                record.http_status,
                None,
                False,
                Outcome.CONFIRMED_GONE,
                Event(
                    "reconciled",
                    http_status=404,
                    duration_ms=ms_since(started),
                    detail="sFOX no longer knows the account",
                ),
                blocks.reply_succeeded(record, confirmed_by_lookup=True),
                from_statuses=("executing", "unknown"),
            )
        else:
            crash_point("reconcile_read")
            never_sent = record.status == "executing" and not self._delete_started(record.id)
            if never_sent and record.run_at is not None and record.batch_id is None:
                return self._run_late(record)
            self._finish(
                record,
                "failed",
                record.http_status,
                "the bot stopped before sending the DELETE; nothing was sent to sFOX"
                if never_sent
                else record.error or "the deactivation did not happen (sFOX still lists the account)",
                True,
                Outcome.STOPPED_BEFORE_SENDING if never_sent else Outcome.STILL_PRESENT,
                Event(
                    "reconciled",
                    http_status=200,
                    duration_ms=ms_since(started),
                    detail="sFOX still lists the account",
                ),
                blocks.reply_never_sent(record) if never_sent else blocks.reply_still_present(record),
                from_statuses=("executing", "unknown"),
            )
        return self.store.get(record.id)

    def _run_late(self, record: RequestRecord) -> RequestRecord | None:
        """A scheduled request claimed at its time whose process stopped before the DELETE: back
        to `scheduled` (its time has passed, so it is claimed again at once), late rather than
        never; the claim again says how late in its thread (bot/requests/scheduling.py)."""
        if self.store.requeue_scheduled(record.id, self.now()):
            log.warning("scheduled request stopped before its DELETE: run again", extra=log_fields(record))
            self.schedule_noted()
        return self.store.get(record.id)

    def _delete_started(self, request_id: int) -> bool:
        """Whether the current claim got as far as sending its DELETE: `execute` records that
        (`sfox_call_started`) just before the call, so without it nothing was sent."""
        started = False
        for event in self.store.events_for(request_id):
            if event.kind in ("claimed", "retry_claimed"):
                started = False
            elif event.kind == "sfox_call_started":
                started = True
        return started

    def sweep(self) -> dict[str, int]:
        """Expire overdue requests, reconcile abandoned or unknown outcomes, resend owed messages.
        Safe to run in every replica at once: each step is a conditional update."""
        now = self.now()
        expired = sum(
            1 for request_id in self.store.due_for_expiry(now) if self.store.expire(request_id, now)
        )
        adopted = abandoned = 0
        for request_id in self.store.cardless_pending(now - CARDLESS_GRACE):
            if self._find_lost_card(request_id, now):
                adopted += 1
            elif self.store.abandon(
                request_id,
                now,
                "the bot stopped before it recorded the approval card, so nobody could approve it",
            ):
                abandoned += 1
        reconciled = 0
        for record in self.store.stale_claims(now - self.policy.claim_lease):
            if self.store.take_over(record, self.now(), kind="reconcile_started"):
                reconciled += 1
                self.reconcile(self.store.get(record.id) or record)
        delivered = self.deliver()
        return {
            "expired": expired,
            "reconciled": reconciled,
            "abandoned": abandoned,
            "adopted": adopted,
            "delivered": delivered,
        }

    def _find_lost_card(self, request_id: int, now: datetime) -> bool:
        """A request with no card recorded: if the bot did post one (and died before noting it),
        take it as the request's card, which stays valid until the request expires."""
        record = self.store.get(request_id)
        if record is None or record.message_ts is not None:
            return False
        try:
            ts = self.notifier.find_card(record)
        except NotifyError as exc:
            log.warning("could not look for a lost card", extra=log_fields(record, slack_error=exc.code))
            return False
        if ts is None or not self.store.adopt_card(request_id, ts, now, found_by="sweep", reply=None):
            return False
        log.warning("card adopted by the sweep", extra=log_fields(record, ts=ts))
        return True

    def _finish(
        self,
        record: RequestRecord,
        status: str,
        http_status: int | None,
        error: str | None,
        retryable: bool,
        outcome: Outcome,
        event: Event,
        reply: str,
        from_statuses: tuple[str, ...] = ("executing",),
        balances: str | None = None,
    ) -> None:
        error = clip(error) if error else None
        done = self.store.finish(
            record.id,
            self.now(),
            status=status,
            http_status=http_status,
            error=error,
            retryable=retryable,
            outcome=outcome,
            event=event,
            reply=reply,
            from_statuses=from_statuses,
            balances=balances,
        )
        crash_point("outcome_recorded")
        if not done:
            # Someone else settled it first; keep what we saw in the trail all the same.
            self.store.record_event(
                record.id,
                self.now(),
                Event(
                    "late_outcome",
                    http_status=http_status,
                    duration_ms=event.duration_ms,
                    detail={"would_be": status, "outcome": outcome.value, "error": error},
                ),
            )
        log.info("request %s", status, extra=log_fields(record, status=status, http_status=http_status))
        self.deliver(record.id)


def _refusal(exc: SfoxError) -> Outcome:
    """The kind of a DELETE that failed with sFOX certainly having done nothing: rate limited
    (429, sent again by a batch once the limit reopens), not sent at all (no connection, or no
    slot of the bot's own limit: no status), or refused with an answer."""
    if exc.status == 429:
        return Outcome.RATE_LIMITED
    if exc.status is None:
        return Outcome.NOT_SENT
    return Outcome.REFUSED
