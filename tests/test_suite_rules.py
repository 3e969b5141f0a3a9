"""Rules the suite keeps about itself, checked so a new test file cannot quietly drop them."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def _calls(node: ast.AST) -> set[str]:
    return {n.func.id for n in ast.walk(node) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}


def test_every_fake_slack_fixture_checks_that_nothing_was_refused():
    """conftest's `fake_slack` checks at a test's end that the fake refused nothing; a file that
    overrides it (another clock, another pace) builds it with `checked_slack`, which checks too."""
    unchecked = []
    for path in sorted(TESTS.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            fixture = isinstance(node, ast.FunctionDef) and node.name == "fake_slack"
            if fixture and "checked_slack" not in _calls(node):
                unchecked.append(f"{path.name}:{node.lineno}")
    assert unchecked == [], f"fake_slack fixtures that drop the refusal check: {unchecked}"


def test_a_stopped_bot_holds_no_database_connection(fake_slack, fake_sfox, database_url):
    """A test bot's pool is closed when it stops: on PostgreSQL the idle pools of every bot a
    worker started held the server's 100 connections, and later tests were refused them."""
    from bot.config import load_settings
    from tests.conftest import bot_env, start_bot
    from tests.helpers import open_request

    bot = start_bot(load_settings(bot_env(fake_slack, fake_sfox, database_url)), fake_slack, fake_sfox)
    open_request(bot, "UALICE01", "client_1 left")
    assert bot.store.engine.pool.checkedin() > 0  # the bot's work left connections in the pool
    bot.stop()
    assert bot.store.engine.pool.checkedin() == 0
