"""Issue 18: SFOX_POLICY_FILE is checked at load (start-up, `sfox-bot check`): every mistake is one
line naming the file, the line and what is wrong; the approver settings are refused beside it and
read as the equivalent policy without it; `sfox-bot policy` prints the policy with groups resolved."""

from __future__ import annotations

import io
import textwrap

import pytest

from bot.cli import policy as policy_cli
from bot.cli.check import check_settings
from bot.config import ConfigError, load_settings
from bot.policy.approvers import GroupDirectory
from bot.policy.effective import build_policy
from bot.policy.stages import Stage
from bot.slack.calls import make_web_client
from tests.conftest import ALICE, BOB, BOT_TOKEN, CAROL
from tests.test_ops_cli import run_cli  # noqa: F401 - the fixture

GOOD = """\
requesters: [UHELP001, S0HELPDESK]
approvals:
  - from: [S0COMPLIANCE]
    count: 1
    name: Compliance
  - from: [UBOB0002, UCAROL03]
    count: 1
step_up: totp
"""


def write(tmp_path, text: str) -> str:
    path = tmp_path / "policy.yaml"
    path.write_text(textwrap.dedent(text))
    return str(path)


def load(path: str, **env: str):
    return load_settings({"SFOX_POLICY_FILE": path, **env})


def test_a_good_file_is_read_with_its_stages_requesters_and_step_up(tmp_path):
    settings = load(write(tmp_path, GOOD))
    spec = settings.policy
    assert spec is not None and spec.requesters == ("UHELP001", "S0HELPDESK") and spec.step_up == "totp"
    assert spec.stages == (
        Stage(count=1, members=("S0COMPLIANCE",), name="Compliance"),
        Stage(count=1, members=("UBOB0002", "UCAROL03")),
    )
    assert spec.groups == ("S0COMPLIANCE", "S0HELPDESK")
    policy = build_policy(settings)
    assert policy.step_up == "totp" and policy.total_approvals == 2
    assert "UBOB0002" in policy.approvers and "UHELP001" not in policy.approvers
    assert "UHELP001" in policy.requesters
    assert not [e for e in settings.missing_for_run() if e.setting == "SFOX_APPROVERS"]
    assert load(write(tmp_path, "approvals: [{from: [UBOB0002], count: 1}]")).policy.step_up == "none"


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("", 1, "the file is empty"),
        ("approvals: [", 1, "not valid YAML"),
        ("approvals:\n  - from: [UBOB0002\n    count: 1\n", 3, "not valid YAML"),
        ("requesters: [UHELP001]\n", 1, "`approvals:` is missing"),
        ("approvals:\n  - from: [UBOB0002]\n    count: 1\nowner: me\n", 4, "unknown key 'owner'"),
        ("approvals: []\n", 1, "non-empty list of stages"),
        (
            "approvals:\n  - from: [UBOB0002]\n    count: 1\n    quorum: 2\n",
            4,
            "unknown key 'quorum' in stage 1",
        ),
        ("approvals:\n  - count: 1\n", 2, "stage 1 has no `from:`"),
        ("approvals:\n  - from: [UBOB0002]\n", 2, "stage 1 has no `count:`"),
        ("approvals:\n  - from: []\n    count: 1\n", 2, "`from` of stage 1 must be a non-empty list"),
        ("approvals:\n  - from: [UBOB0002]\n    count: 0\n", 3, "between 1 and 10, got 0"),
        ("approvals:\n  - from: [UBOB0002]\n    count: two\n", 3, "must be a whole number"),
        ("approvals:\n  - from: [UBOB0002]\n    count: true\n", 3, "must be a whole number"),
        (
            "approvals:\n  - from: [UBOB0002, UCAROL03]\n    count: 3\n",
            3,
            "stage 1 needs 3 approvals but lists only 2 people",
        ),
        (
            "approvals:\n  - from: [UBOB0002, bob]\n    count: 1\n",
            2,
            "'bob' in `from` of stage 1 is not a Slack",
        ),
        ("approvals:\n  - from: [C0CHANNEL]\n    count: 1\n", 2, "'C0CHANNEL'"),
        ("approvals:\n  - from: [UBOB0002, UBOB0002]\n    count: 1\n", 2, "UBOB0002 is listed twice"),
        (
            "approvals:\n  - from: [UBOB0002]\n    count: 1\n  - from: [UBOB0002]\n    count: 1\n",
            2,
            "stages 1, 2 can never all be met",
        ),
        (
            "requesters: []\napprovals:\n  - from: [UBOB0002]\n    count: 1\n",
            1,
            "`requesters` must be a non-empty",
        ),
        ("requesters: [help]\napprovals:\n  - from: [UBOB0002]\n    count: 1\n", 1, "'help' in `requesters`"),
        (
            "approvals:\n  - from: [UBOB0002]\n    count: 1\nstep_up: sms\n",
            4,
            "`step_up` must be one of none, totp",
        ),
        ("approvals:\n  - from: [UBOB0002]\n    count: 1\n    name: ''\n", 4, "`name` of stage 1"),
        ("approvals:\n  - from: [UBOB0002]\n    count: 1\napprovals: []\n", 4, "`approvals` is given twice"),
        ("- just\n- a list\n", 1, "the policy must be a mapping"),
        (
            "approvals: !!python/object/apply:os.system [ls]\n",
            1,
            "the tag 'tag:yaml.org,2002:python/object/apply:os.system' is not allowed",
        ),
    ],
)
def test_every_mistake_names_the_file_and_the_line(tmp_path, text, line, words):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load(path)
    assert err.value.setting == "SFOX_POLICY_FILE"
    assert err.value.problem.startswith(f"{path}, line {line}: "), err.value.problem
    assert words in err.value.problem
    assert "\n" not in str(err.value)


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(ConfigError) as err:
        load(str(tmp_path / "nope.yaml"))
    assert "nope.yaml: no such file" in str(err.value)


