"""The column types of bot/store/schema.py (times always aware UTC, outcomes always typed) and the
MetaData every table is described on, here so that the schema's modules share it without
importing each other (bot/store/schema.py, bot/store/intake_schema.py)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import DateTime, MetaData, String
from sqlalchemy.types import TypeDecorator

from bot.store.outcomes import Outcome, parse_outcome

metadata = MetaData()


class UTCDateTime(TypeDecorator[datetime]):
    """Timestamps are stored as naive UTC (SQLite has no time zones) and always read back aware."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: object) -> datetime | None:
        return value.replace(tzinfo=UTC) if value is not None else None


class OutcomeType(TypeDecorator[Outcome]):
    """`requests.outcome`: stored as its text, always read back as an Outcome (or None)."""

    impl = String(32)
    cache_ok = True

    def process_bind_param(self, value: Outcome | None, dialect: object) -> str | None:
        return None if value is None else Outcome(value).value

    def process_result_value(self, value: str | None, dialect: object) -> Outcome | None:
        return parse_outcome(value)
