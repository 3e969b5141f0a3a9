"""The sFOX key is sent only as `Authorization: Bearer …` to SFOX_API_URL, and neither it nor the
Slack secrets ever appear in logs, Slack messages, exceptions or the database.

One test drives the bot through success and through every kind of failure while capturing every
log record at DEBUG, every fake Slack call and every request the fake sFOX saw, then searches all
of it and a dump of every table for the secrets."""

from __future__ import annotations

import io
import logging
import traceback

import pytest

from bot.config import load_settings
from bot.fakes.sfox_api import FakeSfox, Fault
from bot.logs import Redactor, TextFormatter
from bot.sfox.client import SfoxClient
from bot.sfox.errors import SfoxError
from tests.conftest import ALICE, BOB, BOT_TOKEN, SFOX_KEY, SIGNING_SECRET, bot_env
from tests.helpers import open_request, wait_status
from tests.support import closed_port_url, drain, dump_database, everything_sent_to_slack, later_ephemerals

SECRETS = {"sFOX key": SFOX_KEY, "signing secret": SIGNING_SECRET}


def log_text(caplog) -> str:
    parts = []
    for rec in caplog.records:
        parts.append(rec.getMessage())
        parts.append(repr(rec.args))
        parts.extend(repr(v) for v in rec.__dict__.values())
        if rec.exc_info:
            parts.append("".join(traceback.format_exception(*rec.exc_info)))
    return "\n".join(parts)


def test_the_key_goes_only_to_sfox_and_nothing_leaks(make_bot, fake_sfox, fake_slack, caplog):
    caplog.set_level(logging.DEBUG)
    slack_auth: list[str | None] = []
    original = fake_slack.handle_api

    def recording(method, args, auth):
        slack_auth.append(auth)
        return original(method, args, auth)

    fake_slack.handle_api = recording
    bot = make_bot(SFOX_TIMEOUT_SECONDS="0.5", SFOX_MAX_ATTEMPTS="2")

    # A success, a 422, an unknown outcome settled by a lookup, a retried 500, failed lookups.
    ok, ok_card = open_request(bot, ALICE, "client_1 ok")
    bot.driver.click(BOB, "sfox_approve", str(ok.id), ok_card.ts)
    wait_status(bot, ok.id, "succeeded")
    bad, bad_card = open_request(bot, ALICE, "client_late balances")  # funds arrive after the card
    bot.driver.click(BOB, "sfox_approve", str(bad.id), bad_card.ts)
    wait_status(bot, bad.id, "failed")
    slow, slow_card = open_request(bot, ALICE, "client_3 slow")
    fake_sfox.script(Fault(delay=1.5))
    bot.driver.click(BOB, "sfox_approve", str(slow.id), slow_card.ts)
    wait_status(bot, slow.id, "failed")
    fake_sfox.add_user("client_4")
    five, five_card = open_request(bot, ALICE, "client_4 five hundred")
    # A proxy that echoes the request (key included) in its error body.
    fake_sfox.script(Fault(status=500, body=b""), Fault(status=400, body=f"echo: Bearer {SFOX_KEY}"))
    bot.driver.click(BOB, "sfox_approve", str(five.id), five_card.ts)
    wait_status(bot, five.id, "failed")
    fake_sfox.script(Fault(method="GET", status=401, body={"error": "invalid api key"}))
    later_ephemerals(bot, bot.driver.command(ALICE, "client_1 again"))
    later_ephemerals(bot, bot.driver.command(ALICE, "ghost lookup"))
    drain(bot)

    # Sent to sFOX, only as the bearer token, and nowhere else in any request; the balance read
    # is the one request that carries a user token instead (and never the key).
    assert len(fake_sfox.requests()) >= 10
    assert any(seen.raw_path == "/v1/user/balance" for seen in fake_sfox.requests())
    for seen in fake_sfox.requests():
        if seen.raw_path == "/v1/user/balance":
            assert seen.headers["authorization"].removeprefix("Bearer ") in fake_sfox.tokens
        else:
            assert seen.headers["authorization"] == f"Bearer {SFOX_KEY}"
        others = {k: v for k, v in seen.headers.items() if k != "authorization"}
        assert SFOX_KEY not in repr(others) and SFOX_KEY not in seen.raw_path
    # Slack got its own token, never the sFOX key, in headers or in any message.
    assert slack_auth and set(slack_auth) == {f"Bearer {BOT_TOKEN}"}
    sent = everything_sent_to_slack(bot)
    logs = log_text(caplog)
    database = dump_database(bot.store)
    assert "client_late" in database and "Can not disable account" in database  # the dump is real
    assert "echo: Bearer [REDACTED]" in sent and "echo: Bearer [REDACTED]" in database
    for name, secret in SECRETS.items():
        assert secret not in sent, f"{name} sent to Slack"
        assert secret not in logs, f"{name} in the logs"
        assert secret not in database, f"{name} in the database"
    assert BOT_TOKEN not in logs and BOT_TOKEN not in database


