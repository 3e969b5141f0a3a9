"""Alembic, driven from code: the migration scripts ship inside the installed package, so
`sfox-bot migrate` works from any directory with only DATABASE_URL.

On PostgreSQL the upgrade holds an advisory lock, so replicas that start at the same moment run
the migrations one after the other instead of racing to create the same tables.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, text

import migrations

ADVISORY_LOCK_KEY = 0x5F0C_DEAC  # any constant shared by every replica of this bot


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(Path(migrations.__file__).parent))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(engine: Engine, audit_key: str | None = None) -> None:
    """`alembic upgrade head`, serialized across processes on PostgreSQL. `audit_key`
    (SFOX_AUDIT_KEY) keys the hashes of events chained by a migration (0002_audit)."""
    config = alembic_config(engine.url.render_as_string(hide_password=False))
    config.attributes["audit_key"] = audit_key
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK_KEY})
        config.attributes["connection"] = conn
        command.upgrade(config, "head")


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def is_at_head(engine: Engine) -> bool:
    return current_revision(engine) == head_revision()
