"""What a watch (issue 19) says in Slack: the requester's answers, the DMs' words and their
buttons (Watch on a blocked request's DM, Stop watching on a watch's), in one place.

The buttons carry the request's id, like the card's, but sit in a block of their own id
(`watch_block_id`), never a card's: a click on a DM is never taken for a click on a lost card.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from bot.slack.blocks import code, escape, mention, slack_date
from bot.store.records import RequestRecord

WATCH = "sfox_watch"
STOP_WATCHING = "sfox_stop_watching"
WATCH_ACTIONS = (WATCH, STOP_WATCHING)


def watch_block_id(request_id: int) -> str:
    return f"sfox_watch_{request_id}"


def every(interval: timedelta) -> str:
    """`15 min`, `2 h`, `30 s`: a watch's interval as people say it."""
    seconds = interval.total_seconds()
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{int(seconds // 3600)} h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{int(seconds // 60)} min"
    return f"{seconds:g} s"


def watching_line(record: RequestRecord, interval: timedelta | None = None) -> str:
    """`watching since …, last read …, until …`: where a watch stands (status, list, Home, DM)."""
    parts = [f"last read {slack_date(record.watch_read_at)}" if record.watch_read_at else "not read yet"]
    if interval is not None:
        parts.insert(0, f"every {every(interval)}")
    parts.append(f"until {slack_date(record.expires_at)}")
    return ", ".join(parts)


def watching_answer(record: RequestRecord, funds: str, interval: timedelta) -> str:
    """The requester's answer when a request becomes a watch (the command, the Watch button)."""
    return (
        f":eyes: {code(record.sfox_user_id)} still holds funds on sFOX ({escape(funds, 600)}), so no card "
        f"was posted yet. I am watching its balances (request #{record.id}): every {every(interval)} "
        f"until {slack_date(record.expires_at)}. When every balance reads zero I post the approval card "
        "and send you a link; I sent you a DM with a *Stop watching* button."
    )


def blocked_watch_hint() -> str:
    """Added to a blocked request's answer: how to watch instead of asking again later."""
    return (
        " Or let me watch the balances and post the card once they read zero: press *Watch* in the DM "
        "I sent you, or ask again with `--when-empty`."
    )


def watch_button(request_id: int) -> dict[str, Any]:
    return {
        "type": "button",
        "action_id": WATCH,
        "style": "primary",
        "text": {"type": "plain_text", "text": "Watch"},
        "value": str(request_id),
    }


def stop_button(request_id: int) -> dict[str, Any]:
    return {
        "type": "button",
        "action_id": STOP_WATCHING,
        "text": {"type": "plain_text", "text": "Stop watching"},
        "value": str(request_id),
        "confirm": {
            "title": {"type": "plain_text", "text": "Stop watching?"},
            "text": {"type": "mrkdwn", "text": "No card will be posted; ask again when the funds are gone."},
            "confirm": {"type": "plain_text", "text": "Stop"},
            "deny": {"type": "plain_text", "text": "Keep watching"},
        },
    }


def dm_blocks(text: str, button: dict[str, Any]) -> list[dict[str, Any]]:
    """A DM's text with one button under it."""
    return [
        {"type": "section", "text": {"type": "mrkdwn", "text": text[:3000]}},
        {"type": "actions", "block_id": watch_block_id(int(button["value"])), "elements": [button]},
    ]


def dm_text(record: RequestRecord, status: str, subject: str) -> str | None:
    """A watch's DM (by the `status` it was owed with), or None for any other DM."""
    if status == "watching":
        return (
            f":eyes: {subject} is being watched: I read its balances until {slack_date(record.expires_at)} "
            "and post the approval card when every one reads zero. *Stop watching* ends it."
        )
    if status == "watch_cleared":
        return f":white_check_mark: {subject}: every balance now reads zero, so its approval card is posted."
    if status == "watch_cancelled":
        return f":heavy_multiplication_x: {subject}: watching was stopped by {mention(record.denied_by)}."
    return None


def expired_error(span: timedelta) -> str:
    days = max(1, round(span.total_seconds() / 86400))
    return (
        f"the balances did not reach zero within {days} day(s) of watching; no card was posted and "
        "nothing was sent to sFOX. Ask again once the funds are withdrawn"
    )
