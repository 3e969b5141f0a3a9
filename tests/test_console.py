"""`sfox-bot console` driven through its standard input, as a separate process."""

from __future__ import annotations

from tests.conftest import SFOX_KEY
from tests.sandbox_run import history, sfox_bot

SESSION = """\
users
/sfox-deactivate client_1 leaving the company
approve 1
as mallory
approve 1
/sfox-deactivate client_3
as bob
approve 1
deny 1
# a comment, then a blank line

/sfox-deactivate client_1 again
/sfox-deactivate client_2 closing
/sfox-deactivate client_late closing
as alice
approve 3
show 1
history
approve x
as nobody
/sfox-list
frobnicate
quit
/sfox-deactivate client_3 never read: after quit
"""


def in_order(out: str, *moments: str) -> None:
    at = 0
    for moment in moments:
        found = out.find(moment, at)
        assert found >= 0, f"missing, or out of order: {moment!r}\n\n{out}"
        at = found + len(moment)


def test_console_session_from_a_pipe(tmp_path):
    done = sfox_bot(tmp_path, "console", stdin=SESSION)
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    assert done.stderr == ""
    in_order(
        out,
        "You are alice.",
        "alice> users",
        "alice    UALICE    approver  ← you",
        "mallory  UMALLORY  not an approver",
        "sFOX accounts (fake):",
        "client_1           Ada Lovelace       VERIFIED  balances: all zero",
        "client_2           Grace Hopper       VERIFIED  balances: USD 1250 (100 held), BTC 0.5",
        "client_held        Hedy Lamarr        VERIFIED  balances: USD 40 (40 held)",
        "client_late        Katherine Johnson  VERIFIED  balances: all zero; then USD 75 arrives",
        "client_unreadable  Claude Shannon     VERIFIED  balances: all zero; the balance read fails (HTTP 500)",
        "alice> /sfox-deactivate client_1 leaving the company",
        "(only visible to alice) Looking up `client_1` on sFOX…",
        "the bot posts card #1:",
        "│ Reason        leaving the company",
        "│ [ Approve ]  [ Deny ]",
        "alice> approve 1",
        "alice › clicks [ Approve ] on card #1",
        "(only visible to alice) You requested this deactivation, so you cannot approve it",
        "alice> as mallory",
        "You are now mallory (UMALLORY, not an approver).",
        "mallory> approve 1",
        "(only visible to mallory) ⛔ You are not on the sFOX approver list, so you cannot approve or deny.",
        "mallory> /sfox-deactivate client_3",
        "(only visible to mallory) ⛔ You are not on the sFOX approver list, so you cannot request",
        "bob> approve 1",
        "sFOX API  DELETE /v1/enterprise/account/client_1 → 200",
        "bob> deny 1",
        "clicks [ Deny ] on card #1  (the card does not show this button now",
        "(only visible to bob) Request #1 is done: the account is deactivated; your click changed nothing.",
        "bob> /sfox-deactivate client_1 again",
        "sFOX API  GET /v1/enterprise/users/client_1 → 404",
        "(only visible to bob) 🔍 No such sFOX user: `client_1`. Nothing was posted.",
        "bob> /sfox-deactivate client_2 closing",
        "(only visible to bob) 💰 `client_2` still holds funds on sFOX: USD 1250 (100 held), BTC 0.5.",
        "bob> /sfox-deactivate client_late closing",
        "the bot posts card #3:",
        "│ Balances: all zero (checked ",
        "alice> approve 3",
        "sFOX API  DELETE /v1/enterprise/account/client_late → 422",
        "alice> show 1",
        "┌─ sFOX account deactivation #1",
        "│ ✅ Deactivated on sFOX · approved by @bob",
        "audit trail:",
        "requested           alice",
        "approved            bob",
        "sfox_delete         http=200",
        "alice> history",
        "failed     client_late",
        "blocked    client_2",
        "succeeded  client_1",
        "alice> approve x",
        "Which card? `approve N`",
        "alice> as nobody",
        "Nobody called 'nobody'; people here: alice, bob, mallory.",
        "alice> /sfox-list",
        "/sfox-list is not a command here",
        "alice> frobnicate",
        "Unknown command 'frobnicate'; type `help`.",
        "alice> quit",
    )
    assert "never read" not in out
    assert out.count("DELETE /v1/enterprise/account/client_1") == 1
    assert "client_3" not in "".join(r["sfox_user_id"] for r in history(tmp_path))
    recorded = [(r["id"], r["sfox_user_id"], r["status"], r["http_status"]) for r in history(tmp_path)]
    assert recorded == [
        (3, "client_late", "failed", 422),
        (2, "client_2", "blocked", None),
        (1, "client_1", "succeeded", 200),
    ]
    assert "DELETE /v1/enterprise/account/client_2" not in out


def test_console_ends_at_end_of_input_and_keeps_what_was_done(tmp_path):
    done = sfox_bot(tmp_path, "console", stdin="help\n/sfox-deactivate client_1 pending for now")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "approve N | deny N [reason] | retry N" in done.stdout
    assert "the bot posts card #1:" in done.stdout
    assert [r["status"] for r in history(tmp_path)] == ["pending"]

    # The next session finds the open request: the bot says so, and bob can still deny it.
    again = sfox_bot(tmp_path, "console", stdin="as bob\n/sfox-deactivate client_1\ndeny 1\n")
    assert again.returncode == 0, again.stdout + again.stderr
    in_order(
        again.stdout,
        "bob> /sfox-deactivate client_1",
        "is already open (#1, pending, requested by",
        "bob> deny 1",
        "bob › clicks [ Deny ] on card #1\n",
        "card #1 updated:",
        "🚫 Denied by @bob",
        "↳ in the thread of card #1: @bob denied this request from @alice.",
    )
    assert again.stderr == ""
    assert [r["status"] for r in history(tmp_path)] == ["denied"]


