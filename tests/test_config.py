"""Settings: a missing or malformed setting stops start-up with one line naming it and a non-zero
exit code. `load_settings` is tested directly; `sfox-bot run` and `python -m bot run` are run as
real processes from an empty working directory with a crafted environment."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.cli.main import main
from bot.config import ConfigError, load_settings

VENV_BIN = Path(sys.executable).parent
SFOX_BOT = str(VENV_BIN / "sfox-bot")

VALID = {
    "SLACK_BOT_TOKEN": "xoxb-1-abc",
    "SLACK_SIGNING_SECRET": "signing-secret-123",
    "SFOX_API_KEY": "sfox-key-abc",
    "SFOX_APPROVERS": "UALICE01,UBOB0002",
}

# (setting, value or None to leave it out, text the error line must contain)
BAD = [
    ("SLACK_BOT_TOKEN", None, "SLACK_BOT_TOKEN: is required but not set"),
    ("SLACK_BOT_TOKEN", "abc-not-a-bot-token", "SLACK_BOT_TOKEN: must start with 'xoxb-'"),
    ("SLACK_SIGNING_SECRET", None, "SLACK_SIGNING_SECRET: is required but not set"),
    ("SLACK_APP_TOKEN", "xoxb-wrong-kind", "SLACK_APP_TOKEN: must start with 'xapp-'"),
    ("SLACK_API_URL", "slack.com/api", "SLACK_API_URL: must be an http(s) URL"),
    ("SFOX_API_KEY", None, "SFOX_API_KEY: is required but not set"),
    ("SFOX_API_KEY", "two words", "SFOX_API_KEY: must not contain whitespace"),
    ("SFOX_API_URL", "ftp://api.sfox.com", "SFOX_API_URL: must be an http(s) URL"),
    ("SFOX_API_URL", "https://u:pw@api.sfox.com", "SFOX_API_URL: must be a plain base URL"),
    ("SFOX_APPROVERS", None, "SFOX_APPROVERS: is required"),
    ("SFOX_APPROVERS", "alice,bob", "SFOX_APPROVERS: must be comma-separated Slack user ids"),
    ("SFOX_REQUIRED_APPROVALS", "two", "SFOX_REQUIRED_APPROVALS: must be a whole number"),
    ("SFOX_REQUIRED_APPROVALS", "0", "SFOX_REQUIRED_APPROVALS: must be between 1 and 10"),
    ("SFOX_REQUEST_TTL_SECONDS", "1h", "SFOX_REQUEST_TTL_SECONDS: must be a whole number"),
    ("SFOX_REQUEST_TTL_SECONDS", "-5", "SFOX_REQUEST_TTL_SECONDS: must be between"),
    ("SFOX_TIMEOUT_SECONDS", "soon", "SFOX_TIMEOUT_SECONDS: must be a number of seconds"),
    ("SFOX_MAX_ATTEMPTS", "0", "SFOX_MAX_ATTEMPTS: must be between 1 and 20"),
    ("DATABASE_URL", "mysql://db/x", "DATABASE_URL: must be a sqlite:/// or postgresql+psycopg:// URL"),
    ("DATABASE_URL", "sqlite:////nonexistent-dir/sub/bot.db", "DATABASE_URL: cannot be used"),
    ("DATABASE_URL", "postgresql://postgres@127.0.0.1:1/test", "DATABASE_URL: cannot be used"),
    ("PORT", "http", "PORT: must be a whole number"),
    ("PORT", "70000", "PORT: must be between 0 and 65535"),
    ("LOG_LEVEL", "LOUD", "LOG_LEVEL: must be one of"),
    ("LOG_FORMAT", "xml", "LOG_FORMAT: must be one of"),
    ("SFOX_BALANCE_CHECK", "sometimes", "SFOX_BALANCE_CHECK: must be one of required, advisory, off"),
    ("SFOX_RETRY_WINDOW_HOURS", "a day", "SFOX_RETRY_WINDOW_HOURS: must be a number of hours, got 'a day'"),
    ("SFOX_RETRY_WINDOW_HOURS", "0", "SFOX_RETRY_WINDOW_HOURS: must be between 0.01 and 8760, got 0"),
    ("SFOX_RETRY_WINDOW_HOURS", "-3", "SFOX_RETRY_WINDOW_HOURS: must be between 0.01 and 8760"),
]
SECRET_VALUES = ("abc-not-a-bot-token", "two words", "pw@")


def env_with(setting: str, value: str | None) -> dict[str, str]:
    env = dict(VALID)
    env.pop(setting, None)
    if value is not None:
        env[setting] = value
    return env


# -- load_settings -------------------------------------------------------------------------------


def test_defaults_are_the_documented_ones():
    s = load_settings({}, dotenv=False)
    assert s.slack_api_url == "https://slack.com/api/"
    assert s.sfox_api_url == "https://api.sfox.com"
    assert s.required_approvals == 1 and s.request_ttl_seconds == 3600
    assert s.database_url == "sqlite:///sfox-bot.db"
    assert (s.host, s.port) == ("0.0.0.0", 3000)
    assert not s.socket_mode
    assert s.balance_check == "required"
    assert s.retry_window_hours == 24


def test_the_retry_window_is_read_and_shown_by_check():
    from bot.cli.check import check_settings

    assert load_settings({"SFOX_RETRY_WINDOW_HOURS": " 1.5 "}, dotenv=False).retry_window_hours == 1.5
    rows, _ = check_settings({**VALID, "SFOX_RETRY_WINDOW_HOURS": "48"})
    (row,) = [r for r in rows if r.name == "SFOX_RETRY_WINDOW_HOURS"]
    assert row.ok and row.detail == "48"
    rows, _ = check_settings({**VALID, "SFOX_RETRY_WINDOW_HOURS": "0"})
    (row,) = [r for r in rows if r.name == "SFOX_RETRY_WINDOW_HOURS"]
    assert not row.ok and row.detail == "must be between 0.01 and 8760, got 0"


def test_every_documented_setting_is_read():
    s = load_settings(
        {
            **VALID,
            "SLACK_APP_TOKEN": "xapp-1-abc",
            "SLACK_API_URL": "http://127.0.0.1:9/api/",
            "SFOX_API_URL": "https://sandbox.example/",
            "SFOX_APPROVERS": " UALICE01 , UBOB0002,,",
            "SFOX_REQUIRED_APPROVALS": "2",
            "SFOX_REQUEST_TTL_SECONDS": "600",
            "DATABASE_URL": "postgresql://u@db/x",
            "HOST": "127.0.0.1",
            "PORT": "8080",
            "SFOX_BALANCE_CHECK": " Advisory ",
        },
        dotenv=False,
    )
    assert s.socket_mode and s.slack_app_token == "xapp-1-abc"
    assert s.slack_api_url == "http://127.0.0.1:9/api/"
    assert s.sfox_api_url == "https://sandbox.example"  # no trailing slash: paths are appended
    assert s.approvers == {"UALICE01", "UBOB0002"}
    assert (s.required_approvals, s.request_ttl_seconds) == (2, 600)
    assert s.database_url == "postgresql+psycopg://u@db/x"
    assert (s.host, s.port) == ("127.0.0.1", 8080)
    assert s.balance_check == "advisory"


def test_socket_mode_needs_no_signing_secret():
    env = env_with("SLACK_SIGNING_SECRET", None) | {"SLACK_APP_TOKEN": "xapp-1-abc"}
    assert load_settings(env, dotenv=False).require_for_run().socket_mode


@pytest.mark.parametrize(("setting", "value", "message"), [c for c in BAD if "cannot be used" not in c[2]])
def test_load_settings_names_the_bad_setting(setting, value, message):
    with pytest.raises(ConfigError) as caught:
        load_settings(env_with(setting, value), dotenv=False).require_for_run()
    assert caught.value.setting == setting
    assert message in str(caught.value)
    for secret in SECRET_VALUES:
        assert secret not in str(caught.value)


# -- the real entry points -----------------------------------------------------------------------


@pytest.fixture
def keep_logging():
    """`run` configures logging for the process (root handler on the then stderr, levels) before
    it opens the database; undo that so later tests do not log into a closed capture stream."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    levels = {
        name: logging.getLogger(name).level
        for name in ("httpx", "httpcore", "slack_sdk", "slack_bolt", "alembic")
    }
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, lvl in levels.items():
        logging.getLogger(name).setLevel(lvl)


