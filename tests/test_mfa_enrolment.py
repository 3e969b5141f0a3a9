"""Issue 18, enrolling the second factor: `/sfox-deactivate mfa` (a wrong first code, enrolled
already, not an approver), `sfox-bot mfa reset`, the settings and `sfox-bot check`, sealing and
codes, and the TOTP secret found nowhere but in the enrolment modal (logs, Slack calls, tables,
the audit export)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import pytest

from bot.config import ConfigError, load_settings
from bot.mfa import totp
from bot.mfa.sealing import Sealer, Unsealable
from tests.conftest import ALICE, BOB, CAROL, MALLORY, Bot
from tests.helpers import open_request, wait_status
from tests.mfa_support import (
    MFA_KEY,
    approve_modal,
    code,
    enrol,
    person_events,
    stepped_bot,
)


@pytest.fixture
def bot(make_bot) -> Bot:
    return stepped_bot(make_bot)


def test_enrolment_wrong_code_twice_enrolled_and_not_an_approver(bot):
    response = bot.driver.command(CAROL, "mfa")
    modal = bot.driver.modal_for(response.extensions["response_name"])
    secret = re.search(r"secret=([A-Z2-7]+)", json.dumps(modal["blocks"])).group(1)
    right = code(secret, bot)
    wrong = f"{(int(right) + 1) % 1_000_000:06d}"
    answer = bot.driver.submit_view(CAROL, modal, {"first_code": wrong})
    assert answer.json()["response_action"] == "errors" and "first_code" in answer.json()["errors"]
    assert bot.runtime.mfa.enrolments.get(CAROL) is None
    assert bot.driver.submit_view(CAROL, modal, {"first_code": right}).json()["response_action"] == "update"
    again = bot.driver.command(CAROL, "mfa")
    assert "enrolled already" in again.json()["text"]
    assert bot.driver.modal_for(again.extensions["response_name"]) is None
    stranger = bot.driver.command(MALLORY, "mfa")
    assert "not on the sFOX approver list" in stranger.json()["text"]


def test_mfa_reset_removes_an_enrolment(bot, tmp_path):
    from tests.test_cli import cli

    enrol(bot, BOB)
    url = bot.runtime.settings.database_url
    done = cli("mfa", "reset", BOB, database_url=url, cwd=tmp_path, module=True)
    assert done.returncode == 0, done.stderr
    assert "removed" in done.stdout
    assert bot.runtime.mfa.enrolments.get(BOB) is None
    reset = [e for e in person_events(bot) if e["kind"] == "mfa_reset"]
    assert len(reset) == 1 and json.loads(reset[0]["detail"])["user"] == BOB
    again = cli("mfa", "reset", BOB, database_url=url, cwd=tmp_path, module=True)
    assert again.returncode == 1 and "has no second factor enrolled" in again.stderr
    bad = cli("mfa", "reset", "bob", database_url=url, cwd=tmp_path, module=True)
    assert bad.returncode == 2 and "Slack user id" in bad.stderr
    # Enrolled again, with a new secret.
    assert enrol(bot, BOB)


def test_settings(fake_slack, fake_sfox, database_url):
    from tests.conftest import bot_env

    env = bot_env(fake_slack, fake_sfox, database_url)
    with pytest.raises(ConfigError) as bad:
        load_settings({**env, "SFOX_STEP_UP": "sms"})
    assert bad.value.setting == "SFOX_STEP_UP"
    with pytest.raises(ConfigError) as short:
        load_settings({**env, "SFOX_MFA_KEY": "too-short"})
    assert short.value.setting == "SFOX_MFA_KEY" and "too-short" not in str(short.value)
    missing = load_settings({**env, "SFOX_STEP_UP": "totp"}).missing_for_run()
    assert [e.setting for e in missing] == ["SFOX_MFA_KEY"]
    settings = load_settings({**env, "SFOX_STEP_UP": "totp", "SFOX_MFA_KEY": MFA_KEY})
    assert MFA_KEY in settings.secrets() and MFA_KEY not in repr(settings)


def test_sealing_and_codes():
    sealer = Sealer(MFA_KEY)
    secret = totp.new_secret()
    token = sealer.seal(secret)
    assert secret not in token and sealer.open(token) == secret
    with pytest.raises(Unsealable) as other:
        Sealer(MFA_KEY + "x").open(token)
    assert secret not in str(other.value) and MFA_KEY not in str(other.value)
    at = datetime(2026, 12, 3, 12, 0, 10, tzinfo=UTC)
    step = int(at.timestamp()) // 30
    assert totp.matching_step(secret, totp.code_at(secret, at), at) == step
    assert totp.matching_step(secret, totp.code_at(secret, at - timedelta(seconds=30)), at) == step - 1
    assert totp.matching_step(secret, totp.code_at(secret, at + timedelta(seconds=30)), at) == step + 1
    assert totp.matching_step(secret, totp.code_at(secret, at + timedelta(seconds=60)), at) is None
    spaced = totp.code_at(secret, at)
    assert totp.matching_step(secret, f"{spaced[:3]} {spaced[3:]}", at) == step


def test_the_secret_is_found_nowhere_but_in_the_enrolment_modal(bot, tmp_path, caplog):
    import logging

    from tests.support import dump_database, everything_sent_to_slack
    from tests.test_cli import cli
    from tests.test_secrets import log_text

    caplog.set_level(logging.DEBUG)
    secret = enrol(bot, BOB)
    record, card = open_request(bot, ALICE, "client_1")
    modal, _ = approve_modal(bot, BOB, record.id, card.ts)
    right = code(secret, bot, 1)
    wrong = f"{(int(right) + 1) % 1_000_000:06d}"
    answers = [bot.driver.submit_view(BOB, modal, {"code": wrong}) for _ in range(2)]
    answers.append(bot.driver.submit_view(BOB, modal, {"code": right}))
    wait_status(bot, record.id, "succeeded")
    drain(bot)

    # Every Slack call but the enrolment modal's own views.open, every ephemeral, every ack.
    with bot.slack.lock:
        enrolment = [
            i
            for i, (method, args) in enumerate(bot.slack.calls)
            if method == "views.open" and "sfox_mfa_enrol" in json.dumps(args.get("view"))
        ]
        shown = [json.dumps(bot.slack.calls[i][1]) for i in enrolment]
        bot.slack.calls[:] = [c for i, c in enumerate(bot.slack.calls) if i not in enrolment]
    assert len(shown) == 1 and secret in shown[0]  # the one place it is shown
    sent = everything_sent_to_slack(bot) + "".join(a.text for a in answers)
    export = cli("audit", "export", database_url=bot.runtime.settings.database_url, cwd=tmp_path, module=True)
    assert export.returncode == 0, export.stderr
    assert "mfa_enrolled" in export.stdout and '"step_up": "totp"' in export.stdout.replace('\\"', '"')
    places = {
        "logs": log_text(caplog),
        "Slack": sent,
        "database": dump_database(bot.store),
        "audit export": export.stdout,
    }
    for where, text in places.items():
        for form in (secret, secret.lower(), f"secret={secret}"):
            assert form not in text, f"the TOTP secret is in the {where}"


def drain(bot: Bot) -> None:
    from tests.support import drain as drain_bot

    drain_bot(bot)


def test_sfox_bot_check_names_the_missing_key(fake_slack, fake_sfox, database_url):
    from bot.cli.check import check_settings
    from tests.conftest import bot_env

    env = bot_env(fake_slack, fake_sfox, database_url, SFOX_STEP_UP="totp")
    rows, _settings = check_settings(env)
    (key,) = [r for r in rows if r.name == "SFOX_MFA_KEY"]
    assert not key.ok and "required when SFOX_STEP_UP=totp" in key.detail
    rows, _settings = check_settings({**env, "SFOX_MFA_KEY": MFA_KEY})
    (key,) = [r for r in rows if r.name == "SFOX_MFA_KEY"]
    assert key.ok and key.detail == "set (hidden)" and all(MFA_KEY not in r.detail for r in rows)
    with pytest.raises(ConfigError) as refused:
        from bot.runtime.bootstrap import build_runtime

        build_runtime(load_settings(env))
    assert refused.value.setting == "SFOX_MFA_KEY"