def test_the_approver_settings_are_refused_beside_a_file(tmp_path):
    path = write(tmp_path, GOOD)
    with pytest.raises(ConfigError) as err:
        load(path, SFOX_APPROVERS=ALICE, SFOX_REQUIRED_APPROVALS="2")
    assert err.value.setting == "SFOX_POLICY_FILE"
    assert "SFOX_APPROVERS, SFOX_REQUIRED_APPROVALS must be unset" in err.value.problem
    with pytest.raises(ConfigError) as err:
        load(path, SFOX_APPROVER_GROUP="S0ADMINS")
    assert "SFOX_APPROVER_GROUP must be unset" in err.value.problem


def test_the_files_step_up_needs_the_mfa_key_and_stands_alone(tmp_path):
    """`step_up:` in the file is the second factor in force; SFOX_STEP_UP beside a file is refused
    (two places saying it could disagree), and SFOX_MFA_KEY is named when the file turns it on."""
    path = write(tmp_path, GOOD)  # step_up: totp
    settings = load(path)
    assert settings.effective_step_up == "totp"
    missing = [e for e in settings.missing_for_run() if e.setting == "SFOX_MFA_KEY"]
    assert len(missing) == 1 and "the policy file's step_up is totp" in missing[0].problem
    with pytest.raises(ConfigError) as err:
        load(path, SFOX_STEP_UP="none")
    assert err.value.setting == "SFOX_POLICY_FILE" and "SFOX_STEP_UP must be unset" in err.value.problem


