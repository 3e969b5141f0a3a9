"""The one way the bot calls Slack's Web API and reads a failure.

Every Slack call of the workflow (cards, thread replies, DMs, the batch card and its upload) goes
through `call_slack`, so a failure always becomes the same typed value, `NotifyError`, whose
`code` is Slack's own error string (`not_in_channel`), `http_NNN` when Slack answered without
one, or `network_error:<Type>` when it never answered; `NotifyError.permanent` says whether
trying again can ever help. Code that must word a failure its own way (`sfox-bot check`, the
approver group) reads it through `slack_failure` instead of unpacking the SDK's exception again.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)

from bot.slack.errors import NotifyError

# A paged read stops after this many pages (conversations.history: up to 200 messages a page).
MAX_PAGES = 50


@dataclass(frozen=True)
class SlackFailure:
    """What Slack answered to a call it refused: its error code (None when the answer had none)
    and the HTTP status."""

    code: str | None
    http_status: int

    @property
    def label(self) -> str:
        """Slack's error code, or `http_NNN` when it gave none: what NotifyError carries."""
        return self.code or f"http_{self.http_status}"


def slack_failure(exc: BaseException) -> SlackFailure | None:
    """Slack's answer inside a failed call, or None when Slack never answered (a transport
    error, a timeout, anything else raised)."""
    if not isinstance(exc, SlackApiError):
        return None
    data = exc.response.data if isinstance(exc.response.data, dict) else {}
    code = data.get("error")
    return SlackFailure(str(code) if code else None, int(exc.response.status_code))


def make_web_client(token: str, base_url: str, timeout: int = 10, *, retries: bool = True) -> WebClient:
    """A WebClient that retries rate limits, 5xx and connection errors a few times by itself
    (`retries=False` for a call on a path that must answer fast, e.g. within Slack's 3 s)."""
    handlers = (
        [
            ConnectionErrorRetryHandler(max_retry_count=2),
            RateLimitErrorRetryHandler(max_retry_count=2),
            ServerErrorRetryHandler(max_retry_count=2),
        ]
        if retries
        else []
    )
    return WebClient(
        token=token,
        base_url=base_url if base_url.endswith("/") else base_url + "/",
        timeout=timeout,
        retry_handlers=handlers,
    )


def call_slack(client: WebClient, method: str, **kwargs: object) -> dict[str, Any]:
    """One Web API call; any failure becomes NotifyError with Slack's error code (or the HTTP
    status, or the transport error after the client's own retries)."""
    try:
        return dict(getattr(client, method)(**kwargs).data)
    except Exception as exc:  # SlackApiError, or transport errors after the client's own retries
        failure = slack_failure(exc)
        raise NotifyError(failure.label if failure else f"network_error:{type(exc).__name__}") from None


def call_slack_pages(
    client: WebClient, method: str, key: str, *, max_pages: int = MAX_PAGES, **kwargs: object
) -> Iterator[dict[str, Any]]:
    """The items (`key`: "messages") of a paged read, page after page: Slack may return fewer
    than `limit` items a page, even when more follow, so only an empty
    `response_metadata.next_cursor` ends the read, and no more than `max_pages` pages are read
    (a cursor that never ends cannot hold a caller forever). Raises NotifyError as `call_slack`."""
    cursor: str | None = None
    for _ in range(max_pages):
        data = call_slack(client, method, **kwargs, **({"cursor": cursor} if cursor else {}))
        yield from data.get(key) or []
        cursor = str((data.get("response_metadata") or {}).get("next_cursor") or "")
        if not cursor:
            return


def post_in_thread(client: WebClient, channel: str, thread_ts: str | None, text: str) -> None:
    """Post `text` in the thread under `thread_ts` (a card's): a request's and a batch's replies
    alike, links and media never unfurled. Raises NotifyError."""
    call_slack(
        client,
        "chat_postMessage",
        channel=channel,
        thread_ts=thread_ts,
        text=text,
        unfurl_links=False,
        unfurl_media=False,
    )


def post_card(client: WebClient, channel: str, text: str, blocks: list[dict[str, Any]]) -> str:
    """Post a card (a request's or a batch's) and return its ts. Raises NotifyError."""
    data = call_slack(
        client,
        "chat_postMessage",
        channel=channel,
        text=text,
        blocks=blocks,
        unfurl_links=False,
        unfurl_media=False,
    )
    return str(data["ts"])


def update_card(
    client: WebClient, channel: str, ts: str | None, text: str, blocks: list[dict[str, Any]]
) -> None:
    """Re-render a card in place. Raises NotifyError."""
    call_slack(client, "chat_update", channel=channel, ts=ts, text=text, blocks=blocks)
