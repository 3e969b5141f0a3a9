"""What the bot says in a scheduled request's thread (issue 19): approved for a time, cancelled
before it, run late after a restart, stopped at the time by funds. The card itself (its "Runs"
field, its status line and Cancel button) is rendered by bot/slack/blocks.py."""

from __future__ import annotations

from datetime import timedelta

from bot.slack.blocks import code, escape, mention, mentions, run_date
from bot.store.records import RequestRecord


def reply_scheduled(record: RequestRecord, approvers: tuple[str, ...]) -> str:
    return (
        f":calendar: Approved by {mentions(approvers)}. {code(record.sfox_user_id)} will be deactivated "
        f"{run_date(record.run_at)}, not before; nothing is sent to sFOX until then, and its balances are "
        f"read again at the time. {mention(record.requested_by)} or an approver can still cancel it on the card."
    )


def reply_cancelled(record: RequestRecord, actor: str, reason: str | None) -> str:
    why = f" Reason: {escape(reason, 600)}" if reason else ""
    return (
        f":heavy_multiplication_x: {mention(actor)} cancelled the deactivation of {code(record.sfox_user_id)} "
        f"scheduled {run_date(record.run_at)}. Nothing was sent to sFOX.{why}"
    )


def reply_late(record: RequestRecord, late: timedelta) -> str:
    return (
        f":alarm_clock: Deactivating {code(record.sfox_user_id)} now, {describe_delay(late)} after its time "
        f"({run_date(record.run_at)}): the bot was not running then, or stopped before it sent it. "
        "It is sent once, late rather than never."
    )


def reply_funds_at_time(record: RequestRecord, funds: str) -> str:
    return (
        f":moneybag: {mention(record.requested_by)} at its time {code(record.sfox_user_id)} still holds funds "
        f"on sFOX: {escape(funds, 600)}. Nothing was sent: sFOX refuses to deactivate an account with "
        "funds. The user must withdraw every balance first; then request again."
    )


def describe_delay(late: timedelta) -> str:
    """`42 s`, `7 min`, `3 h 5 min`, `2 d 4 h`: how late, to the unit a reader cares about."""
    seconds = max(0, int(late.total_seconds()))
    if seconds < 60:
        return f"{seconds} s"
    minutes, hours, days = seconds // 60, seconds // 3600, seconds // 86400
    if hours == 0:
        return f"{minutes} min"
    if days == 0:
        return f"{hours} h {minutes % 60} min" if minutes % 60 else f"{hours} h"
    return f"{days} d {hours % 24} h" if hours % 24 else f"{days} d"
