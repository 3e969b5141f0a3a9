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


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("https://partner.example", "no scheme, path or credentials"),
        ("partner.example/hook", "no scheme, path or credentials"),
        ("user@partner.example", "no scheme, path or credentials"),
        ("partner.example:0", "host or host:port"),
        ("partner.example:70000", "port is 1 to 65535"),
        ("partner.example:http", "port is 1 to 65535"),
        ("bad_host!.example", "neither a host name nor an IP address"),
        ("127.1", "neither a host name nor an IP address"),
        (" , ", "lists no host"),
    ],
)
def test_a_bad_callback_allow_list_is_refused_naming_the_setting_and_the_entry(value, words):
    with pytest.raises(ConfigError) as caught:
        load_settings({**VALID, "SFOX_INTAKE_CALLBACK_HOSTS": value}, dotenv=False)
    assert caught.value.setting == "SFOX_INTAKE_CALLBACK_HOSTS" and words in caught.value.problem


def test_the_callback_allow_list_and_attempts_are_read():
    from bot.webhooks.destinations import AllowedHost

    settings = load_settings(
        {
            **VALID,
            "SFOX_INTAKE_CALLBACK_HOSTS": "Partner.Example, 127.0.0.1:8443,[::1]:9000,partner.example",
            "SFOX_INTAKE_CALLBACK_ATTEMPTS": "5",
        },
        dotenv=False,
    )
    assert settings.intake_callback_hosts == {
        AllowedHost("partner.example"),
        AllowedHost("127.0.0.1", 8443),
        AllowedHost("::1", 9000),
    }
    assert settings.intake_callback_attempts == 5
    defaults = load_settings(VALID, dotenv=False)
    assert defaults.intake_callback_hosts == frozenset() and defaults.intake_callback_attempts == 60
    for bad in ("0", "10001", "many"):
        with pytest.raises(ConfigError) as caught:
            load_settings({**VALID, "SFOX_INTAKE_CALLBACK_ATTEMPTS": bad}, dotenv=False)
        assert caught.value.setting == "SFOX_INTAKE_CALLBACK_ATTEMPTS"


def test_check_shows_both_callback_settings():
    from bot.cli.check import check_settings

    env = {**VALID, "SFOX_INTAKE_CALLBACK_HOSTS": "partner.example", "SFOX_INTAKE_CALLBACK_ATTEMPTS": "abc"}
    rows = {row.name: row for row in check_settings(env)[0]}
    assert (
        rows["SFOX_INTAKE_CALLBACK_HOSTS"].ok
        and rows["SFOX_INTAKE_CALLBACK_HOSTS"].detail == "partner.example"
    )
    assert not rows["SFOX_INTAKE_CALLBACK_ATTEMPTS"].ok
    assert "whole number" in rows["SFOX_INTAKE_CALLBACK_ATTEMPTS"].detail
