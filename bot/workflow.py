"""The deactivation workflow: who may do what, in which state, and what gets recorded.

It is handed a Store, an sFOX client and a Notifier (the Slack side), so it never sees a Slack
payload and a test can give it real fakes. Each public method is one user-visible step and returns
what to tell the person who acted (an ephemeral answer), or None when the card says it all.

The rules that make deactivation safe live here:
- only approvers may request, approve or deny; the requester never approves their own request;
- the sFOX DELETE is sent only by the caller that won the conditional claim in the store;
- an outcome that cannot be known is reconciled with a read, never with a second DELETE.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Container
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from bot import blocks
from bot.blocks import code, escape, mention
from bot.crashpoints import crash_point
from bot.sfox import SfoxClient, SfoxError, clip
from bot.store import AlreadyOpen, Event, Notice, RequestRecord, Store
from bot.userid import InvalidUserId, parse_user_id

if TYPE_CHECKING:
    from bot.balances import BalanceCheck

log = logging.getLogger("sfox_bot.workflow")

# Angle brackets are Slack control sequences, even inside backticks: they must be escaped.
# A request still without a card this long after it was recorded will never get one: the
# process that was posting it stopped (posting, retries included, takes well under a minute).
CARDLESS_GRACE = timedelta(minutes=5)
# How long a thread may hold a Slack message it is sending before another may take it over (a
# process that died holding it must not hold back the messages after it for long). A card update
# is idempotent, so its lease can be short; a thread reply must never be posted twice.
NOTICE_LEASE_SECONDS = {"card": 15.0, "reply": 30.0}
USAGE = "Usage: `/sfox-deactivate &lt;sfox_user_id&gt; [reason]`"
MAX_REASON = 500
RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
# Slack errors that retrying will not fix: stop trying that message (the outcome stays recorded).
PERMANENT_SLACK_ERRORS = frozenset(
    {
        "channel_not_found",
        "message_not_found",
        "is_archived",
        "cant_update_message",
        "invalid_auth",
        "account_inactive",
        "no_card",
    }
)


class NotifyError(Exception):
    """A Slack call failed; `code` is Slack's error string (e.g. `not_in_channel`)."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


class Notifier(Protocol):
    def post_card(self, record: RequestRecord) -> str:
        """Post the approval card; returns the message ts. Raises NotifyError."""

    def update_card(self, record: RequestRecord) -> None:
        """Re-render the card for the record's current state. Raises NotifyError."""

    def reply(self, record: RequestRecord, text: str) -> None:
        """Post `text` in the card's thread. Raises NotifyError."""

    def find_card(self, record: RequestRecord) -> str | None:
        """The ts of a card posted for `record` but never recorded, or None. Raises NotifyError."""

    def reply_posted(self, record: RequestRecord, text: str) -> bool:
        """Whether `text` is already in the card's thread. Raises NotifyError."""


@dataclass(frozen=True)
class CardRef:
    """Where a clicked button sits: the card's channel and ts, as the click reports them, and
    whether the message is this bot's own (only then may it become a request's card)."""

    channel_id: str
    ts: str
    ours: bool


@dataclass(frozen=True)
class Policy:
    approvers: Container[str]
    required_approvals: int = 1
    ttl: timedelta = timedelta(hours=1)
    allowed_channels: frozenset[str] = frozenset()
    # An `executing` claim older than this belongs to a process that died (the sFOX call is
    # bounded by its timeout, so a live process always finishes well inside it).
    claim_lease: timedelta = timedelta(seconds=45)


@dataclass(frozen=True)
class Command:
    """A validated `/sfox-deactivate` invocation."""

    requester: str
    channel_id: str
    sfox_user_id: str
    reason: str


@dataclass(frozen=True)
class ClickResult:
    """What a button click led to: an ephemeral answer for the clicker, and whether the caller
    must now run `execute` (only the one who won the claim is told so)."""

    ephemeral: str | None = None
    execute: bool = False


