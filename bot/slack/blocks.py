"""Everything the bot says in Slack: the approval card, thread replies and ephemeral answers.

Any text that came from a user or from sFOX goes through `escape`, which neutralizes Slack's
control sequences (`<!channel>`, `<@U…>`, links) and cuts it to a length that keeps every block
under Slack's limits. Mentions are only ever built from validated Slack user ids.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from bot.policy import rules
from bot.sfox import balances
from bot.slack.ids import SLACK_USER_ID
from bot.store.records import RequestRecord

APPROVE = "sfox_approve"
DENY = "sfox_deny"
RETRY = "sfox_retry"
ACTION_IDS = (APPROVE, DENY, RETRY)

# Slack's limits: section text 3000, a field 2000, header 150, fallback text 40000.
SECTION_LIMIT = 3000
FIELD_LIMIT = 2000
HEADER_LIMIT = 150

STATUS_LINES = {
    "pending": ":hourglass_flowing_sand: Waiting for approval",
    "denied": ":no_entry_sign: Denied",
    "expired": ":alarm_clock: Expired without approval",
    "executing": ":arrows_counterclockwise: Approved, deactivating on sFOX…",
    "unknown": ":grey_question: Outcome unknown, checking with sFOX",
    "succeeded": ":white_check_mark: Deactivated on sFOX",
    "failed": ":x: Not deactivated",
    "blocked": ":moneybag: Not asked: the account holds funds",
    # Before it ran: a scheduled request, a batch's user not yet started, or a watch stopped.
    "cancelled": ":heavy_multiplication_x: Cancelled before it ran",
    "scheduled": ":calendar: Approved, scheduled",
    "watching": ":eyes: Watching the balances: the card comes when they read zero",
}


def escape(text: str | None, limit: int = 500) -> str:
    """Make untrusted text inert in Slack mrkdwn and bounded in length: `limit` bounds the escaped
    result, so `&` → `&amp;` cannot push a block past Slack's limits, and no entity is cut in half."""
    if not text:
        return ""
    pieces = [_ENTITIES.get(c) or (c if c.isprintable() or c == "\n" else " ") for c in text]
    if sum(len(p) for p in pieces) <= limit:
        return "".join(pieces)
    kept: list[str] = []
    size = 0
    for piece in pieces:
        if size + len(piece) > limit - 1:
            break
        kept.append(piece)
        size += len(piece)
    return "".join(kept).rstrip() + "…"


_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}


def code(text: str | None, limit: int = 200) -> str:
    """Untrusted text shown as inline code (backticks inside would end the span)."""
    return "`" + escape(text, limit).replace("`", "'") + "`"


def mention(user_id: str | None) -> str:
    if user_id and SLACK_USER_ID.match(user_id):
        return f"<@{user_id}>"
    return escape(user_id or "someone", 40)


def mentions(user_ids: tuple[str, ...] | list[str]) -> str:
    return ", ".join(mention(u) for u in user_ids) or "nobody"


def slack_date(when: datetime | None, joiner: str = " ") -> str:
    """`when` as Slack shows a date: in each reader's own time zone, UTC as the fallback text."""
    if when is None:
        return "—"
    fallback = when.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"<!date^{int(when.timestamp())}^{{date_short_pretty}}{joiner}{{time}}|{fallback}>"


def run_date(when: datetime | None) -> str:
    """When a scheduled deactivation runs (`… at 17:00`), in each reader's local time."""
    return slack_date(when, " at ")


def card(record: RequestRecord) -> list[dict[str, Any]]:
    """The approval card for the request's current state; buttons only while they can do something."""
    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {"type": "plain_text", "text": f"sFOX account deactivation #{record.id}"[:HEADER_LIMIT]},
        },
        {"type": "section", "fields": _fields(record)},
    ]
    balance_line = balances.card_line(record.balances)
    if balance_line:
        blocks.append(
            {"type": "context", "elements": [{"type": "mrkdwn", "text": escape(balance_line, 600)}]}
        )
    blocks.append(
        {"type": "section", "text": {"type": "mrkdwn", "text": status_line(record)[:SECTION_LIMIT]}}
    )
    if record.status == "pending":
        blocks.append(
            {
                "type": "context",
                "elements": [
                    {
                        "type": "mrkdwn",
                        "text": "Deactivation is *permanent*: sFOX has no way to reactivate an account. "
                        + rules.who_may_approve(record),
                    }
                ],
            }
        )
        blocks.append(_actions(record, [approve_button(record), deny_button(record)]))
    elif record.status == "scheduled":
        blocks.append(
            {
                "type": "context",
                "elements": [
                    {
                        "type": "mrkdwn",
                        "text": "Nothing is sent to sFOX before then; its balances are read again at the "
                        "time, and funds then stop it. Until then the requester or an approver can cancel.",
                    }
                ],
            }
        )
        blocks.append(_actions(record, [cancel_button(record)]))
    elif record.status == "failed" and record.retryable:
        blocks.append(_actions(record, [_retry_button(record)]))
    return blocks


