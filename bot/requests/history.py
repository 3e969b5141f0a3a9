"""A request's history record: the fields `sfox-bot history --format json` and `show` print, and
the intake API's `GET /api/v1/requests/{id}` answers (one encoding for all)."""

from __future__ import annotations

from bot.store.records import RequestRecord

HISTORY_FIELDS = (
    "id",
    "sfox_user_id",
    "status",
    "reason",
    "requested_by",
    "approved_by",
    "denied_by",
    "channel_id",
    "message_ts",
    "created_at",
    "decided_at",
    "completed_at",
    "http_status",
    "error",
    "balances",
    "batch_id",
    "run_at",  # when a request asked with `--at` runs (issue 19), None for one that runs at once
    "watch_read_at",  # a watch's last balance read (issue 19)
    "requested_via",  # the system that asked through the intake API (issue 20), None for a person
)


def history_row(record: RequestRecord) -> dict[str, object]:
    from bot.sfox.balances import history_balances

    data = record.as_dict()
    data["balances"] = history_balances(record.balances)
    return {name: data[name] for name in HISTORY_FIELDS}