class Workflow:
    def __init__(
        self,
        store: Store,
        sfox: SfoxClient,
        notifier: Notifier,
        policy: Policy,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        balances: Callable[[str], BalanceCheck] | None = None,
    ) -> None:
        self.store = store
        self.sfox = sfox
        self.notifier = notifier
        self.policy = policy
        self.now = clock
        # Reads the target's balances before the card (bot.balances); None: no balance check.
        self.balances = balances

    # -- the slash command ---------------------------------------------------------------------

    def check_command(self, requester: str, channel_id: str, text: str) -> Command | str:
        """Fast checks that need no I/O, answered within Slack's 3 s: a Command, or why not."""
        if self.policy.allowed_channels and channel_id not in self.policy.allowed_channels:
            places = ", ".join(f"<#{c}>" for c in sorted(self.policy.allowed_channels))
            return f":no_entry: `/sfox-deactivate` can only be used in {places}."
        if requester not in self.policy.approvers:
            return ":no_entry: You are not on the sFOX approver list, so you cannot request deactivations."
        # Any whitespace ends the id: Slack keeps the newlines and tabs people type before a reason.
        token, reason = [*(text or "").split(None, 1), "", ""][:2]
        if not token:
            return f"Which sFOX user? {USAGE}"
        try:
            user_id = parse_user_id(token)
        except InvalidUserId as exc:
            return f":warning: {code(token, 80)} is not a valid sFOX user id: {escape(str(exc))}.\n{USAGE}"
        reason = " ".join(reason.split())
        if len(reason) > MAX_REASON:
            return f":warning: The reason is too long ({len(reason)} characters; at most {MAX_REASON})."
        return Command(requester, channel_id, user_id, reason)

    def open_request(self, cmd: Command) -> str | RequestRecord:
        """Look the user up on sFOX, record the request and post its card. Returns the record, or
        an ephemeral answer saying why no card was posted."""
        existing = self.store.open_request_for(cmd.sfox_user_id)
        if existing is not None and not self._expire_if_due(existing):
            return self._already_open(existing)
        try:
            target = self.sfox.get_user(cmd.sfox_user_id)
        except SfoxError as exc:
            if exc.not_found:
                return f":mag: No such sFOX user: {code(cmd.sfox_user_id)}. Nothing was posted."
            return f":warning: Could not look {code(cmd.sfox_user_id)} up on sFOX: {escape(exc.message)}. Nothing was posted."
        check = self.balances(cmd.sfox_user_id) if self.balances else None
        request: dict[str, Any] = {
            "sfox_user_id": cmd.sfox_user_id,
            "reason": cmd.reason,
            "requested_by": cmd.requester,
            "channel_id": cmd.channel_id,
            "required_approvals": self.policy.required_approvals,
            "target_name": target.name or None,
            "target_email": target.email,
            "target_status": target.status,
            "now": self.now(),
            "ttl": self.policy.ttl,
            "balances": check.to_json() if check else None,
        }
        if check is not None and check.blocks:
            funds = blocks.funds_text(check)
            record = self.store.block(
                error=blocks.blocked_error(funds), event=Event("blocked", detail={"funds": funds}), **request
            )
            log.info("request blocked: the account holds funds", extra=_fields(record))
            return blocks.blocked_answer(record, funds)
        try:
            record = self.store.create_request(**request)
        except AlreadyOpen as exc:
            existing = self.store.get(exc.request_id) if exc.request_id else None
            return (
                self._already_open(existing)
                if existing
                else ":warning: A request for this user is already open."
            )
        log.info("request opened", extra=_fields(record, actor=cmd.requester))
        try:
            ts = self.notifier.post_card(record)
            crash_point("card_posted")
        except NotifyError as exc:
            self.store.abandon(
                record.id, self.now(), f"the approval card could not be posted (Slack: {exc.code})"
            )
            log.warning("card not posted", extra=_fields(record, slack_error=exc.code))
            return _card_failure_advice(exc.code)
        self.store.set_card(record.id, ts, self.now())
        return self.store.get(record.id) or record

    # -- the buttons ---------------------------------------------------------------------------

    def approve(self, request_id: int, actor: str) -> ClickResult:
        record = self.store.get(request_id)
        refusal = self._click_refusal(record, actor)
        if refusal:
            return ClickResult(refusal)
        assert record is not None
        if actor == record.requested_by:
            return ClickResult(
                "You requested this deactivation, so you cannot approve it: a second admin must approve."
            )
        now = self.now()
        # An approval already recorded is not added twice, but the claim is tried again: the
        # click that recorded it may have stopped before claiming (the bot died in between).
        if actor not in record.approved_by and not self.store.add_approval(request_id, actor, now):
            return ClickResult(self._not_pending(self.store.get(request_id), actor))
        if self.store.claim(request_id, now, actor=actor):
            log.info("request claimed", extra=_fields(record, actor=actor))
            return ClickResult(execute=True)
        current = self.store.get(request_id)
        if actor in record.approved_by:
            return ClickResult(self._not_pending(current, actor))
        if current is not None and current.status == "pending":
            self.store.queue_card(request_id, now)
            waiting = current.required_approvals - len(current.approved_by)
            return ClickResult(f"Approval recorded. {waiting} more approval(s) needed.")
        # Another approver's click completed the claim a moment earlier.
        return ClickResult(f"Your approval was recorded; request #{request_id} is already being deactivated.")

    def deny(self, request_id: int, actor: str) -> ClickResult:
        record = self.store.get(request_id)
        refusal = self._click_refusal(record, actor)
        if refusal:
            return ClickResult(refusal)
        assert record is not None
        if not self.store.deny(request_id, actor, self.now(), blocks.reply_denied(record, actor)):
            return ClickResult(self._not_pending(self.store.get(request_id), actor))
        log.info("request denied", extra=_fields(record, actor=actor))
        return ClickResult(None)

    def retry(self, request_id: int, actor: str) -> ClickResult:
        record = self.store.get(request_id)
        if record is None:
            return ClickResult(f"There is no deactivation request #{request_id}.")
        if actor not in self.policy.approvers:
            return ClickResult(":no_entry: Only sFOX approvers can retry a deactivation.")
        if actor == record.requested_by:
            return ClickResult("You requested this deactivation, so a second admin must retry it.")
        if not self.store.claim_retry(request_id, actor, self.now()):
            return ClickResult(self._not_pending(self.store.get(request_id), actor))
        log.info("retry claimed", extra=_fields(record, actor=actor))
        return ClickResult(execute=True)

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
        log.warning("card adopted from a click", extra=_fields(record, ts=card.ts, status=record.status))
        return True

    # -- the sFOX call -------------------------------------------------------------------------

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
            ms = _ms_since(started)
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
                event,
                blocks.reply_failed(record, exc.status, exc.message, retryable),
            )
        else:
            crash_point("delete_answered")
            event = Event(
                "sfox_delete",
                http_status=result.status,
                duration_ms=_ms_since(started),
                detail={"attempts": result.attempts},
            )
            self._finish(
                record, "succeeded", result.status, None, False, event, blocks.reply_succeeded(record)
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
                        duration_ms=_ms_since(started),
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
                Event(
                    "reconciled",
                    http_status=404,
                    duration_ms=_ms_since(started),
                    detail="sFOX no longer knows the account",
                ),
                blocks.reply_succeeded(record, confirmed_by_lookup=True),
                from_statuses=("executing", "unknown"),
            )
        else:
            crash_point("reconcile_read")
            never_sent = record.status == "executing" and not self._delete_started(record.id)
            self._finish(
                record,
                "failed",
                record.http_status,
                "the bot stopped before sending the DELETE; nothing was sent to sFOX"
                if never_sent
                else record.error or "the deactivation did not happen (sFOX still lists the account)",
                True,
                Event(
                    "reconciled",
                    http_status=200,
                    duration_ms=_ms_since(started),
                    detail="sFOX still lists the account",
                ),
                blocks.reply_never_sent(record) if never_sent else blocks.reply_still_present(record),
                from_statuses=("executing", "unknown"),
            )
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

    # -- housekeeping --------------------------------------------------------------------------

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

    def deliver(self, request_id: int | None = None) -> int:
        """Send the Slack messages owed (for one request, or all), each request's in the order they
        were recorded: a message another thread is sending, or one waiting to be retried, holds
        back the ones after it (whoever sends it goes on with them). Failures are recorded and
        retried later with backoff."""
        sent = 0
        blocked: set[int] = set()
        while True:
            progress = False
            for notice in self.store.unsent_notices(self.now(), request_id):
                if notice.request_id in blocked:
                    continue
                if notice.busy or not self.store.lease_notice(
                    notice.id, self.now(), NOTICE_LEASE_SECONDS[notice.kind]
                ):
                    blocked.add(notice.request_id)
                    continue
                outcome = self._send(notice)
                if outcome == "sent":
                    sent += 1
                if outcome == "failed":
                    blocked.add(notice.request_id)  # keep this request's messages in order
                else:
                    progress = True  # sent, or given up for good: the next message may go
            if not progress:
                return sent

    # -- helpers -------------------------------------------------------------------------------

    def _already_replied(self, record: RequestRecord, text: str) -> bool:
        """Look in the thread before sending a reply again; when the thread cannot be read, send
        it (a reply seen twice is better than an outcome never told)."""
        try:
            return self.notifier.reply_posted(record, text)
        except NotifyError as exc:
            log.warning("could not read the thread", extra=_fields(record, slack_error=exc.code))
            return False

    def _find_lost_card(self, request_id: int, now: datetime) -> bool:
        """A request with no card recorded: if the bot did post one (and died before noting it),
        take it as the request's card, which stays valid until the request expires."""
        record = self.store.get(request_id)
        if record is None or record.message_ts is not None:
            return False
        try:
            ts = self.notifier.find_card(record)
        except NotifyError as exc:
            log.warning("could not look for a lost card", extra=_fields(record, slack_error=exc.code))
            return False
        if ts is None or not self.store.adopt_card(request_id, ts, now, found_by="sweep", reply=None):
            return False
        log.warning("card adopted by the sweep", extra=_fields(record, ts=ts))
        return True

    def _send(self, notice: Notice) -> str:
        """Try one owed message: "sent", "failed" (retried later) or "gave_up" (cannot work)."""
        record = self.store.get(notice.request_id)
        try:
            if record is None or record.message_ts is None:
                raise NotifyError("no_card")
            if notice.kind == "card":
                self.notifier.update_card(record)
            elif notice.attempts and self._already_replied(record, notice.text or ""):
                # Taken before by a process that died with the reply maybe sent: it was.
                log.info("reply found already posted", extra={"request_id": notice.request_id})
            else:
                self.notifier.reply(record, notice.text or "")
                crash_point("reply_sent")
        except NotifyError as exc:
            permanent = exc.code in PERMANENT_SLACK_ERRORS
            retry_in = min(3600.0, 5.0 * 2 ** min(notice.attempts, 10))
            self.store.notice_failed(notice, self.now(), exc.code, retry_in, give_up=permanent)
            log.warning(
                "slack message not delivered",
                extra={
                    "request_id": notice.request_id,
                    "kind": notice.kind,
                    "slack_error": exc.code,
                    "gave_up": permanent,
                },
            )
            return "gave_up" if permanent else "failed"
        self.store.notice_sent(notice.id, self.now())
        return "sent"

    def _finish(
        self,
        record: RequestRecord,
        status: str,
        http_status: int | None,
        error: str | None,
        retryable: bool,
        event: Event,
        reply: str,
        from_statuses: tuple[str, ...] = ("executing",),
    ) -> None:
        error = clip(error) if error else None
        done = self.store.finish(
            record.id,
            self.now(),
            status=status,
            http_status=http_status,
            error=error,
            retryable=retryable,
            event=event,
            reply=reply,
            from_statuses=from_statuses,
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
                    detail={"would_be": status, "error": error},
                ),
            )
        log.info("request %s", status, extra=_fields(record, status=status, http_status=http_status))
        self.deliver(record.id)

    def _click_refusal(self, record: RequestRecord | None, actor: str) -> str | None:
        if record is None:
            return "That deactivation request does not exist (any more)."
        if actor not in self.policy.approvers:
            return ":no_entry: You are not on the sFOX approver list, so you cannot approve or deny."
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
            "cancelled": "was cancelled with its batch before it started",
        }
        return f"Request #{record.id} {states.get(record.status, record.status)}; your click changed nothing."

    def _already_open(self, existing: RequestRecord) -> str:
        return (
            f":information_source: A deactivation request for {code(existing.sfox_user_id)} is already open "
            f"(#{existing.id}, {existing.status}, requested by {mention(existing.requested_by)})."
        )


def _card_failure_advice(slack_code: str) -> str:
    advice = {
        "not_in_channel": "I am not in this channel: invite me with `/invite @sFOX Deactivate` and try again.",
        "channel_not_found": "I cannot see this channel (private or a DM?): invite me, or use a channel I am in.",
        "is_archived": "This channel is archived: use another channel.",
        "ratelimited": "Slack is rate limiting me: wait a minute and try again.",
    }.get(slack_code, "Slack did not accept the message; try again in a minute.")
    return (
        f":warning: I could not post the approval card (Slack said `{escape(slack_code, 60)}`). {advice} "
        "The request was closed, so nothing can be approved by mistake."
    )


def _ms_since(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


def _fields(record: RequestRecord, **extra: object) -> dict[str, object]:
    return {"request_id": record.id, "sfox_user_id": record.sfox_user_id, **extra}