def card_text(record: RequestRecord) -> str:
    """Notification fallback text for the card."""
    return f"sFOX deactivation #{record.id} of {code(record.sfox_user_id)}: {STATUS_LINES[record.status]}"


def status_line(record: RequestRecord) -> str:
    line = f"*{STATUS_LINES[record.status]}*"
    if record.status == "pending":
        when = f"\nTo run {run_date(record.run_at)}; it can be approved until then." if record.run_at else ""
        return f"{line} ({rules.tally(record)}){when}"
    if record.status == "scheduled":
        return f"*{STATUS_LINES['scheduled']} for {run_date(record.run_at)}* · approved by {mentions(record.approved_by)}"
    if record.status == "cancelled" and record.denied_by:
        why = f": {escape(record.deny_reason, 600)}" if record.deny_reason else ""
        return f"{line} by {mention(record.denied_by)}{why}"
    if record.status == "denied":
        why = f": {escape(record.deny_reason, 600)}" if record.deny_reason else ""
        return f"{line} by {mention(record.denied_by)}{why}"
    if record.status in ("executing", "unknown", "succeeded") or (
        record.status == "failed" and record.approved_by
    ):
        line += f" · approved by {mentions(record.approved_by)}"
    if record.status in ("failed", "unknown", "blocked") and record.error:
        line += f"\n{_status_code(record)}{escape(record.error, 800)}"
    if record.status == "failed" and record.retryable:
        line += "\nAn approver other than the requester can retry."
    return line


def funds_text(check: balances.BalanceCheck) -> str:
    """`USD 100 (10 held), BTC 0.5`: what a blocked request's target holds."""
    return balances.describe_funds(check.funds)


def blocked_error(funds: str) -> str:
    return f"the account holds funds ({funds}); sFOX refuses to deactivate an account with funds"


def blocked_answer(record: RequestRecord, funds: str) -> str:
    return (
        f":moneybag: {code(record.sfox_user_id)} still holds funds on sFOX: {escape(funds, 600)}. "
        "sFOX refuses to deactivate an account with funds, so no card was posted and nobody was asked "
        f"to approve (recorded as request #{record.id}, blocked). "
        "The user must withdraw every balance first; then request again."
    )


def reply_denied(record: RequestRecord, actor: str, reason: str | None = None) -> str:
    why = f" Reason: {escape(reason, 600)}" if reason else ""
    if rules.is_requester(record, actor):  # the requester's own Deny is a cancel
        return (
            f"{mention(actor)} cancelled this request. {code(record.sfox_user_id)} was not deactivated.{why}"
        )
    return (
        f"{mention(actor)} denied this request from {mention(record.requested_by)}. "
        f"{code(record.sfox_user_id)} was not deactivated.{why}"
    )


def reply_succeeded(record: RequestRecord, *, confirmed_by_lookup: bool = False) -> str:
    how = " (confirmed: sFOX no longer knows the account)" if confirmed_by_lookup else ""
    return (
        f":white_check_mark: {mention(record.requested_by)} sFOX account {code(record.sfox_user_id)} "
        f"is deactivated{how}."
    )


def reply_failed(record: RequestRecord, status: int | None, error: str, retryable: bool) -> str:
    text = (
        f":x: {mention(record.requested_by)} sFOX did not deactivate {code(record.sfox_user_id)}: "
        f"{_code_prefix(status)}{escape(error, 800)}"
    )
    if status == 422:
        text += "\nThe user must withdraw every balance first; then request again."
    if retryable:
        text += "\nNothing was changed on sFOX. An approver can press *Retry* on the card."
    return text


def reply_unknown(record: RequestRecord, error: str) -> str:
    return (
        f":grey_question: {mention(record.requested_by)} the deactivation of {code(record.sfox_user_id)} "
        f"was sent but no clear answer came back ({escape(error, 400)}). "
        "I will check with sFOX and report here; it will not be sent twice."
    )


def reply_never_sent(record: RequestRecord) -> str:
    return (
        f":x: {mention(record.requested_by)} the bot stopped after the approval and before it sent the "
        f"deactivation of {code(record.sfox_user_id)} to sFOX. Nothing was sent, and sFOX confirms the "
        "account still exists. An approver other than the requester can press *Retry* on the card."
    )


