"""What a batch looks like in Slack: its card (counts, the first users, progress, buttons), the
thread messages, and the CSV upload. Rendering is pure; `BatchSlack` does the Web API calls and
turns their failures into NotifyError through bot/slack/calls.py, as every Slack call does."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from slack_sdk import WebClient

from bot.policy import rules
from bot.slack.blocks import (
    HEADER_LIMIT,
    SECTION_LIMIT,
    code,
    escape,
    mention,
    mentions,
    run_date,
    slack_date,
)
from bot.slack.calls import call_slack, post_card, post_in_thread, update_card
from bot.store.batch_base import BatchRecord

log = logging.getLogger("sfox_bot.batch")

BATCH_APPROVE = "sfox_batch_approve"
BATCH_DENY = "sfox_batch_deny"
BATCH_PAUSE = "sfox_batch_pause"
BATCH_RESUME = "sfox_batch_resume"
BATCH_CANCEL = "sfox_batch_cancel"
BATCH_ACTIONS = (BATCH_APPROVE, BATCH_DENY, BATCH_PAUSE, BATCH_RESUME, BATCH_CANCEL)
PREVIEW = 10
BAR_WIDTH = 20

STATUS_LINES = {
    "pending": ":hourglass_flowing_sand: Waiting for approval",
    "denied": ":no_entry_sign: Denied",
    "expired": ":alarm_clock: Expired without approval",
    "scheduled": ":calendar: Approved, scheduled",
    "running": ":arrows_counterclockwise: Approved, deactivating on sFOX…",
    "paused": ":double_vertical_bar: Paused",
    "cancelled": ":heavy_multiplication_x: Cancelled; finishing the users already started",
    "done": ":checkered_flag: Finished",
    "failed": ":x: Closed: the card could not be posted",
}


def progress(counts: dict[str, int]) -> tuple[int, int, int, int, int]:
    """(total, done, failed, cancelled, remaining) from a batch's per-status counts."""
    total = sum(counts.values())
    done = counts.get("succeeded", 0)
    failed = counts.get("failed", 0)
    cancelled = counts.get("cancelled", 0) + counts.get("denied", 0) + counts.get("expired", 0)
    return total, done, failed, cancelled, total - done - failed - cancelled


def progress_line(counts: dict[str, int]) -> str:
    total, done, failed, cancelled, remaining = progress(counts)
    settled = total - remaining
    filled = round(BAR_WIDTH * settled / total) if total else BAR_WIDTH
    bar = "█" * filled + "░" * (BAR_WIDTH - filled)
    pct = round(100 * settled / total) if total else 100
    line = f"`{bar}` {pct}% · done {done} · failed {failed} · remaining {remaining}"
    return line + (f" · cancelled {cancelled}" if cancelled else "")