def test_real_sfox_needs_both_settings(tmp_path):
    done = sfox_bot(tmp_path, "console", "--real-sfox", stdin="yes\n", SFOX_API_KEY="k")
    assert done.returncode == 1
    assert "--real-sfox needs SFOX_API_URL" in done.stderr
    assert not (tmp_path / "sfox-bot.db").exists()


def test_real_sfox_without_confirmation_sends_nothing(tmp_path, fake_sfox):
    done = sfox_bot(
        tmp_path,
        "console",
        "--real-sfox",
        stdin="no\n/sfox-deactivate client_1 x\n",
        SFOX_API_URL=fake_sfox.url,
        SFOX_API_KEY=SFOX_KEY,
    )
    assert done.returncode == 1
    assert "DEACTIVATES A REAL ACCOUNT" in done.stderr and "PERMANENT" in done.stderr
    assert "not confirmed; nothing was sent to sFOX" in done.stderr
    assert SFOX_KEY not in done.stderr + done.stdout
    assert fake_sfox.requests() == []
    assert not (tmp_path / "sfox-bot.db").exists()


def test_real_sfox_after_confirmation(tmp_path, fake_sfox):
    """`--real-sfox` pointed at a stand-in for the real API: the one DELETE reaches it."""
    done = sfox_bot(
        tmp_path,
        "console",
        "--fresh",
        "--real-sfox",
        stdin="yes\n/sfox-deactivate client_1 rehearsal\nas bob\napprove 1\n",
        SFOX_API_URL=fake_sfox.url,
        SFOX_API_KEY=SFOX_KEY,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "WARNING" in done.stderr
    assert f"the sFOX API at {fake_sfox.url}" in done.stdout
    assert "✅ Deactivated on sFOX · approved by @bob" in done.stdout
    assert fake_sfox.deletes["client_1"] == 1
    # The key on every enterprise call; the one balance read carries the user token instead.
    assert "Balances: all zero (checked " in done.stdout
    for seen in fake_sfox.requests():
        if seen.raw_path == "/v1/user/balance":
            assert seen.headers["authorization"].removeprefix("Bearer ") in fake_sfox.tokens
        else:
            assert seen.headers["authorization"] == f"Bearer {SFOX_KEY}"
    assert SFOX_KEY not in done.stderr + done.stdout


def test_console_shows_a_reminder_a_deny_reason_and_the_requesters_dm(tmp_path):
    script = "/sfox-deactivate client_1 leaving\nsweep\nsweep\nas bob\ndeny 1 wrong account\n"
    done = sfox_bot(tmp_path, "console", stdin=script)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert out.count("🔔 Reminder: request #1") == 1  # one reminder, however often it sweeps
    assert "bob › submits the Deny dialog (reason “wrong account”)" in out
    assert "🚫 Denied by @bob: wrong account" in out
    assert "(DM to alice)  the bot says: 🚫 Your request #1 to deactivate `client_1`" in out


POLICY = """\
requesters: [UHELP1]
approvals:
  - from: [S0COMPLIANCE]
    count: 1
    name: Compliance
  - from: [UBOB, UCAROL]
    count: 1
    name: Support leads
"""

POLICY_SESSION = """\
users
group S0COMPLIANCE ucarol,udave
/sfox-deactivate client_1 leaving
as uhelp1
/sfox-deactivate client_1 leaving
as ucarol
approve 1
as ucarol
approve 1
as bob
approve 1
quit
"""


def test_console_under_a_policy_file(tmp_path):
    (tmp_path / "policy.yaml").write_text(POLICY)
    done = sfox_bot(
        tmp_path, "console", "--fresh", "--policy", str(tmp_path / "policy.yaml"), stdin=POLICY_SESSION
    )
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    in_order(
        out,
        "uhelp1   UHELP1    not an approver",
        "S0COMPLIANCE now holds UCAROL, UDAVE.",
        "You are not on the sFOX requester list",
        "Compliance 0 of 1 · Support leads 0 of 1",
        "Still waiting for: Support leads",
        "Compliance 1 of 1: @UCAROL · Support leads 0 of 1",
        "You have already approved this request.",
        "Deactivated",
    )


def test_console_refuses_a_bad_policy_file_in_one_line(tmp_path):
    (tmp_path / "policy.yaml").write_text("approvals: []\n")
    done = sfox_bot(tmp_path, "console", "--fresh", "--policy", str(tmp_path / "policy.yaml"))
    assert done.returncode != 0
    assert (
        done.stderr.count("\n") == 1
        and "policy.yaml, line 1: `approvals` must be a non-empty list" in done.stderr
    )


def test_console_says_it_cannot_give_a_second_factor(tmp_path):
    """A policy with `step_up: totp` would ask each Approve for an authenticator's code: the
    console says so in one line rather than asking for SFOX_MFA_KEY."""
    (tmp_path / "policy.yaml").write_text(POLICY + "step_up: totp\n")
    done = sfox_bot(tmp_path, "console", "--fresh", "--policy", str(tmp_path / "policy.yaml"))
    assert done.returncode != 0 and done.stderr.count("\n") == 1, done.stderr
    assert "asks for a second factor (step_up: totp), which the console cannot give" in done.stderr
    assert "SFOX_MFA_KEY" not in done.stderr