def test_without_a_file_the_old_settings_are_the_equivalent_policy():
    settings = load_settings(
        {
            "SFOX_APPROVERS": f"{ALICE},{BOB}",
            "SFOX_APPROVER_GROUP": "S0ADMINS",
            "SFOX_REQUIRED_APPROVALS": "2",
        }
    )
    spec = settings.policy_spec()
    assert spec.requesters is None and spec.step_up == "none"
    assert spec.stages == (Stage(count=2, members=(ALICE, BOB, "S0ADMINS")),)
    policy = build_policy(settings)
    assert policy.total_approvals == 2 and policy.requesters is None and ALICE in policy.approvers


def test_check_names_the_file_problem_in_its_row(tmp_path):
    path = write(tmp_path, "approvals:\n  - from: [UBOB0002]\n    count: 5\n")
    rows, settings = check_settings({"SFOX_POLICY_FILE": path})
    (row,) = [r for r in rows if r.name == "SFOX_POLICY_FILE"]
    assert settings is None and not row.ok and f"{path}, line 3:" in row.detail


def test_run_and_policy_stop_with_one_line_and_no_traceback(run_cli, tmp_path):  # noqa: F811
    path = write(tmp_path, "approvals:\n  - from: [UBOB0002]\n    count: 1\n    extra: 1\n")
    for command in ("run", "policy", "check"):
        code, out, err = run_cli(command, env={"SFOX_POLICY_FILE": path})
        assert code != 0
        if command == "check":
            assert f"{path}, line 4: unknown key 'extra' in stage 1" in out
            continue
        assert err.count("\n") == 1 and "Traceback" not in err
        assert err.startswith("sfox-bot: configuration error: SFOX_POLICY_FILE: ")
        assert f"{path}, line 4: unknown key 'extra' in stage 1" in err


def test_sfox_bot_policy_prints_the_policy_with_groups_resolved(run_cli, fake_slack, tmp_path):  # noqa: F811
    fake_slack.usergroups["S0COMPLIANCE"] = [CAROL, "UDAVE004"]
    fake_slack.fail("usergroups.users.list", "missing_scope", times=1)  # the first group read: S0HELPDESK
    path = write(tmp_path, GOOD)
    env = {"SFOX_POLICY_FILE": path, "SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_API_URL": fake_slack.api_url}
    code, out, err = run_cli("policy", env=env)
    assert code == 0, err
    assert f"Approval policy (from {path})" in out
    assert "Who may ask: UHELP001, S0HELPDESK" in out
    assert "S0HELPDESK: cannot be read from Slack (missing_scope)" in out
    assert "1. Compliance: 1 of S0COMPLIANCE" in out and f"S0COMPLIANCE: {CAROL}, UDAVE004" in out
    assert "2. 1 of UBOB0002, UCAROL03" in out
    assert "Second factor on Approve (step_up): totp" in out
    fake_slack.refusals.clear()


def test_sfox_bot_policy_without_a_file_prints_the_equivalent_policy(fake_slack):
    settings = load_settings({"SFOX_APPROVERS": f"{ALICE},{BOB}", "SFOX_REQUIRED_APPROVALS": "2"})
    out = io.StringIO()
    directory = GroupDirectory(make_web_client(BOT_TOKEN, fake_slack.api_url))
    policy_cli.render(settings, directory, out)
    text = out.getvalue()
    assert "(from SFOX_APPROVERS, SFOX_APPROVER_GROUP, SFOX_REQUIRED_APPROVALS)" in text
    assert "Who may ask: every person in any stage" in text
    assert f"1. 2 of {ALICE}, {BOB}" in text and "step_up): none" in text


def test_check_online_reads_every_group_the_policy_names(run_cli, fake_slack, fake_sfox, tmp_path):  # noqa: F811
    from tests.conftest import bot_env
    from tests.test_ops_cli import rows

    fake_slack.usergroups["S0COMPLIANCE"] = [CAROL]
    path = write(tmp_path, GOOD)  # also names S0HELPDESK, unknown to Slack
    env = bot_env(fake_slack, fake_sfox, f"sqlite:///{tmp_path / 'bot.db'}", SFOX_POLICY_FILE=path)
    env.pop("SFOX_APPROVERS")
    run_cli("migrate", env=env)
    code, out, _ = run_cli("check", "--online", env=env)
    table = rows(out)
    assert table["SFOX_POLICY_FILE"][0] == "ok"
    assert table["Slack user group S0COMPLIANCE (usergroups.users.list)"] == (
        "ok",
        "S0COMPLIANCE: 1 member(s)",
    )
    assert table["Slack user group S0HELPDESK (usergroups.users.list)"][0] == "FAIL"
    assert code == 1