def test_the_key_is_not_sent_to_a_redirect_target(make_bot, fake_sfox):
    with FakeSfox(api_key=SFOX_KEY) as elsewhere:
        bot = make_bot()
        target = f"{elsewhere.url}/v1/enterprise/users/client_1"
        fake_sfox.script(Fault(method="GET", status=307, headers={"Location": target}, body=b""))
        [answer] = later_ephemerals(bot, bot.driver.command(ALICE, "client_1 redirected"))
        assert "HTTP 307" in answer and "Nothing was posted" in answer
        assert elsewhere.requests() == []


def sfox_errors() -> list[SfoxError]:
    """SfoxErrors of every kind, raised by a real client holding the key."""
    errors = []
    with FakeSfox(api_key=SFOX_KEY) as fake:
        client = SfoxClient(fake.url, SFOX_KEY, timeout_seconds=0.5, max_attempts=1)
        fake.script(
            Fault(method="GET", status=401, body={"error": "invalid api key"}),
            Fault(method="GET", status=500, body=f"debug: Authorization: Bearer {SFOX_KEY}"),
            Fault(method="GET", delay=1.5),
            Fault(method="DELETE", drop=True),
        )
        for call in (
            lambda: client.get_user("client_1"),
            lambda: client.get_user("client_1"),
            lambda: client.get_user("client_1"),
            lambda: client.deactivate("client_1"),
            lambda: client.deactivate("ghost"),
        ):
            with pytest.raises(SfoxError) as caught:
                call()
            errors.append(caught.value)
        client.close()
    refused = SfoxClient(closed_port_url(), SFOX_KEY, timeout_seconds=1, max_attempts=1)
    with pytest.raises(SfoxError) as caught:
        refused.get_user("client_1")
    errors.append(caught.value)
    refused.close()
    return errors


def test_exceptions_never_carry_the_key():
    errors = sfox_errors()
    assert [e.status for e in errors] == [401, 500, None, None, 404, None]
    for exc in errors:
        text = str(exc) + repr(exc) + "".join(traceback.format_exception(exc)) + exc.message
        assert SFOX_KEY not in text


def test_settings_repr_hides_every_secret(fake_slack, fake_sfox, tmp_path):
    settings = load_settings(bot_env(fake_slack, fake_sfox, f"sqlite:///{tmp_path / 'x.db'}"))
    shown = repr(settings) + str(settings)
    for secret in (SFOX_KEY, SIGNING_SECRET, BOT_TOKEN):
        assert secret not in shown
    assert set(settings.secrets()) == {SFOX_KEY, SIGNING_SECRET, BOT_TOKEN}


def test_the_log_handler_scrubs_secrets_even_when_code_logs_them():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(Redactor([SFOX_KEY, SIGNING_SECRET]))
    handler.setFormatter(TextFormatter("%(levelname)s %(message)s"))
    logger = logging.getLogger("sfox_bot.test_secrets")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("key is %s", SFOX_KEY, extra={"detail": f"secret={SIGNING_SECRET}"})
        try:
            raise RuntimeError(f"boom {SFOX_KEY}")
        except RuntimeError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
    out = stream.getvalue()
    assert "[REDACTED]" in out and "boom" in out
    assert SFOX_KEY not in out and SIGNING_SECRET not in out
