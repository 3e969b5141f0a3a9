"""`sfox-bot audit verify|head|export|stream`: the audit trail's commands (the chain itself is bot/audit/chain.py).
Registered by bot/cli/main.py."""

from __future__ import annotations

import argparse
import csv
import json
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

from bot.audit import chain as audit
from bot.audit import verify as audit_verify
from bot.audit.stream import host_of
from bot.audit.stream_cursor import StreamState, read_state
from bot.cli.common import CliError, open_migrated, positive_int, since
from bot.config import load_settings

EXIT_TAMPERED = 1


def register(sub: Any) -> None:
    """Add the `audit` command family to the `sfox-bot` subparsers `sub`."""
    parser = sub.add_parser(
        "audit",
        help="verify the audit trail's hash chain, print its head, export it",
        description="The audit trail is a hash chain: every event carries a sequence number and a "
        "hash over the previous event's hash and its own fields (HMAC-SHA256 with SFOX_AUDIT_KEY "
        "when set). These commands check it and hand it to an auditor.",
    )
    parser.set_defaults(handler=lambda _args: _help(parser))
    actions = parser.add_subparsers(title="actions", metavar="ACTION", help="verify, head, export or stream")

    verify = actions.add_parser(
        "verify",
        help="walk the whole chain; exit 1 naming the first bad event",
        description="Walk the whole chain oldest first. Exit 0 with `audit ok: N events, head SEQ "
        "HASH`, or exit 1 with the first bad event and what is wrong with it (edited, missing, "
        "inserted, reordered, broken link, wrong key, anchor mismatch, truncated).",
    )
    verify.add_argument(
        "--anchor",
        action="append",
        type=_anchor,
        default=[],
        metavar="SEQ:HASH",
        help="a head posted earlier (e.g. in SFOX_AUDIT_CHANNEL): the chain must still hold that "
        "event with that hash; repeatable; catches a truncated or rewritten tail",
    )
    verify.set_defaults(handler=cmd_verify)

    head = actions.add_parser(
        "head",
        help="print `SEQ HASH` of the newest event",
        description="Print `SEQ HASH` of the newest event.",
    )
    head.set_defaults(handler=cmd_head)

    export = actions.add_parser(
        "export",
        help="stream events oldest first with seq, prev_hash and hash",
        description="Stream events oldest first with their seq, prev_hash and hash, so a receiver can "
        "verify the chain itself (see the README). Memory stays flat however long the trail.",
    )
    export.add_argument(
        "--format",
        choices=("jsonl", "csv"),
        default="jsonl",
        help="one JSON object per line (default), or CSV",
    )
    export.add_argument("--since", type=since, help="only events since: ISO date/time, or 7d, 12h, 30m")
    export.add_argument("--request", type=_request_id, metavar="ID", help="only the events of this request")
    export.set_defaults(handler=cmd_export)

    stream = actions.add_parser(
        "stream",
        help="where the trail is streamed, how far it is acknowledged, the lag and the lease",
        description="The audit stream to SFOX_AUDIT_WEBHOOK_URL: its host (never the path or the "
        "secret), the cursor (the last seq acknowledged), the chain's head, the lag (events not yet "
        "acknowledged and the age of the oldest), which replica holds the lease, and the failures.",
    )
    stream.set_defaults(handler=cmd_stream)


def cmd_verify(args: argparse.Namespace) -> int:
    settings = load_settings()
    anchors: dict[int, str] = {}
    for seq, digest in args.anchor:
        if anchors.setdefault(seq, digest) != digest:
            raise CliError(f"audit verify: two different --anchor hashes for seq {seq}")
    store = open_migrated(settings)
    try:
        report = audit_verify.verify(store.engine, settings.audit_key, anchors.items())
    finally:
        store.close()
    print(report.line())
    return 0 if report.ok else EXIT_TAMPERED


def cmd_head(_args: argparse.Namespace) -> int:
    store = open_migrated(load_settings())
    try:
        seq, digest = audit.head(store.engine)
    finally:
        store.close()
    print(f"{seq} {digest}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    store = open_migrated(load_settings())
    try:
        if args.request is not None and store.get(args.request) is None:
            raise CliError(f"no request with id {args.request}")
        rows = audit_verify.export_rows(store.engine, since=args.since, request_id=args.request)
        (write_jsonl if args.format == "jsonl" else write_csv)(rows, sys.stdout)
    finally:
        store.close()
    return 0


def cmd_stream(_args: argparse.Namespace) -> int:
    settings = load_settings()
    store = open_migrated(settings)
    try:
        state = read_state(store)
        _, digest = audit.head(store.engine)
    finally:
        store.close()
    url = settings.audit_webhook_url
    print(f"webhook: {host_of(url) if url else 'not set (SFOX_AUDIT_WEBHOOK_URL)'}")
    for line in stream_lines(state, digest, datetime.now(UTC)):
        print(line)
    return 0


def stream_lines(state: StreamState, head_hash: str, now: datetime) -> list[str]:
    """The stream's state in a few lines for the person on call."""
    when = audit.canonical_time
    acked = f" (last acknowledged at {when(state.sent_at)})" if state.sent_at else ""
    lines = [f"cursor: seq {state.cursor}{acked}", f"head: seq {state.head} {head_hash}"]
    if state.lag and state.oldest_unsent_at is not None:
        age = max(0, int((now - state.oldest_unsent_at).total_seconds()))
        lines.append(f"lag: {state.lag} events, the oldest from {when(state.oldest_unsent_at)} ({age} s ago)")
    else:
        lines.append("lag: none")
    if state.holder is None or state.lease_until is None:
        lines.append("lease: free")
    elif state.lease_until > now:
        lines.append(f"lease: held by {state.holder} until {when(state.lease_until)}")
    else:
        lines.append(f"lease: free (held by {state.holder} until {when(state.lease_until)})")
    if state.failures:
        retry = f"; next try at {when(state.retry_at)}" if state.retry_at else ""
        lines.append(f"failures: {state.failures} in a row, the last: {state.last_error}{retry}")
    return lines


def write_jsonl(rows: Any, out: TextIO) -> None:
    for row in rows:
        out.write(json.dumps(row, ensure_ascii=False))
        out.write("\n")


def write_csv(rows: Any, out: TextIO) -> None:
    """Values as recorded (an empty cell is null), so the export stays verifiable."""
    writer = csv.writer(out)
    writer.writerow(audit.EXPORT_FIELDS)
    for row in rows:
        writer.writerow(["" if row[name] is None else row[name] for name in audit.EXPORT_FIELDS])


def _help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _anchor(value: str) -> tuple[int, str]:
    try:
        return audit_verify.parse_anchor(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _request_id(value: str) -> int:
    number = positive_int(value)
    if number == 0:
        raise argparse.ArgumentTypeError("must be a request id (1 or more)")
    return number
