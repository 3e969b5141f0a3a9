"""What every `sfox-bot` subcommand shares: the one-line error, opening the database named by
DATABASE_URL (a setting to fix when it cannot be opened) and the argument types."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta

from bot.config import ConfigError, Settings
from bot.store.db import Store

EXIT_USAGE = 2


class CliError(Exception):
    """A problem the operator can fix; printed as one line."""


def open_store(settings: Settings) -> Store:
    try:
        return Store.from_url(settings.database_url, settings.audit_key)
    except Exception as exc:
        raise ConfigError("DATABASE_URL", f"cannot be used: {first_line(exc)}") from None


def reachable(store: Store) -> Store:
    """Connect once, so a database that cannot be opened is reported as a setting to fix."""
    try:
        store.ping()
    except Exception as exc:
        store.close()
        raise ConfigError("DATABASE_URL", f"cannot be used: {first_line(exc)}") from None
    return store


def open_migrated(settings: Settings) -> Store:
    from bot.store import migrate

    store = open_store(settings)
    try:
        at_head = migrate.is_at_head(store.engine)
    except Exception as exc:
        raise CliError(f"cannot read the database at DATABASE_URL: {first_line(exc)}") from None
    if not at_head:
        raise CliError("the database has no up-to-date schema: run `sfox-bot migrate` first (DATABASE_URL)")
    return store


def first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


def positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {value!r}") from None
    if number < 0:
        raise argparse.ArgumentTypeError("must not be negative")
    return number


def since(value: str) -> datetime:
    units = {"d": "days", "h": "hours", "m": "minutes"}
    if value[-1:] in units and value[:-1].isdigit():
        return datetime.now(UTC) - timedelta(**{units[value[-1]]: int(value[:-1])})
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an ISO date/time or 7d/12h/30m, got {value!r}") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)