def card(
    batch: BatchRecord, counts: dict[str, int], preview: Sequence[tuple[str, str | None, str | None]]
) -> list[dict[str, Any]]:
    total = sum(counts.values())
    left = batch.left_out
    facts = [
        f"*{total}* to deactivate",
        f"*{len(left['unknown'])}* unknown on sFOX (left out)",
        f"*{len(left['funds'])}* holding funds (left out)",
    ]
    if left["lookup_failed"]:
        facts.append(f"*{len(left['lookup_failed'])}* could not be looked up (left out)")
    lines = [
        " · ".join(facts),
        f"Requested by {mention(batch.requested_by)} · "
        + (
            f"runs {run_date(batch.run_at)}, not before"
            if batch.run_at is not None
            else f"expires {slack_date(batch.expires_at)}"
        ),
        f"Reason: {escape(batch.reason, 500) or '_none given_'}",
    ]
    if batch.balances_skipped:
        lines.append(
            "Balances were *not read*: the batch is larger than SFOX_BATCH_BALANCE_MAX "
            "(sFOX still refuses any account that holds funds, with a 422)."
        )
    names = [
        f"• {escape(name, 80) or '_no name_'} ({escape(email, 80) or 'no e-mail'}) {code(uid, 60)}"
        for uid, name, email in preview[:PREVIEW]
    ]
    if total > len(names):
        names.append(f"… and {total - len(names)} more (the full list is in the thread)")
    status = f"*{STATUS_LINES.get(batch.status, batch.status)}*"
    if batch.status == "scheduled":
        status = f"*{STATUS_LINES['scheduled']} for {run_date(batch.run_at)}*"
    if batch.status == "pending":
        status += f" ({rules.tally(batch)})"
    elif batch.status == "denied":
        status += f" by {mention(batch.denied_by)}"
    elif batch.approved_by:
        status += f" · approved by {mentions(list(batch.approved_by))}"
    if batch.status in ("paused", "cancelled") and batch.stopped_by:
        status += f" by {mention(batch.stopped_by)}"
    if batch.status in ("running", "paused", "cancelled", "done"):
        status += "\n" + progress_line(counts)
    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {"type": "plain_text", "text": f"sFOX batch deactivation #{batch.id}"[:HEADER_LIMIT]},
        },
        {
            "type": "section",
            "block_id": card_block_id(batch.id),
            "text": {"type": "mrkdwn", "text": "\n".join(lines)[:SECTION_LIMIT]},
        },
        {
            "type": "section",
            "text": {"type": "mrkdwn", "text": ("\n".join(names) or "_nobody_")[:SECTION_LIMIT]},
        },
        {"type": "section", "text": {"type": "mrkdwn", "text": status[:SECTION_LIMIT]}},
    ]
    buttons: list[dict[str, Any]] = []
    if batch.status == "pending":
        blocks.append(
            {
                "type": "context",
                "elements": [
                    {
                        "type": "mrkdwn",
                        "text": "Deactivation is *permanent*. One approval covers exactly the users "
                        "listed. " + rules.who_may_approve(batch),
                    }
                ],
            }
        )
        buttons = [
            _button("Approve", BATCH_APPROVE, batch, "primary"),
            _button("Deny", BATCH_DENY, batch, "danger"),
        ]
    elif batch.status == "scheduled":
        buttons = [_button("Cancel", BATCH_CANCEL, batch, "danger")]
    elif batch.status == "running":
        buttons = [_button("Pause", BATCH_PAUSE, batch), _button("Cancel", BATCH_CANCEL, batch, "danger")]
    elif batch.status == "paused":
        buttons = [
            _button("Resume", BATCH_RESUME, batch, "primary"),
            _button("Cancel", BATCH_CANCEL, batch, "danger"),
        ]
    if buttons:
        blocks.append({"type": "actions", "block_id": f"sfox_batch_actions_{batch.id}", "elements": buttons})
    return blocks


def card_text(batch: BatchRecord, counts: dict[str, int]) -> str:
    return f"sFOX batch deactivation #{batch.id} ({sum(counts.values())} users): {STATUS_LINES.get(batch.status, batch.status)}"


def card_block_id(batch_id: int) -> str:
    return f"sfox_batch_{batch_id}"


def _button(label: str, action_id: str, batch: BatchRecord, style: str | None = None) -> dict[str, Any]:
    button: dict[str, Any] = {
        "type": "button",
        "text": {"type": "plain_text", "text": label},
        "action_id": action_id,
        "value": str(batch.id),
    }
    if style:
        button["style"] = style
    if action_id == BATCH_APPROVE:
        button["confirm"] = {
            "title": {"type": "plain_text", "text": "Deactivate these accounts?"},
            "text": {"type": "mrkdwn", "text": f"Batch #{batch.id}: this cannot be undone."},
            "confirm": {"type": "plain_text", "text": "Approve"},
            "deny": {"type": "plain_text", "text": "Cancel"},
        }
    return button


class BatchSlack:
    """The Slack calls a batch makes, through the same helpers as a request's (bot/slack/calls.py).
    Each raises NotifyError with Slack's error code."""

    def __init__(self, client: WebClient) -> None:
        self.client = client

    def post_card(
        self,
        batch: BatchRecord,
        counts: dict[str, int],
        preview: Sequence[tuple[str, str | None, str | None]],
    ) -> str:
        return post_card(
            self.client, batch.channel_id, card_text(batch, counts), card(batch, counts, preview)
        )

    def update_card(
        self,
        batch: BatchRecord,
        counts: dict[str, int],
        preview: Sequence[tuple[str, str | None, str | None]],
    ) -> None:
        update_card(
            self.client,
            batch.channel_id,
            batch.message_ts,
            card_text(batch, counts),
            card(batch, counts, preview),
        )

    def reply(self, batch: BatchRecord, text: str) -> None:
        post_in_thread(self.client, batch.channel_id, batch.message_ts, text)

    def upload(self, batch: BatchRecord, filename: str, content: str, title: str) -> None:
        """files.getUploadURLExternal, the upload itself, files.completeUploadExternal (scope
        files:write), shared in the card's thread."""
        call_slack(
            self.client,
            "files_upload_v2",
            channel=batch.channel_id,
            thread_ts=batch.message_ts,
            filename=filename,
            title=title,
            content=content,
        )
