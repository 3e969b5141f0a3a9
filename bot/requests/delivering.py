"""Delivering: the Slack messages owed for a request (outbox), sent in order, each at least
once and, where a crash may have cut one off, looked for before it is sent again.

A message Slack refused for its rate limit (429) was not posted: it is tried again exactly when
Slack's `Retry-After` says, by whichever replica's delivery loop gets there first
(bot/runtime/delivery.py), and that refused try is not counted, so it neither lengthens a
backoff nor makes the next try search the thread for it."""

from __future__ import annotations

import logging

from bot.crashpoints import crash_point
from bot.requests.base import NOTICE_LEASE_SECONDS, WorkflowBase, log, log_fields
from bot.slack.errors import NotifyError
from bot.store.records import Notice, RequestRecord


class Delivering(WorkflowBase):
    def deliver(self, request_id: int | None = None) -> int:
        """Send the Slack messages owed (for one request, or all), each request's in the order they
        were recorded: a message another thread is sending, or one waiting to be retried, holds
        back the ones after it (whoever sends it goes on with them). Failures are recorded and
        retried later: when Slack's Retry-After says, or with backoff."""
        sent = 0
        blocked: set[int] = set()
        while True:
            progress = False
            # A message sent and not yet recorded so: recorded in the transaction that leases the
            # next one (one write instead of two per message after the first), or right after the
            # pass. Nothing else happens in between, so a crash leaves it as it did before: sent,
            # not recorded, looked for in the thread before it is sent again.
            unrecorded: int | None = None
            try:
                for notice in self.store.unsent_notices(self.now(), request_id):
                    if notice.request_id in blocked:
                        continue
                    if notice.busy:
                        blocked.add(notice.request_id)
                        continue
                    seconds = NOTICE_LEASE_SECONDS.get(notice.kind, 30.0)
                    leased = self.store.lease_notice(notice.id, self.now(), seconds, sent=unrecorded)
                    unrecorded = None
                    if not leased:
                        blocked.add(notice.request_id)
                        continue
                    outcome = self._send(notice)
                    if outcome == "sent":
                        sent += 1
                        unrecorded = notice.id
                    if outcome == "failed":
                        blocked.add(notice.request_id)  # keep this request's messages in order
                    else:
                        progress = True  # sent, or given up for good: the next message may go
            finally:
                if unrecorded is not None:
                    self.store.notice_sent(unrecorded, self.now())
            if not progress:
                return sent

    def _already_replied(self, record: RequestRecord, text: str) -> bool:
        """Look in the thread before sending a reply again; when the thread cannot be read, send
        it (a reply seen twice is better than an outcome never told), unless Slack only asked us
        to wait (429): then the reply waits too, rather than risk being posted twice."""
        try:
            return self.notifier.reply_posted(record, text)
        except NotifyError as exc:
            if exc.retry_after is not None:
                raise
            log.warning("could not read the thread", extra=log_fields(record, slack_error=exc.code))
            return False

    def _send(self, notice: Notice) -> str:
        """Try one owed message: "sent" (the caller records it), "failed" (retried later) or
        "gave_up" (cannot work)."""
        record = self.store.get(notice.request_id)
        try:
            if notice.kind in self.senders:  # e.g. the requester's DM (bot/slack/dms.py)
                self.senders[notice.kind](notice, record)
            elif record is None or record.message_ts is None:
                raise NotifyError("no_card")
            elif notice.kind == "card":
                self.notifier.update_card(record)
            elif notice.attempts and self._already_replied(record, notice.text or ""):
                # Taken before by a process that died with the reply maybe sent: it was.
                log.info("reply found already posted", extra={"request_id": notice.request_id})
            else:
                self.notifier.reply(record, notice.text or "")
                crash_point("reply_sent")
        except NotifyError as exc:
            permanent = exc.permanent
            # Rate limited: not posted, and tried again exactly when Slack said; otherwise a backoff.
            refused = exc.retry_after is not None
            retry_in = min(3600.0, 5.0 * 2 ** min(notice.attempts, 10))
            if exc.retry_after is not None:
                retry_in = exc.retry_after
            self.store.notice_failed(
                notice, self.now(), exc.code, retry_in, give_up=permanent, refused=refused
            )
            log.log(
                logging.INFO if refused else logging.WARNING,  # Slack's pace is no fault: it will go
                "slack message held back by Slack's rate limit" if refused else "slack message not delivered",
                extra={
                    "request_id": notice.request_id,
                    "kind": notice.kind,
                    "slack_error": exc.code,
                    "gave_up": permanent,
                    "retry_in": retry_in,
                },
            )
            if not permanent:
                self.retry_noted()
            return "gave_up" if permanent else "failed"
        return "sent"
