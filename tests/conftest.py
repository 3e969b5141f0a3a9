"""Test harness: a fake Slack Web API and a fake sFOX API as real HTTP servers on 127.0.0.1, the
bot's WSGI app served over real HTTP, and a driver that sends it signed Slack requests."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIServer

import pytest
from sqlalchemy import NullPool, create_engine, make_url

from bot.config import Settings, load_settings
from bot.fakes.local import serve_wsgi, url_of
from bot.fakes.sfox_api import FakeSfox
from bot.fakes.slack_api import FakeSlack
from bot.fakes.slack_driver import SlackDriver
from bot.runtime.bootstrap import Runtime, build_runtime
from bot.runtime.roles import ALL
from bot.runtime.web import make_wsgi_app
from bot.store import migrate
from bot.store.db import Store
from tests import postgres

SIGNING_SECRET = "test-signing-secret-0123456789"
BOT_TOKEN = "xoxb-test-token"
SFOX_KEY = "sfox-test-key-SECRET-abcdef"
ALICE, BOB, CAROL, MALLORY = "UALICE01", "UBOB0002", "UCAROL03", "UMALLORY"
APPROVERS = (ALICE, BOB, CAROL)
PG_BASE = postgres.base_url()
REQUIRE_PG = postgres.required()


# The longest tests (tens of seconds each, mostly waiting), most of them not `slow`-marked. Under
# `pytest -n` (pyproject's addopts) the workers take tests one at a time in collection order, so
# these start first, then the `slow` ones, then the rest: the run does not end waiting on one of
# them while the other workers sit idle. Without xdist the order is left as collected.
LONG_FIRST = (
    "tests/test_bench_smoke.py::",
    "tests/test_demo.py::",
    "tests/test_hostile.py::",
    "tests/test_crash_points.py::",
    "tests/test_crash.py::",
    "tests/test_metrics.py::test_a_scrape_after_the_demo_matches_the_history",
    "tests/test_pacing.py::",
    "tests/test_batches.py::",
    "tests/test_batch_crash.py::",
    "tests/test_wheel.py::",
)


@pytest.hookimpl(tryfirst=True)
def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """`@pytest.mark.engines("sqlite", why=...)`: a test that needs the bot's database takes it
    from the engines named only, and says why (the journal's busy timeout is SQLite's, say);
    every other such test runs on both."""
    marker = metafunc.definition.get_closest_marker("engines")
    if marker is None or "database_url" not in metafunc.fixturenames:
        return
    if not marker.kwargs.get("why"):
        raise pytest.UsageError(f"{metafunc.definition.nodeid}: @pytest.mark.engines needs why=")
    unknown = set(marker.args) - {"sqlite", "postgres"}
    if unknown or not marker.args:
        said = f"unknown engines {sorted(unknown)}" if unknown else "no engine named"
        raise pytest.UsageError(f"{metafunc.definition.nodeid}: @pytest.mark.engines: {said}")
    chosen = [p for p in ENGINES if (p if isinstance(p, str) else p.values[0]) in marker.args]
    # As a marker, not a call: pytest's own hook then parametrizes it, and knows not to
    # parametrize the fixture's own params as well.
    metafunc.definition.add_marker(pytest.mark.parametrize("database_url", chosen, indirect=True))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return

    def rank(item: pytest.Item) -> int:
        for i, prefix in enumerate(LONG_FIRST):
            if item.nodeid.startswith(prefix):
                return i
        return len(LONG_FIRST) + (0 if item.get_closest_marker("slow") else 1)

    items.sort(key=rank)  # stable: the order within each rank is pytest's


# Set by pytest itself around each phase of a test.
_ENV_OF_PYTEST = ("PYTEST_CURRENT_TEST",)


@pytest.fixture(autouse=True)
def environment_left_as_found() -> Iterator[None]:
    """Fail a test that leaves os.environ changed (a setting exported, a `.env` loaded in this
    process by `load_dotenv`): every later test in this worker would run with it. The environment
    is put back first, so only the test that changed it fails. Only the names are shown: the
    values may be secrets."""
    before = dict(os.environ)
    yield
    after = dict(os.environ)
    changed = sorted(
        name
        for name in before.keys() | after.keys()
        if before.get(name) != after.get(name) and name not in _ENV_OF_PYTEST
    )
    if changed:
        os.environ.clear()
        os.environ.update(before)
        pytest.fail(
            f"the test left os.environ changed (use monkeypatch, or a subprocess): {', '.join(changed)}"
        )


@dataclass
class Bot:
    """A running bot: its Runtime, its URL, and a driver that speaks Slack to it."""

    runtime: Runtime
    url: str
    driver: SlackDriver
    slack: FakeSlack
    sfox: FakeSfox
    server: WSGIServer

    @property
    def store(self) -> Store:
        return self.runtime.store

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.runtime.shutdown(wait=True)
        self.driver.close()
        # The pool's connections, closed now rather than when collected: on PostgreSQL an idle
        # pool of every bot a worker has started would hold the server's connections.
        self.store.close()


def bot_env(slack: FakeSlack, sfox: FakeSfox, database_url: str, **overrides: str) -> dict[str, str]:
    env = {
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": slack.api_url,
        "SFOX_API_KEY": SFOX_KEY,
        "SFOX_API_URL": sfox.url,
        "SFOX_APPROVERS": ",".join(APPROVERS),
        "DATABASE_URL": database_url,
        "SFOX_TIMEOUT_SECONDS": "5",
        "SFOX_MAX_ATTEMPTS": "3",
        "SFOX_SWEEP_INTERVAL_SECONDS": "3600",
    }
    env.update(overrides)
    return env


# A migrated empty SQLite database per audit key, made once per test process and copied for each
# bot: Alembic loads and compiles every migration script on each upgrade (about 0.13 s of CPU,
# times some 700 bots). Migrations themselves are tested on their own (tests/test_migration_*.py).
_TEMPLATES: dict[str | None, Path] = {}


def _copy_migrated(url: str, audit_key: str | None) -> bool:
    """Put a migrated empty database at `url` (a SQLite file not made yet); False if it is not one."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or Path(parsed.database).exists():
        return False
    template = _TEMPLATES.get(audit_key)
    if template is None:
        template = Path(tempfile.mkdtemp(prefix="sfox-template-")) / "migrated.db"
        store = Store.from_url(f"sqlite:///{template}", audit_key)
        migrate.upgrade(store.engine, audit_key)
        store.close()
        _TEMPLATES[audit_key] = template
    shutil.copyfile(template, parsed.database)
    return True


