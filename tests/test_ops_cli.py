"""The `sfox-bot` command as ops people use it: check, history, show, help, and one-line errors."""

from __future__ import annotations

import csv
import io
import json
import os
import pty
import subprocess
from datetime import UTC, datetime, timedelta

import pytest

from bot.cli.main import build_parser, main
from bot.config import setting_names
from bot.fakes.sfox_api import Fault
from tests.conftest import ALICE, BOB, BOT_TOKEN, CAROL, SFOX_KEY, SIGNING_SECRET, bot_env
from tests.helpers import open_request, wait_status
from tests.ops_support import SFOX_BOT, clean_env, cli

SECRETS = (BOT_TOKEN, SIGNING_SECRET, SFOX_KEY)
TOKENS = "sFOX user tokens (POST /v1/enterprise/user-tokens)"


@pytest.fixture
def run_cli(monkeypatch, tmp_path):
    """`sfox-bot ARGS` in this process with exactly `env` as its environment; returns
    (exit code, stdout, stderr)."""

    def run(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
        for name in setting_names():
            monkeypatch.delenv(name, raising=False)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        monkeypatch.chdir(tmp_path)
        out, err = io.StringIO(), io.StringIO()
        monkeypatch.setattr("sys.stdout", out)
        monkeypatch.setattr("sys.stderr", err)
        try:
            code = main(list(args))
        except SystemExit as exc:  # argparse: --help, usage errors
            code = int(exc.code or 0)
        monkeypatch.undo()
        return code, out.getvalue(), err.getvalue()

    return run


@pytest.fixture
def recorded(bot, database_url):
    """A database with three requests: succeeded (ALICE for client_1), denied (BOB for client_late),
    pending (CAROL for client_3)."""
    r1, c1 = open_request(bot, ALICE, "client_1 left the company")
    bot.driver.click(BOB, "sfox_approve", str(r1.id), c1.ts)
    wait_status(bot, r1.id, "succeeded")
    r2, c2 = open_request(bot, BOB, "client_late =HYPERLINK(evil)")
    bot.driver.click(ALICE, "sfox_deny", str(r2.id), c2.ts)
    wait_status(bot, r2.id, "denied")
    r3, _ = open_request(bot, CAROL, "client_3")
    env = bot_env(bot.slack, bot.sfox, database_url)
    return {"env": env, "ids": (r1.id, r2.id, r3.id)}


# -- help --------------------------------------------------------------------------------------


def test_every_command_and_option_has_help_text():
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    assert set(commands) >= {"run", "migrate", "check", "history", "show", "sweep"}
    for name, sub in commands.items():
        assert sub.description, f"{name} has no description"
        for action in sub._actions:
            assert action.help, f"{name} {action.option_strings or action.dest} has no help"


def test_help_runs_for_every_command(tmp_path, capsys):
    # The installed command once; every subcommand's help in this process (each `sfox-bot`
    # process costs about a second of CPU to start, and the help is the same parser either way).
    result = subprocess.run([SFOX_BOT, "--help"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0 and "usage: sfox-bot" in result.stdout
    commands = [name for action in build_parser()._subparsers._group_actions for name in action.choices]
    assert {"run", "migrate", "check", "history", "show", "sweep", "policy", "mfa"} <= set(commands)
    for command in commands:
        with pytest.raises(SystemExit) as done:
            main([command, "--help"])
        assert done.value.code == 0 and "usage: sfox-bot" in capsys.readouterr().out, command


# -- check -------------------------------------------------------------------------------------


def rows(stdout: str) -> dict[str, tuple[str, str]]:
    """The check table as {name: (result, detail)}, without its header and summary lines."""
    out = {}
    for line in stdout.splitlines()[1:-1]:
        name, rest = line.split("  ", 1)
        result, _, detail = rest.lstrip().partition("  ")
        out[name.strip()] = (result.strip(), detail.strip())
    return out


def test_check_passes_on_a_good_setup_and_prints_no_secret(run_cli, fake_slack, fake_sfox, tmp_path):
    db = f"sqlite:///{tmp_path / 'bot.db'}"
    env = bot_env(fake_slack, fake_sfox, db)
    assert run_cli("migrate", env=env)[0] == 0
    code, out, _ = run_cli("check", env=env)
    assert code == 0, out
    table = rows(out)
    assert set(setting_names()) <= set(table)
    assert table["SLACK_BOT_TOKEN"] == ("ok", "set (hidden)")
    assert table["SFOX_API_KEY"] == ("ok", "set (hidden)")
    assert table["database"][0] == "ok"
    assert table["run mode"][1].startswith("HTTP")
    assert out.splitlines()[-1] == "all checks passed"
    assert not any(secret in out for secret in SECRETS)


def test_check_reports_every_bad_setting_at_once(run_cli, fake_slack, fake_sfox, tmp_path):
    env = bot_env(fake_slack, fake_sfox, f"sqlite:///{tmp_path / 'none.db'}")
    env.update(
        SLACK_BOT_TOKEN="not-a-bot-token-SECRET",
        SFOX_REQUIRED_APPROVALS="zero",
        PORT="99999",
        SFOX_ALLOWED_CHANNELS="general",
    )
    del env["SFOX_API_KEY"]
    code, out, _ = run_cli("check", env=env)
    assert code == 1
    table = rows(out)
    failed = {name for name, (result, _) in table.items() if result == "FAIL"}
    assert failed == {"SLACK_BOT_TOKEN", "SFOX_REQUIRED_APPROVALS", "PORT", "SFOX_ALLOWED_CHANNELS"}
    assert table["SLACK_BOT_TOKEN"][1] == "must start with 'xoxb-'"
    assert "not-a-bot-token-SECRET" not in out
    assert out.splitlines()[-1] == "4 check(s) failed"


def test_check_names_missing_required_settings_and_the_unmigrated_database(run_cli, tmp_path):
    code, out, _ = run_cli("check", env={"DATABASE_URL": f"sqlite:///{tmp_path / 'none.db'}"})
    assert code == 1
    table = rows(out)
    for name in ("SLACK_BOT_TOKEN", "SFOX_API_KEY", "SLACK_SIGNING_SECRET", "SFOX_APPROVERS"):
        assert table[name][0] == "FAIL", name
    assert "run `sfox-bot migrate`" in table["database"][1]


def test_check_online_proves_both_credentials(run_cli, fake_slack, fake_sfox, tmp_path):
    db = f"sqlite:///{tmp_path / 'bot.db'}"
    fake_slack.usergroups["S0ADMINS"] = ["UDAVE004", "UERIN005"]
    env = bot_env(fake_slack, fake_sfox, db, SFOX_APPROVER_GROUP="S0ADMINS")
    run_cli("migrate", env=env)
    code, out, _ = run_cli("check", "--online", env=env)
    assert code == 0, out
    table = rows(out)
    assert table["Slack bot token (auth.test)"] == ("ok", "bot user UBOT in workspace Test")
    assert table["Slack approver group (usergroups.users.list)"] == ("ok", "S0ADMINS: 2 member(s)")
    assert table["sFOX API key (GET /v1/enterprise/users)"][0] == "ok"
    assert table[TOKENS] == ("ok", "skipped: name an existing sFOX user with --probe-user ID to test it")
    assert [r.method for r in fake_sfox.requests()] == ["GET"]  # a read, nothing else
    assert {m for m, _ in fake_slack.calls} == {"auth.test", "usergroups.users.list"}
    assert not any(secret in out for secret in SECRETS)


def test_check_online_probes_user_tokens_for_a_named_user(run_cli, fake_slack, fake_sfox, tmp_path):
    env = bot_env(fake_slack, fake_sfox, f"sqlite:///{tmp_path / 'bot.db'}")
    run_cli("migrate", env=env)
    code, out, _ = run_cli("check", "--online", "--probe-user", "client_1", env=env)
    assert code == 0, out
    assert rows(out)[TOKENS] == (
        "ok",
        "the key may create user tokens (one for client_1 was issued and dropped)",
    )
    assert [(r.method, r.raw_path) for r in fake_sfox.requests()][-1] == (
        "POST",
        "/v1/enterprise/user-tokens/client_1",
    )
    assert not any(r.raw_path == "/v1/user/balance" for r in fake_sfox.requests())  # not used
    [token] = fake_sfox.tokens
    assert token not in out

    code, out, _ = run_cli("check", "--online", "--probe-user", "ghost", env=env)
    assert code == 1
    assert rows(out)[TOKENS][0] == "FAIL" and "does not know ghost" in rows(out)[TOKENS][1]

    fake_sfox.script(Fault(method="POST", status=403, body={"error": "Forbidden"}))
    code, out, _ = run_cli("check", "--online", "--probe-user", "client_1", env=env)
    assert code == 1
    assert "may not create user tokens" in rows(out)[TOKENS][1]
    assert "SFOX_BALANCE_CHECK=off" in rows(out)[TOKENS][1]

    code, out, _ = run_cli("check", "--online", "--probe-user", "../x", env=env)
    assert code == 1 and "not a valid sFOX user id" in rows(out)[TOKENS][1]


def test_check_online_fails_on_wrong_credentials_without_printing_them(
    run_cli, fake_slack, fake_sfox, tmp_path
):
    db = f"sqlite:///{tmp_path / 'bot.db'}"
    wrong_bot, wrong_key = "xoxb-wrong-SECRET-1", "wrong-sfox-SECRET-2"
    env = bot_env(fake_slack, fake_sfox, db, SLACK_BOT_TOKEN=wrong_bot, SFOX_API_KEY=wrong_key)
    env["SFOX_APPROVER_GROUP"] = "S0ADMINS"
    run_cli("migrate", env=env)
    code, out, err = run_cli("check", "--online", env=env)
    assert code == 1
    table = rows(out)
    assert table["Slack bot token (auth.test)"] == ("FAIL", "Slack said invalid_auth")
    assert table["sFOX API key (GET /v1/enterprise/users)"][0] == "FAIL"
    assert "SFOX_API_KEY" in table["sFOX API key (GET /v1/enterprise/users)"][1]
    assert table["Slack approver group (usergroups.users.list)"][0] == "FAIL"
    for secret in (wrong_bot, wrong_key, *SECRETS):
        assert secret not in out + err


def test_check_online_points_at_the_missing_scope(run_cli, fake_slack, fake_sfox, tmp_path):
    db = f"sqlite:///{tmp_path / 'bot.db'}"
    fake_slack.fail("usergroups.users.list", "missing_scope")
    env = bot_env(fake_slack, fake_sfox, db, SFOX_APPROVER_GROUP="S0ADMINS")
    run_cli("migrate", env=env)
    code, out, _ = run_cli("check", "--online", env=env)
    assert code == 1
    assert "usergroups:read" in rows(out)["Slack approver group (usergroups.users.list)"][1]


def test_check_online_in_socket_mode_proves_the_app_token(run_cli, fake_slack, fake_sfox, tmp_path):
    db = f"sqlite:///{tmp_path / 'bot.db'}"
    fake_slack.socket_url = "ws://127.0.0.1:9/link"
    env = bot_env(fake_slack, fake_sfox, db, SLACK_APP_TOKEN=fake_slack.app_token)
    del env["SLACK_SIGNING_SECRET"]
    run_cli("migrate", env=env)
    code, out, _ = run_cli("check", "--online", env=env)
    assert code == 0, out
    table = rows(out)
    assert table["run mode"][1].startswith("Socket Mode")
    assert table["SLACK_SIGNING_SECRET"][0] == "ok"  # not needed in Socket Mode
    assert table["Slack app token (apps.connections.open)"][0] == "ok"
    assert fake_slack.app_token not in out


def test_check_reads_dotenv_from_the_working_directory(fake_slack, fake_sfox, tmp_path):
    env = bot_env(fake_slack, fake_sfox, f"sqlite:///{tmp_path / 'bot.db'}")
    (tmp_path / ".env").write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    assert cli("migrate", env={}, cwd=tmp_path).returncode == 0
    result = cli("check", env={}, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "set (hidden)" in result.stdout


# -- history and show --------------------------------------------------------------------------


def test_history_filters_and_formats(run_cli, recorded):
    env = recorded["env"]
    succeeded, denied, pending = recorded["ids"]

    def ids(*args: str) -> list[int]:
        code, out, err = run_cli("history", "--format", "json", *args, env=env)
        assert code == 0, err
        return [row["id"] for row in json.loads(out)]

    assert ids() == [pending, denied, succeeded]
    assert ids("--status", "succeeded") == [succeeded]
    assert ids("--status", "denied") == [denied]
    assert ids("--user", "client_3") == [pending]  # by sFOX user id
    assert ids("--user", BOB) == [denied]  # by requester's Slack id
    assert ids("--since", "1h") == [pending, denied, succeeded]
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()
    assert ids("--since", tomorrow) == []
    assert ids("--limit", "1") == [pending]

    code, out, _ = run_cli("history", "--format", "csv", "--status", "denied", env=env)
    (row,) = list(csv.DictReader(io.StringIO(out)))
    assert row["id"] == str(denied) and row["denied_by"] == ALICE
    assert row["reason"] == "'=HYPERLINK(evil)"  # no formula runs in a spreadsheet

    code, out, _ = run_cli("history", "--format", "table", env=env)
    header, *lines = out.splitlines()
    assert header.split() == [
        "id",
        "created_at",
        "status",
        "sfox_user_id",
        "requested_by",
        "approved_by",
        "http",
        "error",
    ]
    assert lines[-1].split()[:1] == [str(succeeded)] and "succeeded" in lines[-1] and BOB in lines[-1]


def test_history_in_a_terminal_is_a_table_and_json_when_piped(recorded, tmp_path):
    env = clean_env(recorded["env"])
    piped = subprocess.run([SFOX_BOT, "history"], env=env, cwd=tmp_path, capture_output=True, text=True)
    assert isinstance(json.loads(piped.stdout), list)
    leader, follower = pty.openpty()
    proc = subprocess.Popen([SFOX_BOT, "history"], env=env, cwd=tmp_path, stdout=follower, stderr=follower)
    os.close(follower)
    proc.wait(30)
    chunks = []
    while True:
        try:
            data = os.read(leader, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    os.close(leader)
    text = b"".join(chunks).decode()
    assert text.splitlines()[0].split()[:3] == ["id", "created_at", "status"]


def test_show_prints_the_full_event_trail(run_cli, recorded):
    succeeded = recorded["ids"][0]
    code, out, _ = run_cli("show", str(succeeded), env=recorded["env"])
    assert code == 0
    assert "client_1" in out and "succeeded" in out
    trail = out.split("events:")[1]
    for kind in ("requested", "card_posted", "approved", "claimed", "sfox_call_started", "sfox_delete"):
        assert kind in trail
    assert "http=200" in trail
    code, out, _ = run_cli("show", str(succeeded), "--format", "json", env=recorded["env"])
    data = json.loads(out)
    assert data["status"] == "succeeded" and data["approved_by"] == [BOB]
    assert [e["kind"] for e in data["events"]][0] == "requested"
    assert data["events"][-1]["at"] >= data["events"][0]["at"]


# -- errors are one line -----------------------------------------------------------------------


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_errors_are_one_readable_line(recorded, tmp_path):
    env = recorded["env"]
    assert one_line_error(cli("show", "999", env=env, cwd=tmp_path)) == "sfox-bot: no request with id 999"
    line = one_line_error(cli("history", "--status", "done", env=env, cwd=tmp_path))
    assert line.startswith("sfox-bot history: argument --status: invalid choice: 'done'")
    line = one_line_error(cli("history", env={**env, "SFOX_REQUIRED_APPROVALS": "two"}, cwd=tmp_path))
    assert line == "sfox-bot: configuration error: SFOX_REQUIRED_APPROVALS: must be a whole number, got 'two'"


@pytest.mark.parametrize("command", [["history"], ["show", "1"], ["sweep"], ["run", "--no-migrate"]])
def test_an_unmigrated_database_is_named_with_the_fix(command, fake_slack, fake_sfox, tmp_path):
    env = bot_env(fake_slack, fake_sfox, f"sqlite:///{tmp_path / 'empty.db'}")
    line = one_line_error(cli(*command, env=env, cwd=tmp_path))
    assert "run `sfox-bot migrate` first" in line


@pytest.mark.parametrize("command", [["history"], ["migrate"], ["run"], ["show", "1"]])
def test_an_unreachable_database_is_one_line(command, fake_slack, fake_sfox, tmp_path):
    env = bot_env(fake_slack, fake_sfox, "postgresql+psycopg://postgres:pw-SECRET@127.0.0.1:9/nowhere")
    line = one_line_error(cli(*command, env=env, cwd=tmp_path))
    assert line.startswith("sfox-bot: ") and "DATABASE_URL" in line
    assert "pw-SECRET" not in line


def test_no_command_prints_help(tmp_path):
    result = cli(env={}, cwd=tmp_path)
    assert result.returncode == 2 and "COMMAND" in result.stdout
