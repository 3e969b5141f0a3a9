"""Asking: the slash command's checks, the look-up on sFOX, the balance check and the card."""

from __future__ import annotations

from typing import Any

from bot.crashpoints import crash_point
from bot.policy import reasons, rules, when
from bot.policy.rules import Refusal
from bot.policy.stages import dump_stages
from bot.requests.base import USAGE, Command, WorkflowBase, card_failure_advice, log, log_fields
from bot.sfox.errors import SfoxError
from bot.sfox.userid import InvalidUserId, parse_user_id
from bot.slack import blocks, watch_blocks
from bot.slack.blocks import code, escape, mention, run_date
from bot.slack.errors import NotifyError
from bot.store.errors import AlreadyOpen
from bot.store.records import Event, RequestRecord


class Asking(WorkflowBase):
    def check_command(self, requester: str, channel_id: str, text: str) -> Command | str:
        """Fast checks that need no I/O, answered within Slack's 3 s: a Command, or why not."""
        refusal = rules.ask_refusal(self.policy, requester, channel_id)
        if refusal is not None:
            return refusal.text
        # Any whitespace ends the id: Slack keeps the newlines and tabs people type before a reason.
        token, reason = [*(text or "").split(None, 1), "", ""][:2]
        if not token:
            return f"Which sFOX user? {USAGE}"
        try:
            user_id = parse_user_id(token)
        except InvalidUserId as exc:
            return f":warning: {code(token, 80)} is not a valid sFOX user id: {escape(str(exc))}.\n{USAGE}"
        options = when.split_options(reason, self.now(), self.policy.schedule_horizon)
        if isinstance(options, Refusal):
            return options.text
        reason = reasons.clean_reason(options.reason)
        refusal = reasons.reason_refusal(reason) or reasons.missing_reason_refusal(self.policy, reason)
        if refusal is not None:
            return refusal.text
        return Command(
            requester, channel_id, user_id, reason, when_empty=options.when_empty, run_at=options.run_at
        )

    def open_request(self, cmd: Command) -> str | RequestRecord:
        """Look the user up on sFOX, record the request and post its card. Returns the record, or
        an ephemeral answer saying why no card was posted."""
        if cmd.run_at is not None and cmd.run_at <= self.now():
            # A journalled command carried out after a restart, its time gone meanwhile.
            return (
                f":warning: The time you gave ({run_date(cmd.run_at)}) passed before I could post the card "
                f"(the bot restarted meanwhile). Nothing was posted: ask again with a new time."
            )
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
            "required_approvals": self.policy.total_approvals,
            "stages": dump_stages(self.policy.effective_stages()),
            "target_name": target.name or None,
            "target_email": target.email,
            "target_status": target.status,
            "now": self.now(),
            "ttl": self.policy.ttl,
            "balances": check.to_json() if check else None,
            "command_id": cmd.command_id,
            "run_at": cmd.run_at,
            "requested_via": cmd.via,
        }
        if check is not None and check.blocks and cmd.when_empty:
            return self.open_watch(request, blocks.funds_text(check))
        # A request for a later time is not blocked by today's funds: they may be withdrawn by then,
        # and the balances are read again at the time (bot/requests/scheduling.py).
        if check is not None and check.blocks and cmd.run_at is None:
            funds = blocks.funds_text(check)
            record = self.store.block(
                error=blocks.blocked_error(funds), event=Event("blocked", detail={"funds": funds}), **request
            )
            log.info("request blocked: the account holds funds", extra=log_fields(record))
            answer = blocks.blocked_answer(record, funds)
            return answer + watch_blocks.blocked_watch_hint() if self.watch_reader else answer
        try:
            record = self.store.create_request(**request)
        except AlreadyOpen as exc:
            existing = self.store.get(exc.request_id) if exc.request_id else None
            return (
                self._already_open(existing)
                if existing
                else ":warning: A request for this user is already open."
            )
        log.info("request opened", extra=log_fields(record, actor=cmd.requester))
        return self.post_new_card(record)

    def post_new_card(self, record: RequestRecord) -> str | RequestRecord:
        """Post a pending request's card and note where it is; a card Slack refuses closes the
        request (nobody could approve it). Returns the record, or the answer saying why not."""
        try:
            ts = self.notifier.post_card(record)
            crash_point("card_posted")
        except NotifyError as exc:
            self.store.abandon(
                record.id, self.now(), f"the approval card could not be posted (Slack: {exc.code})"
            )
            log.warning("card not posted", extra=log_fields(record, slack_error=exc.code))
            return card_failure_advice(exc.code)
        self.store.set_card(record.id, ts, self.now())
        return self.store.get(record.id) or record

    def _already_open(self, existing: RequestRecord) -> str:
        return (
            f":information_source: A deactivation request for {code(existing.sfox_user_id)} is already open "
            f"(#{existing.id}, {existing.status}, requested by {mention(existing.requested_by)})."
        )
