"""A finished batch in words: the summary posted in its thread, and the outcome CSV uploaded
beside it (and written by `sfox-bot batch`)."""

from __future__ import annotations

import csv
import io

from bot.slack.blocks import code, escape
from bot.store.batch_base import BatchRecord
from bot.store.records import RequestRecord

# Failures named in the summary; the CSV has them all.
LISTED_FAILURES = 30


def summary_text(batch: BatchRecord, rows: list[RequestRecord], counts: dict[str, int]) -> str:
    done = counts.get("succeeded", 0)
    failed = [r for r in rows if r.status == "failed"]
    others = {s: n for s, n in counts.items() if s not in ("succeeded", "failed")}
    text = f"*Batch #{batch.id} finished*: {done} deactivated, {len(failed)} failed"
    for status, n in sorted(others.items()):
        text += f", {n} {status}"
    text += f" (of {len(rows)})."
    if failed:
        text += "\nFailed:"
        for record in failed[:LISTED_FAILURES]:
            text += (
                f"\n• {code(record.sfox_user_id, 60)}: {escape(record.error or 'no reason recorded', 200)}"
            )
        if len(failed) > LISTED_FAILURES:
            text += f"\n… and {len(failed) - LISTED_FAILURES} more (see the CSV)."
    return text


OUTCOME_FIELDS = (
    "request_id",
    "sfox_user_id",
    "name",
    "email",
    "status",
    "http_status",
    "error",
    "completed_at",
)


def outcome_csv(rows: list[RequestRecord]) -> str:
    """Every user's outcome: the file uploaded at the end of a batch, and what
    `sfox-bot history --batch ID --format csv` gives too."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(OUTCOME_FIELDS)
    for r in rows:
        writer.writerow(
            [
                r.id,
                _cell(r.sfox_user_id),
                _cell(r.target_name or ""),
                _cell(r.target_email or ""),
                r.status,
                r.http_status or "",
                _cell(r.error or ""),
                r.completed_at.isoformat() if r.completed_at else "",
            ]
        )
    return out.getvalue()


def _cell(text: str) -> str:
    """A spreadsheet must not run a cell as a formula."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text
