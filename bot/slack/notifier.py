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
from bot.slack.calls import call_slack, post_card, post_in_thread, update_card
from bot.slack.errors import NotifyError
from bot.store.records import RequestRecord

log = logging.getLogger("sfox_bot.slack")
# Where a card posted for a request can be: it is posted right after the request is recorded
# (posting, retries included, takes well under a minute); a little slack for clock skew.
CARD_SEARCH_BEFORE = timedelta(seconds=5)
CARD_SEARCH_AFTER = timedelta(minutes=5)


class SlackNotifier:
    def __init__(self, client: WebClient) -> None:
        self.client = client
        self._bot_id: str | None = None
        self._lock = threading.Lock()

    def post_card(self, record: RequestRecord) -> str:
        return post_card(self.client, record.channel_id, blocks.card_text(record), blocks.card(record))

    def update_card(self, record: RequestRecord) -> None:
        update_card(
            self.client, record.channel_id, record.message_ts, blocks.card_text(record), blocks.card(record)
        )

    def reply(self, record: RequestRecord, text: str) -> None:
        post_in_thread(self.client, record.channel_id, record.message_ts, text)

    def find_card(self, record: RequestRecord) -> str | None:
        """The ts of this request's card in its channel, if the bot posted one but never recorded
        it (the process died in between); None if there is none. Needs `channels:history` (and
        `groups:history` for private channels)."""
        bot_id = self.bot_id()
        response = self._call(
            "conversations_history",
            channel=record.channel_id,
            oldest=f"{(record.created_at - CARD_SEARCH_BEFORE).timestamp():.6f}",
            latest=f"{(record.created_at + CARD_SEARCH_AFTER).timestamp():.6f}",
            inclusive=True,
            limit=200,
        )
        block_id = blocks.card_block_id(record.id)
        for message in response.get("messages") or []:
            if message.get("bot_id") != bot_id or message.get("thread_ts") not in (None, message.get("ts")):
                continue
            if any(b.get("block_id") == block_id for b in message.get("blocks") or []):
                return str(message["ts"])
        return None

    def reply_posted(self, record: RequestRecord, text: str) -> bool:
        """Whether this bot already posted `text` in the card's thread: a reply whose sending
        was cut off by a crash may have gone out, and must not appear twice."""
        bot_id = self.bot_id()
        response = self._call(
            "conversations_replies", channel=record.channel_id, ts=record.message_ts, limit=1000
        )
        return any(
            m.get("bot_id") == bot_id and m.get("text") == text and m.get("ts") != record.message_ts
            for m in response.get("messages") or []
        )

    def bot_id(self) -> str:
        """This bot's own id (`auth.test`), to tell its messages from anyone else's."""
        with self._lock:
            if self._bot_id is None:
                self._bot_id = str(self._call("auth_test").get("bot_id") or "")
            return self._bot_id

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
