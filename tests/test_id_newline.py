"""Issue 32, part 6: a newline cannot ride in on an id. `$` also matches before a final `\\n`, and
the mailto form's address was not stripped, so `<mailto:client_1\\n|client_1\\n>` through the
intake API became the sFOX user `client_1\\n` (path `client_1%0A`): a second open request for the
same account, outside the one-open-request-per-user rule. Every id pattern now matches the whole
string; these tests send the variants through real HTTP (signed intake POSTs, signed slash
commands) and read what sFOX and the database received."""

from __future__ import annotations

from typing import Any

import pytest

from bot.store.schema import commands
from tests.conftest import ALICE
from tests.helpers import open_request
from tests.support import ack_text
from tests.test_intake import INTAKE, ask, post

# Each is `client_1` with a line break where the old patterns let one through.
MAILTO_NEWLINES = [
    "<mailto:client_1\n|client_1\n>",
    "<mailto:client_1\n|client_1\n>\n",
    " <mailto:client_1\n|client_1\n> ",
]


def journalled(bot: Any) -> int:
    with bot.store.transaction() as conn:
        return len(conn.execute(commands.select()).all())


def sfox_paths(bot: Any) -> list[str]:
    return [r.raw_path for r in bot.sfox.requests()]


@pytest.fixture
def intake_bot(make_bot: Any) -> Any:
    return make_bot(**INTAKE)


@pytest.mark.parametrize("typed", MAILTO_NEWLINES)
def test_an_intake_id_with_a_newline_in_its_mailto_is_400_and_reaches_nobody(intake_bot, typed):
    bot = intake_bot
    response = post(bot, ask(typed))
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error.startswith("sfox_user_id: ") and "'\\n'" in error  # says which character
    assert not list(bot.store.history()) and journalled(bot) == 0
    assert sfox_paths(bot) == [] and not bot.slack.cards()


def test_an_open_request_is_not_doubled_by_the_newline_variants(intake_bot):
    """client_1 is open; none of the variants opens a second request, nor sends anything to sFOX."""
    bot = intake_bot
    first = post(bot, ask("client_1"))
    assert first.status_code == 202, first.text
    bot.slack.wait_for(lambda: bot.slack.cards() or None)
    seen = len(bot.sfox.requests())
    for typed in MAILTO_NEWLINES:
        assert post(bot, ask(typed)).status_code == 400
    # Whitespace around the whole value is not part of the id: it is the same user, refused as open.
    around = post(bot, ask("client_1\n"))
    assert around.status_code == 422 and "already" in around.json()["error"]
    assert [r.sfox_user_id for r in bot.store.history()] == ["client_1"]
    assert len(bot.sfox.requests()) == seen and not bot.sfox.requests("DELETE")
    assert not any("%0A" in p or "%0D" in p for p in sfox_paths(bot))


@pytest.mark.parametrize(
    "text",
    ["<mailto:client_1\n|client_1\n> reason", "<mailto:client_1|client_1\n>", "<mailto:client_1\n|client_1>"],
)
def test_a_slash_command_with_a_newline_in_its_mailto_is_refused_and_records_nothing(bot, text):
    record, _ = open_request(bot, ALICE, "client_1 first")
    before = journalled(bot)
    answer = ack_text(bot.driver.command(ALICE, text))
    assert "is not a valid sFOX user id" in answer
    assert journalled(bot) == before and [r.id for r in bot.store.history()] == [record.id]
    assert not bot.sfox.requests("DELETE") and not any("%0A" in p for p in sfox_paths(bot))