# -- issue 32: the intake API's `intake: {require_slack_user: …}` ---------------------------------

STAGE = "approvals:\n  - from: [UBOB0002]\n    count: 1\n"


def test_the_intake_option_is_read_from_the_file_and_from_its_setting_without_one(tmp_path):
    assert load(write(tmp_path, STAGE)).policy.intake_require_slack_user is False
    settings = load(write(tmp_path, STAGE + "intake:\n  require_slack_user: true\n"))
    assert settings.policy.intake_require_slack_user is True
    assert build_policy(settings).intake_require_slack_user is True
    assert (
        load(
            write(tmp_path, STAGE + "intake: {require_slack_user: false}\n")
        ).policy.intake_require_slack_user
        is False
    )
    env = {"SFOX_APPROVERS": ALICE, "SFOX_INTAKE_REQUIRE_SLACK_USER": "true"}
    without = load_settings(env)
    assert without.policy_spec().intake_require_slack_user is True
    assert build_policy(without).intake_require_slack_user is True
    assert build_policy(load_settings({"SFOX_APPROVERS": ALICE})).intake_require_slack_user is False


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("intake: true\n", 4, "`intake` must be a mapping with the keys require_slack_user"),
        ("intake:\n  require_slack_user: yes\n", 5, "`require_slack_user` of `intake` must be true or false"),
        ("intake:\n  require_slack_user: 1\n", 5, "must be true or false, got '1'"),
        ("intake:\n  require_slack_user: 'true'\n", 5, "must be true or false"),
        ("intake:\n  required: true\n", 5, "unknown key 'required' in `intake`"),
        ("intake: {}\n", 4, "`intake` must be a mapping with the keys require_slack_user"),
    ],
)
def test_a_bad_intake_option_names_the_file_and_the_line(tmp_path, text, line, words):
    path = write(tmp_path, STAGE + text)
    with pytest.raises(ConfigError) as err:
        load(path)
    assert err.value.setting == "SFOX_POLICY_FILE"
    assert err.value.problem.startswith(f"{path}, line {line}: "), err.value.problem
    assert words in err.value.problem


def test_the_intake_setting_is_refused_beside_a_file_and_checked_alone(tmp_path):
    with pytest.raises(ConfigError) as err:
        load(write(tmp_path, STAGE), SFOX_INTAKE_REQUIRE_SLACK_USER="true")
    assert err.value.setting == "SFOX_POLICY_FILE"
    assert "SFOX_INTAKE_REQUIRE_SLACK_USER must be unset" in err.value.problem
    with pytest.raises(ConfigError) as err:
        load_settings({"SFOX_INTAKE_REQUIRE_SLACK_USER": "maybe"})
    assert err.value.setting == "SFOX_INTAKE_REQUIRE_SLACK_USER" and "true, false" in err.value.problem


def test_sfox_bot_policy_says_whether_intake_requests_must_name_a_slack_user(tmp_path):
    out = io.StringIO()
    policy_cli.render(load(write(tmp_path, STAGE + "intake: {require_slack_user: true}\n")), None, out)
    assert (
        "Intake API requests must name their Slack user (intake: require_slack_user): true" in out.getvalue()
    )
    out = io.StringIO()
    policy_cli.render(load_settings({"SFOX_APPROVERS": ALICE}), None, out)
    assert "(intake: require_slack_user): false" in out.getvalue()
