"""Direct messages to the requester with the final outcome of their request (issue 13).

Every final outcome (succeeded, failed, denied, expired, blocked; an `unknown` outcome once it is
settled) queues a `dm` row in the outbox in the same transaction as the outcome (the hook in
`bot/store/db.py`), so the DM is OWED, not best-effort: the workflow's deliver loop sends it through
`DirectMessages.send` after the card update and the thread reply of the same request, and retries
it with the same backoff when Slack fails. A DM is sent at least once: a process killed between
Slack's answer and the outbox mark may send it twice (a repeated DM is harmless; a lost one is not).

When the thread reply could not be delivered for good (the card or its channel is gone), this DM is
how the outcome still reaches a person, and it says so. If the DM cannot be delivered for good
either, the outcome is logged at ERROR with the request id (it stays in the database).

Slack calls: `conversations.open` (scope `im:write`; once per requester and process) and
`chat.postMessage` (owed, via the outbox);
`chat.getPermalink` for the link to the card is safe to lose (the DM then goes without the link).
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Any

from slack_sdk import WebClient
from sqlalchemy import select

from bot.policy import rules
from bot.slack import watch_blocks
from bot.slack.blocks import code, escape, mention
from bot.slack.calls import call_slack
from bot.slack.errors import NotifyError
from bot.store.db import Store
from bot.store.records import Notice, RequestRecord
from bot.store.schema import outbox

log = logging.getLogger("sfox_bot.dms")

# A watch's DMs before its card (bot/slack/watch_blocks.py): no thread to have lost.
WATCH_DMS = frozenset({"watching", "watch_cleared", "watch_cancelled"})
# The DM channels kept (one per requester): far more than a team of requesters.
MAX_CHANNELS_KEPT = 10_000


class DirectMessages:
    """Renders and sends the requester's outcome DM; registered as the outbox's `dm` sender."""

    def __init__(self, client: WebClient, store: Store, *, watch_offered: bool = False) -> None:
        """`watch_offered`: a blocked request's DM carries a *Watch* button (balances are read)."""
        self.client = client
        self.store = store
        self.watch_offered = watch_offered
        # Each requester's DM channel, from conversations.open: Slack gives the same one for the
        # same person every time, so it is asked once per process, not once per DM (a DM was
        # three Slack calls). Forgotten when posting to it fails, in case it is gone.
        self._channels: dict[str, str] = {}
        self._lock = threading.Lock()

    def send(self, notice: Notice, record: RequestRecord | None) -> None:
        """Send one owed DM. Raises NotifyError (the outbox retries, or gives up on a permanent
        error, which is then logged at ERROR: the outcome reached nobody in Slack)."""
        if record is None:
            return  # nothing to tell about (cannot happen: outbox rows reference their request)
        try:
            snapshot = json.loads(notice.text or "{}")
        except ValueError:
            snapshot = {}
        status = snapshot.get("status")
        if status == "watch_cleared" and record.message_ts is None:
            if record.status == "pending":
                # Its link is the point: wait for the card (retried with backoff; see watch_cleared).
                raise NotifyError("card_not_posted_yet")
            return  # the card could not be posted: the request's own final DM says so
        thread_lost = self._thread_lost(record) and status not in WATCH_DMS
        text = render(record, snapshot, self._permalink(record), thread_lost)
        extra: dict[str, Any] = {}
        if status == "watching":
            extra["blocks"] = watch_blocks.dm_blocks(text, watch_blocks.stop_button(record.id))
        elif status == "blocked" and self.watch_offered:
            text += watch_blocks.blocked_watch_hint()
            extra["blocks"] = watch_blocks.dm_blocks(text, watch_blocks.watch_button(record.id))
        try:
            channel = self._channel(record.requested_by)
            try:
                call_slack(
                    self.client, "chat_postMessage", channel=channel, text=text, unfurl_links=False, **extra
                )
            except NotifyError:
                with self._lock:
                    self._channels.pop(record.requested_by, None)
                raise
        except NotifyError as exc:
            if exc.permanent:
                log.error(
                    "outcome DM not delivered for good%s",
                    "; the card's thread was not reachable either" if thread_lost else "",
                    extra={
                        "request_id": record.id,
                        "status": snapshot.get("status"),
                        "slack_error": exc.code,
                    },
                )
            raise
        log.info("outcome DM sent", extra={"request_id": record.id, "status": snapshot.get("status")})

    def _channel(self, user: str) -> str:
        with self._lock:
            known = self._channels.get(user)
        if known is not None:
            return known
        opened = call_slack(self.client, "conversations_open", users=user)
        found = (opened.get("channel") or {}).get("id")
        if not found:
            return user  # Slack posts to a user's id in the app's DM with them
        with self._lock:
            if len(self._channels) >= MAX_CHANNELS_KEPT:
                self._channels.clear()
            self._channels[user] = str(found)
        return str(found)

    def _permalink(self, record: RequestRecord) -> str | None:
        """The card's link; safe to lose (a DM without a link still tells the outcome)."""
        return card_permalink(self.client, record)

    def _thread_lost(self, record: RequestRecord) -> bool:
        """Whether a thread reply for this request was given up for good (or there is no card)."""
        if record.message_ts is None:
            return True
        query = select(outbox.c.id).where(
            outbox.c.request_id == record.id,
            outbox.c.kind == "reply",
            outbox.c.gave_up.is_(True),
        )
        with self.store.reader() as conn:
            return conn.execute(query.limit(1)).first() is not None