@pytest.mark.parametrize(("setting", "value", "message"), BAD)
def test_run_stops_with_one_line_naming_the_setting(
    setting, value, message, monkeypatch, tmp_path, capsys, keep_logging
):
    monkeypatch.chdir(tmp_path)
    for name in [*VALID, setting]:
        monkeypatch.delenv(name, raising=False)
    for name, v in env_with(setting, value).items():
        monkeypatch.setenv(name, v)
    code = main(["run"])
    err = capsys.readouterr().err
    assert code != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert message in lines[0]
    for secret in SECRET_VALUES:
        assert secret not in err


def run_process(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    full = {"PATH": os.environ.get("PATH", ""), "HOME": str(cwd), **env}
    return subprocess.run(args, env=full, cwd=cwd, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("entry", ["sfox-bot", "python -m bot"])
@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        ("SLACK_BOT_TOKEN", None, "SLACK_BOT_TOKEN: is required but not set"),
        ("SFOX_REQUIRED_APPROVALS", "two", "SFOX_REQUIRED_APPROVALS: must be a whole number"),
        ("DATABASE_URL", "sqlite:////nonexistent-dir/sub/bot.db", "DATABASE_URL: cannot be used"),
    ],
)
def test_run_process_exits_non_zero_with_one_line(entry, setting, value, message, tmp_path):
    args = [SFOX_BOT, "run"] if entry == "sfox-bot" else [sys.executable, "-m", "bot", "run"]
    done = run_process(args, env_with(setting, value), tmp_path)
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("sfox-bot: configuration error: ") and message in lines[0]
    assert done.stdout == ""


def test_dotenv_in_the_working_directory_is_read_and_the_environment_wins(tmp_path):
    (tmp_path / ".env").write_text("SLACK_BOT_TOKEN=xoxb-from-dotenv\nSFOX_REQUIRED_APPROVALS=3\n")
    env = env_with("SLACK_BOT_TOKEN", None)
    env.pop("SFOX_API_KEY")
    # SLACK_BOT_TOKEN comes from .env, so the first missing setting is now SFOX_API_KEY.
    done = run_process([SFOX_BOT, "run"], env, tmp_path)
    assert done.returncode != 0
    assert "SFOX_API_KEY: is required but not set" in done.stderr, done.stderr
    # A value in the environment is not overridden by .env.
    env["SFOX_REQUIRED_APPROVALS"] = "many"
    done = run_process([SFOX_BOT, "run"], env, tmp_path)
    assert "SFOX_REQUIRED_APPROVALS: must be a whole number, got 'many'" in done.stderr, done.stderr


def test_dotenv_outside_the_working_directory_is_ignored(tmp_path):
    (tmp_path / ".env").write_text("SLACK_BOT_TOKEN=xoxb-from-parent\n")
    work = tmp_path / "work"
    work.mkdir()
    done = run_process([SFOX_BOT, "run"], env_with("SLACK_BOT_TOKEN", None), work)
    assert "SLACK_BOT_TOKEN: is required but not set" in done.stderr, done.stderr
