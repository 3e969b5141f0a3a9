"""`/sfox-deactivate help | status <request id or sFOX user id> | list`: private answers that
read the database and change nothing (issue 13).

Subcommands are dispatched through `SUBCOMMANDS` (name → function), so another capability adds
its own (e.g. `batch`) with one line. A first word that is not a subcommand is an sFOX user id,
as before. `status` and `list` show who is being deactivated, so they are for approvers only.
"""

from __future__ import annotations

from collections.abc import Callable, Container
from dataclasses import dataclass

from bot.policy import rules
from bot.sfox.userid import InvalidUserId, parse_user_id
from bot.slack.blocks import STATUS_LINES, code, escape, mention, mentions, run_date, slack_date
from bot.slack.watch_blocks import watching_line
from bot.store.db import Store
from bot.store.records import RequestRecord
from bot.store.schema import HELD_STATUSES, WATCHING

LIST_LIMIT = 25


@dataclass(frozen=True)
class Context:
    store: Store
    approvers: Container[str]
    require_reason: bool = False


Subcommand = Callable[[Context, str, str], str]


def help_text(ctx: Context, user: str, args: str) -> str:
    reason = "a reason (required here)" if ctx.require_reason else "an optional reason"
    return "\n".join(
        [
            "*`/sfox-deactivate`* asks a second approver to deactivate an sFOX account (permanent).",
            f"• `/sfox-deactivate <sfox_user_id> [reason]`: request it, with {reason}; a card is posted "
            "here and another approver approves or denies it.",
            "• `/sfox-deactivate <sfox_user_id> [reason] --when-empty`: if the account still holds funds, "
            "watch its balances and post the card once they all read zero.",
            "• `/sfox-deactivate status <request id or sFOX user id>`: where a request stands.",
            "• `/sfox-deactivate list`: the open requests.",
            "• `/sfox-deactivate mfa`: set up the authenticator code *Approve* asks for where a second "
            "factor is required.",
            "• `/sfox-deactivate help`: this text.",
            "The App Home tab lists what waits for you. Every answer here is visible only to you.",
        ]
    )


def status(ctx: Context, user: str, args: str) -> str:
    refusal = rules.approver_refusal(ctx.approvers, user, rules.Step.READ)
    if refusal is not None:
        return refusal.text
    token = args.strip().lstrip("#")
    if not token:
        return "Which request? Usage: `/sfox-deactivate status &lt;request id or sFOX user id&gt;`"
    if token.isdigit() and len(token) <= 12:
        record = ctx.store.get(int(token))
        if record is None:
            return f"There is no request #{int(token)}."
        return describe(record)
    try:
        user_id = parse_user_id(token)
    except InvalidUserId as exc:
        return f":warning: {code(token, 80)} is neither a request id nor a valid sFOX user id: {escape(str(exc))}."
    found = list(ctx.store.history(limit=5, user=user_id))
    found = [r for r in found if r.sfox_user_id == user_id]
    if not found:
        return f"No request was ever made for {code(user_id)}."
    lines = [describe(found[0])]
    if len(found) > 1:
        lines.append("Earlier: " + ", ".join(f"#{r.id} {r.status}" for r in found[1:]))
    return "\n".join(lines)


def list_open(ctx: Context, user: str, args: str) -> str:
    refusal = rules.approver_refusal(ctx.approvers, user, rules.Step.READ)
    if refusal is not None:
        return refusal.text
    open_requests: list[RequestRecord] = []
    for status_name in HELD_STATUSES:  # watches too (bot/requests/watching.py)
        open_requests += list(ctx.store.history(limit=LIST_LIMIT, status=status_name))
    open_requests.sort(key=lambda r: r.id)
    if not open_requests:
        return "No open requests."
    lines = [f"*Open requests* ({len(open_requests)}):"]
    lines += [_line(r) for r in open_requests[:LIST_LIMIT]]
    return "\n".join(lines)


def describe(record: RequestRecord) -> str:
    name = f" ({escape(record.target_name, 100)})" if record.target_name else ""
    lines = [
        f"*Request #{record.id}*: {code(record.sfox_user_id)}{name}, {STATUS_LINES[record.status]}",
        f"Requested by {mention(record.requested_by)} {slack_date(record.created_at)}"
        + (f": {escape(record.reason, 300)}" if record.reason else ""),
    ]
    if record.status == "pending":
        lines.append(f"{rules.tally(record)}; expires {slack_date(record.expires_at)}")
    elif record.status == WATCHING:
        lines.append(f"Watching its balances: {watching_line(record)}")
    elif record.approved_by:
        lines.append(f"Approved by {mentions(record.approved_by)}")
    if record.run_at is not None and record.status in ("pending", "scheduled"):
        lines.append(f"Runs {run_date(record.run_at)}, not before")
    if record.status in ("denied", "cancelled") and record.denied_by:
        why = f": {escape(record.deny_reason, 300)}" if record.deny_reason else ""
        verb = "Denied" if record.status == "denied" else "Cancelled"
        lines.append(f"{verb} by {mention(record.denied_by)}{why}")
    if record.error and record.status in ("failed", "unknown", "blocked"):
        lines.append(escape(record.error, 400))
    return "\n".join(lines)


def _line(record: RequestRecord) -> str:
    if record.status == WATCHING:
        return (
            f"#{record.id} {code(record.sfox_user_id)}: watching, requested by "
            f"{mention(record.requested_by)}, {watching_line(record)}"
        )
    runs = (
        f", runs {run_date(record.run_at)}"
        if record.run_at and record.status in ("pending", "scheduled")
        else ""
    )
    return (
        f"#{record.id} {code(record.sfox_user_id)}: {record.status}, requested by "
        f"{mention(record.requested_by)}, {rules.tally(record, short=True)}{runs}"
    )


SUBCOMMANDS: dict[str, Subcommand] = {"help": help_text, "status": status, "list": list_open}


def dispatch(ctx: Context, user: str, text: str) -> str | None:
    """The private answer of a subcommand, or None when `text` is not one (a deactivation)."""
    first, rest = [*(text or "").split(None, 1), "", ""][:2]
    handler = SUBCOMMANDS.get(first.lower())
    return handler(ctx, user, rest) if handler else None
