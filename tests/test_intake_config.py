"""SFOX_INTAKE_SECRET (issue 20): a secret of at least 32 characters, never shown; the intake
API needs SFOX_DEFAULT_CHANNEL for its cards."""

from __future__ import annotations

import logging

import pytest

from bot.config import ConfigError, load_settings
from tests.test_config import VALID

SECRET = "intake-secret-0123456789abcdefghijklmnop"


def test_a_short_secret_is_refused_naming_the_setting_not_the_value():
    with pytest.raises(ConfigError) as caught:
        load_settings({**VALID, "SFOX_INTAKE_SECRET": "short-secret"}, dotenv=False)
    assert caught.value.setting == "SFOX_INTAKE_SECRET" and "32" in str(caught.value)
    assert "short-secret" not in str(caught.value)


def test_the_secret_is_scrubbed_and_never_in_repr():
    settings = load_settings(
        {**VALID, "SFOX_INTAKE_SECRET": SECRET, "SFOX_DEFAULT_CHANNEL": "C0X1"}, dotenv=False
    )
    assert SECRET in settings.secrets() and SECRET not in repr(settings)
    assert settings.missing_for_run() == []


def test_the_api_needs_the_default_channel():
    settings = load_settings({**VALID, "SFOX_INTAKE_SECRET": SECRET}, dotenv=False)
    assert [e.setting for e in settings.missing_for_run()] == ["SFOX_DEFAULT_CHANNEL"]


def test_the_secret_is_never_logged_while_the_api_works(make_bot, fake_sfox, caplog):
    from tests.test_intake import INTAKE, ask, post
    from tests.test_intake import SECRET as USED

    fake_sfox.add_user("acct_intake_1")
    bot = make_bot(**INTAKE)
    with caplog.at_level(logging.DEBUG):
        assert post(bot, ask()).status_code == 202
        assert post(bot, ask(), secret="x" * 40).status_code == 401
    assert USED not in caplog.text