def start_bot(
    settings: Settings, slack: FakeSlack, sfox: FakeSfox, *, migrate_first: bool = True, role: str = ALL
) -> Bot:
    """`role`: ALL (the one process of most tests) or WEB (tests/test_roles.py adds workers)."""
    copied = migrate_first and _copy_migrated(settings.database_url, settings.audit_key)
    store = Store.from_url(settings.database_url, settings.audit_key)
    if migrate_first and not copied:
        migrate.upgrade(store.engine, settings.audit_key)
    runtime = build_runtime(settings, store=store, role=role)
    # Owed Slack messages go out when due, as in `sfox-bot run`; the tests run the sweeps. The web
    # role sends none: its workers do.
    assert runtime.delivery is not None
    if role == ALL:
        runtime.delivery.start()
    server = serve_wsgi(make_wsgi_app(runtime))
    url = url_of(server)
    driver = SlackDriver(url, SIGNING_SECRET, slack)
    return Bot(runtime, url, driver, slack, sfox, server)


def checked_slack(**options: Any) -> Iterator[FakeSlack]:
    """The fake Slack of one test, checked at its end that it refused nothing. A test file that
    needs another fake (e.g. `clock_ts=True`) overrides `fake_slack` with `yield from
    checked_slack(...)`, so no override drops the check."""
    with FakeSlack(token=BOT_TOKEN, **options) as slack:
        yield slack
        assert_nothing_refused(slack)


