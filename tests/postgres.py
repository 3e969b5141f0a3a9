"""The PostgreSQL the tests and the benchmarks run on, read from one place: its URL
(SFOX_BOT_TEST_POSTGRES, default the local server's `test` database), whether it is required
(SFOX_BOT_REQUIRE_POSTGRES=1, as in CI: then an unreachable server fails the run instead of
skipping its part), and a schema of one's own on it. tests/conftest.py and bench/ both import it,
so a run pointed at another server is pointed there whole."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import make_url

from bot.store.engine import make_engine

URL_SETTING = "SFOX_BOT_TEST_POSTGRES"
REQUIRED_SETTING = "SFOX_BOT_REQUIRE_POSTGRES"
DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def base_url() -> str:
    return os.environ.get(URL_SETTING, DEFAULT_URL)


def required() -> bool:
    return os.environ.get(REQUIRED_SETTING) == "1"


def reachable(url: str | None = None) -> bool:
    try:
        engine = make_engine(url or base_url())
        with engine.connect():
            pass
        engine.dispose()
        return True
    except Exception:
        return False


def shown(url: str | None = None) -> str:
    """The URL as a message may show it: its password hidden."""
    return make_url(url or base_url()).render_as_string(hide_password=True)


def unreachable_reason(url: str | None = None) -> str:
    """Why the PostgreSQL part does not run, said the same way by the tests and the benchmarks."""
    return f"PostgreSQL not reachable at {shown(url)}; set {REQUIRED_SETTING}=1 to make this fail"


def required_but_unreachable(url: str | None = None) -> str:
    return f"PostgreSQL is required here ({REQUIRED_SETTING}=1) but {shown(url)} is unreachable"


@contextmanager
def own_schema(database_url: str | None = None, prefix: str = "t") -> Iterator[str]:
    """A URL of `database_url` (default: base_url()) whose tables live in a fresh schema of their
    own, dropped afterwards whatever happens."""
    database_url = database_url or base_url()
    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    engine = make_engine(database_url)
    with engine.begin() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    sep = "&" if "?" in database_url else "?"
    try:
        yield f"{database_url}{sep}options=-csearch_path%3D{schema}"
    finally:
        with engine.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        engine.dispose()
