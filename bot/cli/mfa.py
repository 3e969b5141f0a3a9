"""`sfox-bot mfa reset <slack user id>`: remove a person's second factor (audited), so they can
enrol a new authenticator with `/sfox-deactivate mfa` (a lost phone). Registered by
bot/cli/main.py. Only an operator can do this: Slack cannot, so a stolen Slack session cannot
swap a person's factor for its own."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any

from bot.cli.common import CliError, open_migrated
from bot.config import SLACK_USER_ID, load_settings
from bot.store.mfa_enrolling import MfaEnrolling

RESET_BY = "sfox-bot mfa reset"


def register(sub: Any) -> None:
    """Add the `mfa` command family to the `sfox-bot` subparsers `sub`."""
    parser = sub.add_parser(
        "mfa",
        help="the second factor on Approve: reset a person's enrolment",
        description="With step-up on (SFOX_STEP_UP=totp), Approve asks for a code from the "
        "approver's authenticator app, enrolled with `/sfox-deactivate mfa`.",
    )
    parser.set_defaults(handler=lambda _args: _help(parser))
    actions = parser.add_subparsers(title="actions", metavar="ACTION", help="reset")
    reset = actions.add_parser(
        "reset",
        help="remove a person's enrolment (audited); they enrol again with /sfox-deactivate mfa",
        description="Remove the enrolment of the Slack user SLACK_USER_ID (and their lock-out), "
        "recorded in the audit trail as mfa_reset.",
    )
    reset.add_argument("slack_user_id", type=_slack_user, metavar="SLACK_USER_ID", help="e.g. U012ABCDEF")
    reset.set_defaults(handler=cmd_reset)


def cmd_reset(args: argparse.Namespace) -> int:
    store = open_migrated(load_settings())
    try:
        removed = MfaEnrolling(store).reset(args.slack_user_id, datetime.now(UTC), RESET_BY)
    finally:
        store.close()
    if not removed:
        raise CliError(f"{args.slack_user_id} has no second factor enrolled; nothing was changed")
    print(f"second factor of {args.slack_user_id} removed (audited as mfa_reset); they can enrol again")
    return 0


def _slack_user(value: str) -> str:
    value = value.strip()
    if not SLACK_USER_ID.match(value):
        raise argparse.ArgumentTypeError(f"expected a Slack user id like U012ABCDEF, got {value!r}")
    return value


def _help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2
