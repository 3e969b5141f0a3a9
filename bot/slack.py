"""The Slack Web API side of the workflow: posting and updating cards and thread replies."""

from __future__ import annotations

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)

from bot import blocks
from bot.store import RequestRecord
from bot.workflow import NotifyError


def make_web_client(token: str, base_url: str, timeout: int = 10) -> WebClient:
    """A WebClient that retries rate limits, 5xx and connection errors a few times by itself."""
    return WebClient(
        token=token,
        base_url=base_url if base_url.endswith("/") else base_url + "/",
        timeout=timeout,
        retry_handlers=[
            ConnectionErrorRetryHandler(max_retry_count=2),
            RateLimitErrorRetryHandler(max_retry_count=2),
            ServerErrorRetryHandler(max_retry_count=2),
        ],
    )


class SlackNotifier:
    def __init__(self, client: WebClient) -> None:
        self.client = client

    def post_card(self, record: RequestRecord) -> str:
        response = self._call(
            "chat_postMessage",
            channel=record.channel_id,
            text=blocks.card_text(record),
            blocks=blocks.card(record),
            unfurl_links=False,
            unfurl_media=False,
        )
        return str(response["ts"])

    def update_card(self, record: RequestRecord) -> None:
        self._call(
            "chat_update",
            channel=record.channel_id,
            ts=record.message_ts,
            text=blocks.card_text(record),
            blocks=blocks.card(record),
        )

    def reply(self, record: RequestRecord, text: str) -> None:
        self._call(
            "chat_postMessage",
            channel=record.channel_id,
            thread_ts=record.message_ts,
            text=text,
            unfurl_links=False,
            unfurl_media=False,
        )

    def _call(self, method: str, **kwargs: object) -> dict:
        try:
            return getattr(self.client, method)(**kwargs).data
        except SlackApiError as exc:
            data = exc.response.data if isinstance(exc.response.data, dict) else {}
            code = data.get("error") or f"http_{exc.response.status_code}"
            raise NotifyError(str(code)) from None
        except Exception as exc:  # transport errors after the client's own retries
            raise NotifyError(f"network_error:{type(exc).__name__}") from None
