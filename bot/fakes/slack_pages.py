"""`conversations.history` and `conversations.replies` as Slack pages them: at most `limit` messages
a page (and, as Slack warns, maybe fewer: the fake never gives more than its `page_size`), with
`has_more` and `response_metadata.next_cursor` leading to the next page; an empty `next_cursor`
means there is none. A cursor Slack did not give is `invalid_cursor`.

History is newest first, between `oldest` and `latest` (exclusive unless `inclusive`); replies are
the thread's parent then its replies, oldest first.
"""

from __future__ import annotations

import base64
import binascii
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bot.fakes.slack_api import Message

HISTORY_LIMIT = 100  # Slack's defaults when no `limit` is given
REPLIES_LIMIT = 1000


def history(messages: list[Message], args: dict[str, Any], page_size: int) -> dict[str, Any]:
    inclusive = str(args.get("inclusive", "")).lower() in ("1", "true")
    oldest = float(args.get("oldest") or 0)
    latest = float(args.get("latest") or "inf")

    def within(ts: float) -> bool:
        if inclusive:
            return oldest <= ts <= latest
        return oldest < ts < latest

    found = [
        m
        for m in reversed(messages)
        if m.channel == args.get("channel") and m.thread_ts is None and within(float(m.ts))
    ]
    return _page(found, args, HISTORY_LIMIT, page_size, newest_first=True)


def replies(messages: list[Message], args: dict[str, Any], page_size: int) -> dict[str, Any]:
    parent = args.get("ts")
    found = [m for m in messages if m.channel == args.get("channel") and parent in (m.ts, m.thread_ts)]
    if not any(m.ts == parent and m.thread_ts is None for m in found):
        return {"ok": False, "error": "thread_not_found"}
    return _page(found, args, REPLIES_LIMIT, page_size, newest_first=False, thread=str(parent))


def listed(m: Message, thread: str | None = None) -> dict[str, Any]:
    """A message as the Web API lists it."""
    item: dict[str, Any] = {"type": "message", "user": m.user, "text": m.text, "ts": m.ts}
    if m.bot_id:
        item["bot_id"] = m.bot_id
    if m.blocks:
        item["blocks"] = m.blocks
    if thread is not None:
        item["thread_ts"] = thread
    return item


def _page(
    found: list[Message],
    args: dict[str, Any],
    default_limit: int,
    page_size: int,
    *,
    newest_first: bool,
    thread: str | None = None,
) -> dict[str, Any]:
    cursor = args.get("cursor")
    if cursor:
        start = _decode(str(cursor))
        if start is None:
            return {"ok": False, "error": "invalid_cursor"}
        found = [m for m in found if (float(m.ts) <= start if newest_first else float(m.ts) >= start)]
    size = max(1, min(int(args.get("limit") or default_limit), page_size))
    page, rest = found[:size], found[size:]
    return {
        "ok": True,
        "messages": [listed(m, thread) for m in page],
        "has_more": bool(rest),
        "response_metadata": {"next_cursor": _encode(rest[0].ts) if rest else ""},
    }


def _encode(ts: str) -> str:
    return base64.b64encode(f"next_ts:{ts}".encode()).decode()


def _decode(cursor: str) -> float | None:
    try:
        text = base64.b64decode(cursor, validate=True).decode()
        return float(text.removeprefix("next_ts:")) if text.startswith("next_ts:") else None
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
