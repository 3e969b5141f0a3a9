"""Alembic environment: run by `sfox-bot migrate` (bot.store.migrate), which passes the URL or an open
connection in the config; no alembic.ini is needed, so it works from any directory."""

from alembic import context
from sqlalchemy import engine_from_config, pool

from bot.crashpoints import crash_point
from bot.store.schema import metadata

config = context.config


def run_migrations_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=metadata,
        literal_binds=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = engine_from_config(
        config.get_section(config.config_ini_section, {}), prefix="sqlalchemy.", poolclass=pool.NullPool
    )
    with engine.connect() as conn:
        _run(conn)


def _applied(*_args: object, **_kwargs: object) -> None:
    """After each migration step, inside the upgrade's transaction (test-only crash point)."""
    crash_point("migration_applied")


def _run(connection) -> None:  # noqa: ANN001 - alembic hands us a Connection
    context.configure(
        connection=connection, target_metadata=metadata, render_as_batch=True, on_version_apply=_applied
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