def render(record: RequestRecord, snapshot: dict[str, Any], link: str | None, thread_lost: bool) -> str:
    """The DM's text for the outcome `snapshot` (status and error as they were when it was owed)."""
    status = str(snapshot.get("status") or record.status)
    error = snapshot.get("error") or record.error
    who = code(record.sfox_user_id)
    if record.target_name:
        who += f" ({escape(record.target_name, 100)})"
    subject = f"Your request #{record.id} to deactivate {who}"
    watch_text = watch_blocks.dm_text(record, status, subject)
    if watch_text is not None:
        body = watch_text
    elif status == "succeeded":
        body = f":white_check_mark: {subject} is done: sFOX deactivated the account."
    elif status == "failed":
        body = f":x: {subject} was not carried out: {escape(str(error or 'see the card'), 600)}"
        if record.retryable:
            body += " An approver other than you can press *Retry* on the card."
    elif status == "denied":
        if record.denied_by is not None and rules.is_requester(record, record.denied_by):
            body = f":no_entry_sign: {subject} was cancelled by you."
        else:
            body = f":no_entry_sign: {subject} was denied by {mention(record.denied_by)}."
        if record.deny_reason:
            body += f" Reason: {escape(record.deny_reason, 600)}"
    elif status == "expired" and error:  # a watch that reached its deadline
        body = f":alarm_clock: {subject} expired: {escape(str(error), 600)}."
    elif status == "expired":
        body = (
            f":alarm_clock: {subject} expired without the approvals it needed; nothing was sent to "
            "sFOX. Make a new request if it is still needed."
        )
    elif status == "blocked":
        body = (
            f":moneybag: {subject} was closed before any card: "
            f"{escape(str(error or 'the account holds funds'), 600)}"
        )
    else:
        body = f"{subject}: {escape(status, 40)}."
    if thread_lost and record.message_ts is not None:
        body += "\n(I could not post this in the card's thread: the card or its channel is gone.)"
    if link:
        body += f"\n<{link}|See the card>"
    return body


def card_permalink(client: WebClient, record: RequestRecord) -> str | None:
    """A request's card link (https), or None: no card, or Slack did not say (the DM and the
    intake API's answer both do without one)."""
    if record.message_ts is None:
        return None
    try:
        answer = call_slack(
            client, "chat_getPermalink", channel=record.channel_id, message_ts=record.message_ts
        )
    except NotifyError as exc:
        log.info("no permalink for the card", extra={"request_id": record.id, "slack_error": exc.code})
        return None
    link = answer.get("permalink")
    return str(link) if isinstance(link, str) and link.startswith("https://") else None
