"""The `sfox-bot` command. Every failure is one readable line on stderr and a non-zero exit."""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import NoReturn, TextIO

from sqlalchemy.exc import SQLAlchemyError

from bot.config import ConfigError, Settings, load_settings
from bot.store.db import RequestRecord, Store
from bot.store.schema import STATUSES

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
)
EXIT_USAGE = 2


class CliError(Exception):
    """A problem the operator can fix; printed as one line."""


class _Parser(argparse.ArgumentParser):
    """Usage mistakes are one line too, pointing at the command's help."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: {message} (see `{self.prog} --help`)\n")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        return int(args.handler(args) or 0)
    except ConfigError as exc:
        print(f"sfox-bot: configuration error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except CliError as exc:
        print(f"sfox-bot: {exc}", file=sys.stderr)
        return 1
    except SQLAlchemyError as exc:
        print(f"sfox-bot: database error (DATABASE_URL): {_first_line(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="sfox-bot",
        description="Deactivate sFOX end-user accounts from Slack, with a second admin's approval.",
        epilog="Settings come from the environment (and ./.env); see the README for the full list.",
    )
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")

    run = sub.add_parser(
        "run",
        help="apply migrations, then serve Slack (Socket Mode or HTTP)",
        description="Apply migrations, then serve: Socket Mode when SLACK_APP_TOKEN is set, "
        "else HTTP on HOST:PORT (POST /slack/events, GET /healthz, GET /readyz).",
    )
    run.add_argument(
        "--no-migrate",
        action="store_true",
        help="do not migrate; refuse to start unless the schema is already at head",
    )
    run.set_defaults(handler=cmd_run)

    mig = sub.add_parser(
        "migrate",
        help="bring the database schema up to date (alembic upgrade head)",
        description="Bring the schema at DATABASE_URL up to date. Run it as the release step; it is "
        "safe when several replicas run it at once (PostgreSQL advisory lock).",
    )
    mig.set_defaults(handler=cmd_migrate)

    check = sub.add_parser(
        "check",
        help="validate every setting and the database; --online also proves the Slack and sFOX keys",
        description="Validate every setting and the database, and print a pass/fail table. Secret "
        "values are never printed. Exit code 0 only when every check passes.",
    )
    check.add_argument(
        "--online",
        action="store_true",
        help="also call Slack auth.test (and the approver group) and a harmless sFOX read",
    )
    check.add_argument(
        "--probe-user",
        metavar="ID",
        help="with --online: an existing sFOX user id, to test that the key may create user tokens "
        "(needed to read balances); the token is dropped unused",
    )
    check.set_defaults(handler=cmd_check)

    hist = sub.add_parser(
        "history",
        help="list recorded requests, newest first",
        description="List recorded requests, newest first, optionally filtered.",
    )
    hist.add_argument(
        "--format",
        choices=("table", "json", "csv"),
        default=None,
        help="output format (default: table in a terminal, json otherwise)",
    )
    hist.add_argument(
        "--limit", type=_positive_int, default=50, help="at most N requests (default 50; 0 = all)"
    )
    hist.add_argument("--status", choices=STATUSES, help="only requests in this status")
    hist.add_argument("--user", help="only requests for this sFOX user id or by this Slack user id")
    hist.add_argument(
        "--since", type=_since, help="only requests created since: ISO date/time, or 7d, 12h, 30m"
    )
    hist.add_argument("--batch", type=_positive_int, help="only the users of this batch")
    hist.set_defaults(handler=cmd_history)

    show = sub.add_parser(
        "show",
        help="one request with its full event trail",
        description="Print one request and every event recorded for it, oldest first.",
    )
    show.add_argument("id", help="request id, or batch:ID for a batch (bot/batch_cli.py)")
    show.add_argument("--format", choices=("text", "json"), default="text", help="output format")
    show.set_defaults(handler=cmd_show)

    sweep = sub.add_parser(
        "sweep",
        help="expire overdue requests, reconcile unknown outcomes, resend owed Slack messages",
        description="Run one sweep now (`run` does this every SFOX_SWEEP_INTERVAL_SECONDS).",
    )
    sweep.set_defaults(handler=cmd_sweep)

    demo = sub.add_parser(
        "demo",
        help="watch the bot work in a scripted scene, with a fake Slack and a fake sFOX (nothing to set up)",
        description="Play a scripted scene through the real bot (signed requests into the real handlers), "
        "with a local fake Slack and fake sFOX, and print it as a transcript. Needs no settings.",
    )
    demo.add_argument(
        "--fresh", action="store_true", help="use a temporary database instead of ./sfox-bot.db"
    )
    demo.set_defaults(handler=cmd_demo)

    console = sub.add_parser(
        "console",
        help="play the Slack users yourself: type the command, click the buttons (fake Slack)",
        description="An interactive shell on the real bot: act as alice, bob or mallory, type "
        "/sfox-deactivate, approve or deny cards. Uses the built-in fake sFOX unless --real-sfox.",
    )
    console.add_argument(
        "--fresh", action="store_true", help="use a temporary database instead of ./sfox-bot.db"
    )
    console.add_argument(
        "--real-sfox",
        action="store_true",
        help="talk to the real sFOX API at SFOX_API_URL with SFOX_API_KEY: deactivations are PERMANENT",
    )
    console.set_defaults(handler=cmd_console)

    from bot.cli import audit as audit_cli

    audit_cli.register(sub)
    return parser


# -- commands ----------------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> int:
    from bot.logs import configure
    from bot.runtime import serve as server
    from bot.store import migrate

    settings = load_settings().require_for_run()
    configure(settings.log_level, settings.log_format, settings.secrets())
    store = _reachable(_store(settings))
    try:
        if args.no_migrate:
            at_head = migrate.is_at_head(store.engine)
        else:
            migrate.upgrade(store.engine, settings.audit_key)
            at_head = True
    except Exception as exc:
        raise CliError(f"cannot prepare the database at DATABASE_URL: {_first_line(exc)}") from None
    finally:
        store.close()
    if not at_head:
        raise CliError("the database schema is not at head: run `sfox-bot migrate` first")
    try:
        if settings.socket_mode:
            server.serve_socket_mode(settings)
        else:
            server.serve_http(settings)
    except server.ServeError as exc:
        raise CliError(str(exc)) from None
    return 0


def cmd_migrate(_args: argparse.Namespace) -> int:
    from bot.store import migrate

    settings = load_settings()
    store = _reachable(_store(settings))
    try:
        migrate.upgrade(store.engine, settings.audit_key)
        print(f"database at revision {migrate.current_revision(store.engine)}")
    except Exception as exc:
        raise CliError(f"migration of the database at DATABASE_URL failed: {_first_line(exc)}") from None
    finally:
        store.close()
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from bot.cli.check import render, run_checks
    from bot.config import read_env

    rows = run_checks(read_env(), online=args.online, probe_user=args.probe_user)
    render(rows, sys.stdout)
    return 0 if all(row.ok for row in rows) else 1


def cmd_history(args: argparse.Namespace) -> int:
    settings = load_settings()
    store = _open_migrated(settings)
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
    store = _open_migrated(load_settings())
    try:
        batch_id = _positive_int(str(args.id)[6:]) if str(args.id).lower().startswith("batch:") else None
        args.id = _positive_int(str(args.id)) if batch_id is None else None
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
        out = _history_row(record)
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
    for key, value in _history_row(record).items():
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


def cmd_sweep(_args: argparse.Namespace) -> int:
    from bot.runtime.bootstrap import build_runtime

    settings = load_settings().require("SLACK_BOT_TOKEN", "SFOX_API_KEY")
    store = _open_migrated(settings)
    runtime = build_runtime(settings, store=store)
    try:
        summary = runtime.sweep()
    finally:
        runtime.shutdown()
    print(", ".join(f"{k}: {v}" for k, v in summary.items()))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from bot.sandbox import demo

    return demo.run(fresh=args.fresh)


def cmd_console(args: argparse.Namespace) -> int:
    from bot.sandbox import console

    return console.run(fresh=args.fresh, real_sfox=args.real_sfox)


# -- output ------------------------------------------------------------------------------------


def _history_row(record: RequestRecord) -> dict[str, object]:
    from bot.sfox.balances import history_balances

    data = record.as_dict()
    data["balances"] = history_balances(record.balances)
    return {name: data[name] for name in HISTORY_FIELDS}


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
        out.write(json.dumps(_history_row(record), ensure_ascii=False))
        empty = False
    out.write("]\n" if empty else "\n]\n")


def write_csv(records: Iterator[RequestRecord], out: TextIO) -> None:
    writer = csv.writer(out)
    writer.writerow(HISTORY_FIELDS)
    for record in records:
        row = _history_row(record)
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
        ("error", 40),
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
            (record.error or "").replace("\n", " "),
        ]
        cells = [_fit(v, w) for v, (_, w) in zip(values, columns, strict=True)]
        out.write("  ".join(f"{c:<{w}}" for c, (_, w) in zip(cells, columns, strict=True)).rstrip() + "\n")
    if not count:
        out.write("(no requests recorded)\n")


def _fit(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _csv_safe(text: str) -> str:
    """Keep spreadsheet programs from running text as a formula."""
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text


# -- helpers -----------------------------------------------------------------------------------


def _store(settings: Settings) -> Store:
    try:
        return Store.from_url(settings.database_url, settings.audit_key)
    except Exception as exc:
        raise ConfigError("DATABASE_URL", f"cannot be used: {_first_line(exc)}") from None


def _reachable(store: Store) -> Store:
    """Connect once, so a database that cannot be opened is reported as a setting to fix."""
    try:
        store.ping()
    except Exception as exc:
        store.close()
        raise ConfigError("DATABASE_URL", f"cannot be used: {_first_line(exc)}") from None
    return store


def _open_migrated(settings: Settings) -> Store:
    from bot.store import migrate

    store = _store(settings)
    try:
        at_head = migrate.is_at_head(store.engine)
    except Exception as exc:
        raise CliError(f"cannot read the database at DATABASE_URL: {_first_line(exc)}") from None
    if not at_head:
        raise CliError("the database has no up-to-date schema: run `sfox-bot migrate` first (DATABASE_URL)")
    return store


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


def _positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {value!r}") from None
    if number < 0:
        raise argparse.ArgumentTypeError("must not be negative")
    return number


def _since(value: str) -> datetime:
    units = {"d": "days", "h": "hours", "m": "minutes"}
    if value[-1:] in units and value[:-1].isdigit():
        return datetime.now(UTC) - timedelta(**{units[value[-1]]: int(value[:-1])})
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an ISO date/time or 7d/12h/30m, got {value!r}") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)
