"""The one way the bot calls Slack's Web API and reads a failure.

Every Slack call of the workflow (cards, thread replies, DMs, the batch card and its upload) goes
through `call_slack`, so a failure always becomes the same typed value, `NotifyError`, whose
`code` is Slack's own error string (`not_in_channel`), `http_NNN` when Slack answered without
one, or `network_error:<Type>` when it never answered; `NotifyError.permanent` says whether
trying again can ever help. Code that must word a failure its own way (`sfox-bot check`, the
approver group) reads it through `slack_failure` instead of unpacking the SDK's exception again.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import ConnectionErrorRetryHandler, ServerErrorRetryHandler
from slack_sdk.http_retry.handler import RetryHandler
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState

from bot.slack.errors import NotifyError

# A paged read stops after this many pages (conversations.history: up to 200 messages a page).
MAX_PAGES = 50
# How long, in all, one call outside the outbox may wait out Slack's 429s before the last one
# becomes its NotifyError: a person waits a little longer for a card rather than see it refused.
RATE_LIMIT_PATIENCE_SECONDS = 30.0
# Slack always asks for a second or more; this only bounds the tries should it say 0.
RATE_LIMIT_MAX_TRIES = 30


@dataclass(frozen=True)
class SlackFailure:
    """What Slack answered to a call it refused: its error code (None when the answer had none)
    and the HTTP status."""

    code: str | None
    http_status: int
    # A 429's Retry-After in seconds (None for any other answer, or a 429 without a usable one).
    retry_after: float | None = None

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
    status = int(exc.response.status_code)
    wait = retry_after(exc.response.headers or {}) if status == 429 else None
    return SlackFailure(str(code) if code else None, status, wait)


def retry_after(headers: Mapping[str, Any]) -> float | None:
    """The seconds in a `Retry-After` header (Slack sends whole seconds), or None when there is
    none or it cannot be read. The SDK hands headers over as strings or as lists of them."""
    for name, value in headers.items():
        if name.lower() != "retry-after":
            continue
        if isinstance(value, list | tuple):
            value = value[0] if value else None
        try:
            seconds = float(str(value).strip())
        except ValueError:
            return None
        return max(0.0, seconds) if math.isfinite(seconds) else None
    return None


class WaitOutRateLimit(RetryHandler):
    """Tries a call Slack answered 429 again after exactly the `Retry-After` it gave (1 s when it
    gave none), as long as the waits of this call add up to at most `patience` seconds."""

    def __init__(self, patience: float) -> None:
        super().__init__(max_retry_count=RATE_LIMIT_MAX_TRIES)
        self.patience = patience

    def _can_retry(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        if response is None or response.status_code != 429:
            return False
        return _waited(state) + _wait_for(response) <= self.patience

    def prepare_for_next_attempt(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> None:
        wait = _wait_for(response)
        state.custom_values = {**(state.custom_values or {}), "rate_limit_waited": _waited(state) + wait}
        state.next_attempt_requested = True
        time.sleep(wait)
        state.increment_current_attempt()


def _wait_for(response: HttpResponse | None) -> float:
    found = retry_after(response.headers) if response is not None else None
    return 1.0 if found is None else found


def _waited(state: RetryState) -> float:
    return float((state.custom_values or {}).get("rate_limit_waited", 0.0))


def make_web_client(
    token: str,
    base_url: str,
    timeout: int = 10,
    *,
    retries: bool = True,
    rate_limit_patience: float = RATE_LIMIT_PATIENCE_SECONDS,
    logger: logging.Logger | None = None,
) -> WebClient:
    """A WebClient that tries 5xx and connection errors again twice by itself and waits out
    Slack's rate limit for up to `rate_limit_patience` seconds (0: a 429 is raised at once, for
    the outbox to send the message again when Slack says); `retries=False` for a call on a path
    that must answer fast, e.g. within Slack's 3 s. `logger`: where slack_sdk logs (it writes
    every request and response body at DEBUG; a client that sends a secret gets one that never
    does, `quiet_logger`)."""
    handlers: list[RetryHandler] = []
    if retries:
        handlers = [
            ConnectionErrorRetryHandler(max_retry_count=2),
            ServerErrorRetryHandler(max_retry_count=2),
        ]
        if rate_limit_patience > 0:
            handlers.append(WaitOutRateLimit(rate_limit_patience))
    return WebClient(
        token=token,
        base_url=base_url if base_url.endswith("/") else base_url + "/",
        timeout=timeout,
        retry_handlers=handlers,
        **({"logger": logger} if logger is not None else {}),
    )


def quiet_logger(name: str) -> logging.Logger:
    """A logger for a WebClient whose calls carry a secret (the MFA enrolment modal): set to
    WARNING on itself, so slack_sdk's DEBUG lines with the request and response bodies are never
    made, whatever LOG_LEVEL the root logger has."""
    quiet = logging.getLogger(name)
    quiet.setLevel(logging.WARNING)
    return quiet


def call_slack(client: WebClient, method: str, **kwargs: object) -> dict[str, Any]:
    """One Web API call; any failure becomes NotifyError with Slack's error code (or the HTTP
    status, or the transport error after the client's own retries), and a 429's Retry-After."""
    try:
        return dict(getattr(client, method)(**kwargs).data)
    except Exception as exc:  # SlackApiError, or transport errors after the client's own retries
        failure = slack_failure(exc)
        if failure is None:
            raise NotifyError(f"network_error:{type(exc).__name__}") from None
        raise NotifyError(failure.label, retry_after=failure.retry_after) from None


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
