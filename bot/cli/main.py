"""The `sfox-bot` command. Every failure is one readable line on stderr and a non-zero exit."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import NoReturn

from sqlalchemy.exc import SQLAlchemyError

from bot.cli.common import (
    EXIT_USAGE,
    CliError,
    first_line,
    open_migrated,
    open_store,
    positive_int,
    reachable,
    since,
)
from bot.cli.history import cmd_history, cmd_show
from bot.config import ConfigError, load_settings
from bot.store.schema import STATUSES


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
        print(f"sfox-bot: database error (DATABASE_URL): {first_line(exc)}", file=sys.stderr)
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
    run.add_argument(
        "--role",
        choices=("web", "worker"),
        help="run one tier alone: web (answers Slack, does nothing after the ack) or worker (does "
        "the work); without it, one web process and SFOX_WORKERS workers, supervised "
        "(SFOX_WORKERS=0: one process does both)",
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
        "--limit", type=positive_int, default=50, help="at most N requests (default 50; 0 = all)"
    )
    hist.add_argument("--status", choices=STATUSES, help="only requests in this status")
    hist.add_argument("--user", help="only requests for this sFOX user id or by this Slack user id")
    hist.add_argument(
        "--since", type=since, help="only requests created since: ISO date/time, or 7d, 12h, 30m"
    )
    hist.add_argument("--batch", type=positive_int, help="only the users of this batch")
    hist.set_defaults(handler=cmd_history)

    show = sub.add_parser(
        "show",
        help="one request with its full event trail",
        description="Print one request and every event recorded for it, oldest first.",
    )
    show.add_argument("id", help="request id, or batch:ID for a batch (bot/cli/batch.py)")
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
    console.add_argument(
        "--policy",
        metavar="FILE",
        help="run the bot under this approval policy file (SFOX_POLICY_FILE); everyone it names "
        "is a person in the console",
    )
    console.set_defaults(handler=cmd_console)

    from bot.cli import audit as audit_cli
    from bot.cli import mfa as mfa_cli
    from bot.cli import policy as policy_cli

    audit_cli.register(sub)
    mfa_cli.register(sub)
    policy_cli.register(sub)
    return parser


# -- commands ----------------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> int:
    from bot.logs import configure
    from bot.runtime import serve as server
    from bot.runtime.roles import ALL, WORKER
    from bot.runtime.supervisor import Supervisor
    from bot.store import migrate

    settings = load_settings().require_for_run()
    configure(settings.log_level, settings.log_format, settings.secrets())
    store = reachable(open_store(settings))
    try:
        if args.no_migrate:
            at_head = migrate.is_at_head(store.engine)
        else:
            migrate.upgrade(store.engine, settings.audit_key)
            at_head = True
    except Exception as exc:
        raise CliError(f"cannot prepare the database at DATABASE_URL: {first_line(exc)}") from None
    finally:
        store.close()
    if not at_head:
        raise CliError("the database schema is not at head: run `sfox-bot migrate` first")
    role = args.role or (ALL if settings.workers == 0 else None)
    try:
        if role is None:
            return Supervisor(settings.workers).run()
        if role == WORKER:
            server.serve_worker(settings)
        elif settings.socket_mode:
            server.serve_socket_mode(settings, role)
        else:
            server.serve_http(settings, role)
    except server.ServeError as exc:
        raise CliError(str(exc)) from None
    return 0


def cmd_migrate(_args: argparse.Namespace) -> int:
    from bot.store import migrate

    settings = load_settings()
    store = reachable(open_store(settings))
    try:
        migrate.upgrade(store.engine, settings.audit_key)
        print(f"database at revision {migrate.current_revision(store.engine)}")
    except Exception as exc:
        raise CliError(f"migration of the database at DATABASE_URL failed: {first_line(exc)}") from None
    finally:
        store.close()
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from bot.cli.check import render, run_checks
    from bot.config import read_env

    rows = run_checks(read_env(), online=args.online, probe_user=args.probe_user)
    render(rows, sys.stdout)
    return 0 if all(row.ok for row in rows) else 1


def cmd_sweep(_args: argparse.Namespace) -> int:
    from bot.runtime.bootstrap import build_runtime

    settings = load_settings().require("SLACK_BOT_TOKEN", "SFOX_API_KEY")
    store = open_migrated(settings)
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

    return console.run(fresh=args.fresh, real_sfox=args.real_sfox, policy_file=args.policy)