def reply_card_adopted(record: RequestRecord) -> str:
    return (
        f":information_source: The bot stopped right after posting this card, before it could note "
        f"where it was, so request #{record.id} was closed meanwhile ({record.status}"
        f"{': ' + escape(record.error, 300) if record.error else ''}). Nothing was sent to sFOX from "
        f"this card. {mention(record.requested_by)} can request {code(record.sfox_user_id)} again."
    )


def reply_still_present(record: RequestRecord) -> str:
    return (
        f":x: {mention(record.requested_by)} checked with sFOX: {code(record.sfox_user_id)} still exists, "
        "so the deactivation did not happen. An approver can press *Retry* on the card."
    )


def requested_by_text(record: RequestRecord) -> str:
    """Who asked, as the card says it: the person, the system they asked through ("@alice via
    partner-backoffice", issue 32), or the system alone when it named nobody ("via …")."""
    if not record.requested_via:
        return mention(record.requested_by)
    via = f"via {escape(record.requested_via, 100)}"
    if SLACK_USER_ID.fullmatch(record.requested_by):
        return f"{mention(record.requested_by)} {via}"
    return via


def _fields(record: RequestRecord) -> list[dict[str, str]]:
    pairs = [
        ("sFOX user", code(record.sfox_user_id)),
        ("Name", escape(record.target_name, 150) or "—"),
        ("E-mail", escape(record.target_email, 150) or "—"),
        ("sFOX status", escape(record.target_status, 40) or "—"),
        ("Requested by", requested_by_text(record)),
        (
            "Expires" if record.status == "pending" else "Requested",
            slack_date(record.expires_at if record.status == "pending" else record.created_at),
        ),
        ("Reason", escape(record.reason, 1000) or "_none given_"),
    ]
    if record.run_at is not None:
        pairs.insert(5, ("Runs", run_date(record.run_at)))
    return [{"type": "mrkdwn", "text": f"*{label}*\n{value}"[:FIELD_LIMIT]} for label, value in pairs]


def card_block_id(request_id: int) -> str:
    """The block id of a card's buttons: it names the request, so a card can be recognised."""
    return f"sfox_request_{request_id}"


def _actions(record: RequestRecord, elements: list[dict[str, Any]]) -> dict[str, Any]:
    return {"type": "actions", "block_id": card_block_id(record.id), "elements": elements}


def approve_button(record: RequestRecord, action_id: str = APPROVE) -> dict[str, Any]:
    """Approve, behind a "this is permanent" confirmation (the card's, or the App Home's)."""
    return {
        "type": "button",
        "action_id": action_id,
        "style": "primary",
        "text": {"type": "plain_text", "text": "Approve"},
        "value": str(record.id),
        "confirm": {
            "title": {"type": "plain_text", "text": "Deactivate permanently?"},
            "text": {
                "type": "mrkdwn",
                "text": f"sFOX account {code(record.sfox_user_id, 120)} will be deactivated. "
                "This cannot be undone: sFOX has no reactivation.",
            },
            "confirm": {"type": "plain_text", "text": "Deactivate"},
            "deny": {"type": "plain_text", "text": "Cancel"},
            "style": "danger",
        },
    }


def deny_button(record: RequestRecord, action_id: str = DENY) -> dict[str, Any]:
    return {
        "type": "button",
        "action_id": action_id,
        "style": "danger",
        "text": {"type": "plain_text", "text": "Deny"},
        "value": str(record.id),
    }


def cancel_button(record: RequestRecord) -> dict[str, Any]:
    """A scheduled request's Cancel: the card's Deny action (the requester's or an approver's)."""
    return {
        "type": "button",
        "action_id": DENY,
        "style": "danger",
        "text": {"type": "plain_text", "text": "Cancel"},
        "value": str(record.id),
        "confirm": {
            "title": {"type": "plain_text", "text": "Cancel the deactivation?"},
            "text": {"type": "mrkdwn", "text": f"{code(record.sfox_user_id, 120)} will not be deactivated."},
            "confirm": {"type": "plain_text", "text": "Cancel it"},
            "deny": {"type": "plain_text", "text": "Keep it"},
        },
    }


def _retry_button(record: RequestRecord) -> dict[str, Any]:
    return {
        "type": "button",
        "action_id": RETRY,
        "text": {"type": "plain_text", "text": "Retry deactivation"},
        "value": str(record.id),
        "confirm": {
            "title": {"type": "plain_text", "text": "Retry the deactivation?"},
            "text": {"type": "mrkdwn", "text": "sFOX will be asked once more. This cannot be undone."},
            "confirm": {"type": "plain_text", "text": "Retry"},
            "deny": {"type": "plain_text", "text": "Cancel"},
        },
    }


def _status_code(record: RequestRecord) -> str:
    return _code_prefix(record.http_status)


def _code_prefix(status: int | None) -> str:
    return f"HTTP {status}: " if status else ""
