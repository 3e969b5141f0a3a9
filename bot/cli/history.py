"""`sfox-bot history` and `sfox-bot show`: the recorded requests as JSON, CSV or a table, and one
request with its full event trail."""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Callable, Iterator
from typing import TextIO

from bot.cli.common import CliError, open_migrated, positive_int
from bot.config import load_settings
from bot.requests.history import HISTORY_FIELDS, history_row
from bot.store.records import RequestRecord


def cmd_history(args: argparse.Namespace) -> int:
    settings = load_settings()
    store = open_migrated(settings)
    fmt = args.format or ("table" if sys.stdout.isatty() else "json")
    if args.batch is not None and fmt == "csv":  # the same file as the one uploaded to the thread
        from bot.cli.batch import write_batch_csv

        write_batch_csv(store, args.batch, sys.stdout)
        return 0
    records = store.history(
        limit=args.limit or None, status=args.status, user=args.user, since=args.since, batch_id=args.batch
    )
    writers: dict[str, Callable[[Iterator[RequestRecord], TextIO], None]] = {
        "json": write_json,
        "csv": write_csv,
        "table": write_table,
    }
    writers[fmt](records, sys.stdout)
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    store = open_migrated(load_settings())
    try:
        batch_id = positive_int(str(args.id)[6:]) if str(args.id).lower().startswith("batch:") else None
        args.id = positive_int(str(args.id)) if batch_id is None else None
    except argparse.ArgumentTypeError as exc:
        raise CliError(f"show: {args.id!r}: {exc} (a request id, or batch:ID)") from None
    if batch_id is not None:
        from bot.cli.batch import show_batch

        if not show_batch(store, batch_id, args.format):
            raise CliError(f"no batch with id {batch_id}")
        return 0
    record = store.get(args.id)
    if record is None:
        raise CliError(f"no request with id {args.id}")
    trail = store.events_for(args.id)
    if args.format == "json":
        out = history_row(record)
        out["events"] = [
            {
                "seq": e.seq,
                "at": e.at.isoformat(),
                "kind": e.kind,
                "actor": e.actor,
                "http_status": e.http_status,
                "duration_ms": e.duration_ms,
                "detail": e.detail,
            }
            for e in trail
        ]
        json.dump(out, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    for key, value in history_row(record).items():
        print(f"{key:>14}  {_flat(value).replace(';', ', ')}")
    print("\nevents:")
    for e in trail:
        parts = [f"#{e.seq:<5}", e.at.strftime("%Y-%m-%d %H:%M:%S"), f"{e.kind:<18}", e.actor or ""]
        if e.http_status is not None:
            parts.append(f"http={e.http_status}")
        if e.duration_ms is not None:
            parts.append(f"{e.duration_ms}ms")
        if e.detail:
            parts.append(e.detail)
        print("  " + "  ".join(p for p in parts if p))
    return 0


# -- output ------------------------------------------------------------------------------------


def _flat(value: object) -> str:
    """One history value as text (CSV, `show`): lists joined with `;`, balances as `usd 100`."""
    if value is None:
        return ""
    if isinstance(value, list):
        return ";".join(f"{v['currency']} {v['balance']}" if isinstance(v, dict) else str(v) for v in value)
    return str(value)


def write_json(records: Iterator[RequestRecord], out: TextIO) -> None:
    """A JSON array, written one object at a time so memory stays flat on a large table."""
    out.write("[")
    empty = True
    for record in records:
        out.write("\n  " if empty else ",\n  ")
        out.write(json.dumps(history_row(record), ensure_ascii=False))
        empty = False
    out.write("]\n" if empty else "\n]\n")


def write_csv(records: Iterator[RequestRecord], out: TextIO) -> None:
    writer = csv.writer(out)
    writer.writerow(HISTORY_FIELDS)
    for record in records:
        row = history_row(record)
        writer.writerow([_csv_safe(_flat(v)) for v in row.values()])


def write_table(records: Iterator[RequestRecord], out: TextIO) -> None:
    columns = (
        ("id", 5),
        ("created_at", 16),
        ("status", 9),
        ("sfox_user_id", 24),
        ("requested_by", 12),
        ("approved_by", 24),
        ("http", 4),
        ("error", 40),  # or, for a request asked for later, when it runs
    )
    out.write("  ".join(f"{name:<{width}}" for name, width in columns).rstrip() + "\n")
    count = 0
    for record in records:
        count += 1
        values = [
            str(record.id),
            record.created_at.strftime("%Y-%m-%d %H:%M"),
            record.status,
            record.sfox_user_id,
            record.requested_by,
            ",".join(record.approved_by) or "-",
            str(record.http_status or "-"),
            _note(record),
        ]
        cells = [_fit(v, w) for v, (_, w) in zip(values, columns, strict=True)]
        out.write("  ".join(f"{c:<{w}}" for c, (_, w) in zip(cells, columns, strict=True)).rstrip() + "\n")
    if not count:
        out.write("(no requests recorded)\n")


def _note(record: RequestRecord) -> str:
    """The table's last column: the error, when a request asked for later runs, or where a watch
    stands."""
    if record.run_at is not None and record.status in ("pending", "scheduled"):
        return "runs " + record.run_at.strftime("%Y-%m-%d %H:%M UTC")
    if record.status == "watching":
        read = record.watch_read_at.strftime("%Y-%m-%d %H:%M") if record.watch_read_at else "never"
        return f"watching; last read {read}, until {record.expires_at:%Y-%m-%d %H:%M}"
    return (record.error or "").replace("\n", " ")


def _fit(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _csv_safe(text: str) -> str:
    """Keep spreadsheet programs from running text as a formula."""
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text
