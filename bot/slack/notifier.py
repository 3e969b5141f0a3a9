"""The Slack Web API side of the workflow: posting and updating cards and thread replies.

The calls themselves, and what a failure becomes (NotifyError), are bot/slack/calls.py's: the
batch card and the DMs make theirs through the same helpers."""

from __future__ import annotations

import logging
import threading
from datetime import timedelta
from typing import Any

from slack_sdk import WebClient

from bot.slack import blocks
from bot.slack.calls import call_slack, call_slack_pages, post_card, post_in_thread, update_card
from bot.slack.errors import NotifyError
from bot.slack.identity import is_own_message
from bot.store.records import RequestRecord

log = logging.getLogger("sfox_bot.slack")
# Where a card posted for a request can be: it is posted right after the request is recorded
# (posting, retries included, takes well under a minute); a little slack for clock skew.
CARD_SEARCH_BEFORE = timedelta(seconds=5)
CARD_SEARCH_AFTER = timedelta(minutes=5)


class SlackNotifier:
    """`client` waits out Slack's rate limit in-thread (the card posted after a command);
    `outbox`, when given, is the client of the outbox's sends (card updates, thread replies and
    the search before a reply is sent again), which must not: its 429 comes back at once with its
    Retry-After, for the outbox to try again then without holding the message's lease meanwhile."""

    def __init__(self, client: WebClient, outbox: WebClient | None = None) -> None:
        self.client = client
        self.outbox = outbox or client
        self._identity: tuple[str, str] | None = None
        self._lock = threading.Lock()

    def post_card(self, record: RequestRecord) -> str:
        return post_card(self.client, record.channel_id, blocks.card_text(record), blocks.card(record))

    def update_card(self, record: RequestRecord) -> None:
        update_card(
            self.outbox, record.channel_id, record.message_ts, blocks.card_text(record), blocks.card(record)
        )

    def reply(self, record: RequestRecord, text: str) -> None:
        post_in_thread(self.outbox, record.channel_id, record.message_ts, text)

    def find_card(self, record: RequestRecord) -> str | None:
        """The ts of this request's card in its channel, if the bot posted one but never recorded
        it (the process died in between); None if there is none. Reads every page of the
        channel's history in the card's time window (a busy channel fills many). Needs
        `channels:history` (and `groups:history` for private channels)."""
        me = self.identity()
        block_id = blocks.card_block_id(record.id)
        for message in call_slack_pages(
            self.client,
            "conversations_history",
            "messages",
            channel=record.channel_id,
            oldest=f"{(record.pending_since - CARD_SEARCH_BEFORE).timestamp():.6f}",
            latest=f"{(record.pending_since + CARD_SEARCH_AFTER).timestamp():.6f}",
            inclusive=True,
            limit=200,
        ):
            if not is_own_message(message, *me) or message.get("thread_ts") not in (None, message.get("ts")):
                continue
            if any(b.get("block_id") == block_id for b in message.get("blocks") or []):
                return str(message["ts"])
        return None

    def reply_posted(self, record: RequestRecord, text: str) -> bool:
        """Whether this bot already posted `text` in the card's thread: a reply whose sending
        was cut off by a crash may have gone out, and must not appear twice. Reads the whole
        thread, page after page."""
        me = self.identity()
        return any(
            is_own_message(m, *me) and m.get("text") == text and m.get("ts") != record.message_ts
            for m in call_slack_pages(
                self.outbox,
                "conversations_replies",
                "messages",
                channel=record.channel_id,
                ts=record.message_ts,
                limit=200,
            )
        )

    def identity(self) -> tuple[str, str]:
        """This bot's own `bot_id` and bot user (`auth.test`, asked once), to tell its messages
        from anyone else's (bot/slack/identity.py)."""
        with self._lock:
            if self._identity is None:
                me = self._call("auth_test")
                self._identity = (str(me.get("bot_id") or ""), str(me.get("user_id") or ""))
            return self._identity

    def _call(self, method: str, **kwargs: object) -> dict[str, Any]:
        return call_slack(self.client, method, **kwargs)


def answer_privately(response_url: str, text: str, *, replace: bool = False) -> bool:
    """Answer a clicker or a command's requester through its response URL (valid for 30 minutes,
    5 posts), from any process: also when the process that received it died before answering.
    `replace` replaces the message the URL answered last (a progress line). The answer is a
    courtesy: False (and a log line) when it cannot be sent."""
    from slack_sdk.webhook import WebhookClient

    try:
        response = WebhookClient(response_url, timeout=10).send(
            text=text, response_type="ephemeral", replace_original=replace
        )
    except Exception as exc:
        log.warning("private answer not delivered", extra={"error": type(exc).__name__})
        return False
    if response.status_code != 200:
        log.warning("private answer not delivered", extra={"http_status": response.status_code})
        return False
    return True


def tell_privately(client: WebClient, channel_id: str, user_id: str, text: str) -> bool:
    """A message only `user_id` sees in `channel_id` (chat.postEphemeral): the answer to the batch
    form, which has no response URL. A courtesy too: False (and a log line) when not sent."""
    try:
        call_slack(client, "chat_postEphemeral", channel=channel_id, user=user_id, text=text)
    except NotifyError as exc:
        log.warning("private answer not delivered", extra={"slack_error": exc.code})
        return False
    return True