@pytest.fixture
def fake_slack() -> Iterator[FakeSlack]:
    yield from checked_slack()


def assert_nothing_refused(slack: FakeSlack) -> None:
    """The fake refuses what Slack would (bad Block Kit, a spent trigger_id or response_url); the
    bot may swallow such an answer (a Home tab not published, a hint not shown), so every test
    using the fake checks at its end that nothing was refused. A test that provokes a refusal on
    purpose takes it out of `slack.refusals`."""
    assert not slack.refusals, f"the bot sent Slack what it refuses: {slack.refusals}"


@pytest.fixture
def fake_sfox() -> Iterator[FakeSfox]:
    with FakeSfox(api_key=SFOX_KEY) as sfox:
        yield sfox


def postgres_available() -> bool:
    return postgres.reachable(PG_BASE)


def require_postgres() -> None:
    if not postgres_available():
        if REQUIRE_PG:
            pytest.fail(postgres.required_but_unreachable(PG_BASE))
        pytest.skip(postgres.unreachable_reason(PG_BASE))


def _with_database(url: str, name: str) -> str:
    return make_url(url).set(database=name).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """The URL of a PostgreSQL database of this test session's own (of this xdist worker's own
    under `pytest -n`), dropped at the end. Schemas isolate tables, but not what is per database:
    the migration's advisory lock, pg_stat_activity. With a database each, workers never wait on
    each other's locks, and a concurrent test run on the same server is no concern either."""
    require_postgres()
    run = os.environ.get("PYTEST_XDIST_TESTRUNUID", uuid.uuid4().hex)[:8]
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    name = f"{make_url(PG_BASE).database}_{run}_{worker}".lower()
    admin = create_engine(PG_BASE, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except Exception:  # no CREATEDB privilege: share the given database (tests still get schemas)
        admin.dispose()
        yield PG_BASE
        return
    yield _with_database(PG_BASE, name)
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


@pytest.fixture
def postgres_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A PostgreSQL URL whose tables live in a fresh schema of their own, dropped afterwards.
    Only for a test marked `postgres`, so that every test needing the server says so: a
    parametrised one marks its PostgreSQL case (`pytest.param("postgres", marks=...)`, or
    `request.applymarker` before it asks for this fixture). Checked before the server is
    looked for, so an unmarked test fails here even where PostgreSQL is absent."""
    if request.node.get_closest_marker("postgres") is None:
        pytest.fail(f"{request.node.nodeid} uses PostgreSQL without the `postgres` marker")
    with postgres.own_schema(request.getfixturevalue("postgres_database")) as url:
        yield url


# The PostgreSQL case of a fixture over both engines, marked when collected: `-m "not postgres"`
# leaves it out, and postgres_url sees the marker.
ENGINES = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(params=ENGINES)
def migration_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database for a migration test (tests/migration_support.py), on both engines."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'm.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture(params=ENGINES)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The bot's database, for every end-to-end test on both engines: SQLite, the default, and
    PostgreSQL, what several replicas share. Each PostgreSQL case is marked `postgres` (so CI,
    which requires the server, never skips it) and gets a schema of its own."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'bot.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def make_bot(fake_slack: FakeSlack, fake_sfox: FakeSfox, database_url: str) -> Iterator[Any]:
    """Start a bot (settings overridable per test); every bot is stopped at the end."""
    bots: list[Bot] = []

    def start(**overrides: str) -> Bot:
        env = bot_env(fake_slack, fake_sfox, overrides.pop("DATABASE_URL", database_url), **overrides)
        bot = start_bot(load_settings(env), fake_slack, fake_sfox)
        bots.append(bot)
        return bot

    yield start
    for bot in bots:
        bot.stop()


@pytest.fixture
def bot(make_bot: Any) -> Bot:
    return make_bot()
