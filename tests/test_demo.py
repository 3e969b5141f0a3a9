"""`sfox-bot demo` as a newcomer runs it: a separate process, an empty directory, nothing set; and
the trail it leaves verifies. Each run takes seconds (Slack's and sFOX's pace are real in it), so
one run is checked for as much as it shows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot.sandbox.harness import CHANNEL_ID
from bot.store import migrate
from bot.store.db import Store
from tests.sandbox_run import history, sfox_bot


def assert_scene(out: str, first: int, blocked: int, second: int) -> None:
    """The key moments, in the order they happen."""
    moments: list[str | tuple[str, ...]] = [
        "alice › /sfox-deactivate client_1",
        "(only visible to alice) Looking up `client_1` on sFOX…",
        "sFOX API  GET /v1/enterprise/users/client_1 → 200",
        "sFOX API  POST /v1/enterprise/user-tokens/client_1 → 201",
        "sFOX API  GET /v1/user/balance → 200",
        f"the bot posts card #{first}:",
        "│ Name          Ada Lovelace",
        "│ Requested by  @alice",
        "│ Balances: all zero (checked ",
        "│ ⏳ Waiting for approval (0 of 1 approvals)",
        "│ [ Approve ]  [ Deny ]",
        f"alice › clicks [ Approve ] on card #{first}",
        "(only visible to alice) You requested this deactivation, so you cannot approve it",
        f"mallory › clicks [ Approve ] on card #{first}",
        "(only visible to mallory) ⛔ You are not on the sFOX approver list",
        f"bob › clicks [ Approve ] on card #{first}",
        "sFOX API  DELETE /v1/enterprise/account/client_1 → 200",
        (
            "✅ Deactivated on sFOX · approved by @bob",
            f"↳ in the thread of card #{first}: ✅ @alice sFOX account `client_1` is deactivated.",
        ),
        "bob › /sfox-deactivate client_9",
        "(only visible to bob) 🔍 No such sFOX user: `client_9`. Nothing was posted.",
        "bob › /sfox-deactivate client_2",
        "sFOX API  GET /v1/user/balance → 200",
        "(only visible to bob) 💰 `client_2` still holds funds on sFOX: USD 1250 (100 held), BTC 0.5.",
        f"(recorded as request #{blocked}, blocked)",
        "bob › /sfox-deactivate client_late",
        "sFOX API  GET /v1/user/balance → 200",
        f"the bot posts card #{second}:",
        "│ Balances: all zero (checked ",
        f"alice › clicks [ Approve ] on card #{second}",
        "sFOX API  DELETE /v1/enterprise/account/client_late → 422",
        (
            "❌ Not deactivated · approved by @alice",
            f"↳ in the thread of card #{second}: ❌ @bob sFOX did not deactivate `client_late`: HTTP 422",
        ),
        # issue 13: the outcome DMs, a reminder, and a Deny with a reason typed in its dialog
        "bob › /sfox-deactivate client_3",
        f"↳ in the thread of card #{second + 1}: 🔔 Reminder: request #{second + 1}",
        f"alice › clicks [ Deny ] on card #{second + 1}",
        "alice › submits the Deny dialog (reason “the account is still in use”)",
        "🚫 Denied by @alice: the account is still in use",
        f"(DM to bob)  the bot says: 🚫 Your request #{second + 1} to deactivate `client_3`",
        "alice › /sfox-deactivate batch cohort_1,cohort_2,cohort_9,client_held,cohort_3 product retired",
        "│ 3 to deactivate · 1 unknown on sFOX (left out) · 1 holding funds",
        "• unknown on sFOX (1): `cohort_9`",
        "• holding funds (1): `client_held`",
        "bob › clicks [ Approve ] on card #",
        "sFOX API  DELETE /v1/enterprise/account/cohort_1 → 200",
        "finished: 3 deactivated, 0 failed (of 3).",
        # issue 19: a watch that ends in a card, and a deactivation on a date
        "bob › /sfox-deactivate client_leaving closing at the customer's request --when-empty",
        "(only visible to bob) :eyes: `client_leaving` still holds funds on sFOX (USD 300), so no card was posted",
        f"the bot posts card #{second + 5}:",
        "│ Balances: all zero (checked ",
        f"(DM to bob)  the bot says: ✅ Your request #{second + 5} to deactivate `client_leaving` (Grace Hopper): every balance",
        f"alice › clicks [ Approve ] on card #{second + 5}",
        "sFOX API  DELETE /v1/enterprise/account/client_leaving → 200",
        "alice › /sfox-deactivate client_contract contract ends --at +2h",
        f"the bot posts card #{second + 6}:",
        "│ Runs          ",
        f"bob › clicks [ Approve ] on card #{second + 6}",
        "(only visible to bob) Approved: `client_contract` will be deactivated",
        ":calendar: Approved, scheduled for",
        "two hours later",
        "sFOX API  GET /v1/user/balance → 200",
        "sFOX API  DELETE /v1/enterprise/account/client_contract → 200",
        f"↳ in the thread of card #{second + 6}: ✅ @alice sFOX account `client_contract` is deactivated.",
        "sfox-bot history (the requests this demo made)",
    ]
    at = 0
    for moment in moments:
        # A tuple: these may come in either order (the final card update and the thread reply are
        # sent by two threads of the bot).
        end = at
        for text in moment if isinstance(moment, tuple) else (moment,):
            found = out.find(text, at)
            assert found >= 0, f"missing, or out of order: {text!r}\n\n{out}"
            end = max(end, found + len(text))
        at = end
    # the demo's fake Slack is as strict as Slack, and it refused nothing the bot sent
    assert "Slack API refused" not in out
    # exactly one DELETE per account, and the refused clicks changed nothing on the card
    assert out.count("DELETE /v1/enterprise/account/client_1") == 1
    assert out.count("DELETE /v1/enterprise/account/client_late") == 1
    assert "DELETE /v1/enterprise/account/client_2" not in out  # blocked: no card, no DELETE
    assert f"the bot posts card #{blocked}" not in out
    table = out[out.index("sfox-bot history") :]
    assert f"\n{second:<5}  " in table and "failed     client_late" in table and "422" in table
    assert f"\n{blocked:<5}  " in table and "blocked    client_2" in table
    assert f"\n{first:<5}  " in table and "succeeded  client_1" in table


def assert_trail_verifies(cwd: Path, at_least: int) -> None:
    """The demo's audit trail is a valid chain, and `audit head` names its last link."""
    verify = sfox_bot(cwd, "audit", "verify")
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert verify.stdout.startswith("audit ok: ") and verify.stderr == ""
    count = int(verify.stdout.split()[2])
    assert count >= at_least
    head = sfox_bot(cwd, "audit", "head").stdout.split()
    assert verify.stdout.strip().endswith(" ".join(head)) and int(head[0]) == count


def test_demo_on_a_fresh_directory_with_nothing_configured_and_again(tmp_path):
    first = sfox_bot(tmp_path, "demo")
    assert first.returncode == 0, first.stdout + first.stderr
    assert first.stderr == ""
    assert_scene(first.stdout, 1, 2, 3)
    assert_trail_verifies(tmp_path, at_least=10)
    assert "(DM to alice)  the bot says: ✅ Your request #1 to deactivate `client_1`" in first.stdout
    assert "(DM to bob)  the bot says: 💰 Your request #2" in first.stdout
    assert "(DM to bob)  the bot says: ❌ Your request #3" in first.stdout

    everything = history(tmp_path)
    batch = [r for r in everything if r["batch_id"] is not None]
    assert [(r["sfox_user_id"], r["status"]) for r in batch] == [
        ("cohort_3", "succeeded"),
        ("cohort_2", "succeeded"),
        ("cohort_1", "succeeded"),
    ]
    later = [r for r in everything if r["batch_id"] is None][:2]  # the watch, then the --at request
    assert [(r["id"], r["sfox_user_id"], r["status"], r["http_status"]) for r in later] == [
        (9, "client_contract", "succeeded", 200),
        (8, "client_leaving", "succeeded", 200),
    ]
    assert later[0]["run_at"] is not None and later[1]["watch_read_at"] is not None
    recorded = [r for r in everything if r["batch_id"] is None][3:]  # [2]: client_3, denied
    assert [(r["id"], r["sfox_user_id"], r["status"], r["http_status"]) for r in recorded] == [
        (3, "client_late", "failed", 422),
        (2, "client_2", "blocked", None),
        (1, "client_1", "succeeded", 200),
    ]
    assert recorded[2]["requested_by"] == "UALICE" and recorded[2]["approved_by"] == ["UBOB"]
    assert recorded[1]["requested_by"] == "UBOB" and recorded[1]["approved_by"] == []
    assert recorded[1]["balances"][0] == {"currency": "usd", "balance": 1250}
    assert recorded[0]["requested_by"] == "UBOB" and recorded[0]["approved_by"] == ["UALICE"]
    assert all(r["channel_id"] == CHANNEL_ID for r in recorded)

    # A rerun on the same database: the fake sFOX is new (client_1 exists again), and the first
    # run left nothing open, so the same scene plays with the next request numbers.
    again = sfox_bot(tmp_path, "demo")
    assert again.returncode == 0, again.stdout + again.stderr
    assert_scene(again.stdout, 10, 11, 12)  # 5 to 7: the first run's batch; 8, 9: its later ones
    assert_trail_verifies(tmp_path, at_least=20)  # the second run extended the same chain
    assert "\n1      " not in again.stdout.split("sfox-bot history")[1]  # only what this run did
    assert [(r["id"], r["status"]) for r in history(tmp_path) if r["batch_id"] is None] == [
        (18, "succeeded"),
        (17, "succeeded"),
        (13, "denied"),
        (12, "failed"),
        (11, "blocked"),
        (10, "succeeded"),
        (9, "succeeded"),
        (8, "succeeded"),
        (4, "denied"),
        (3, "failed"),
        (2, "blocked"),
        (1, "succeeded"),
    ]
    # the made-up tokens and keys never reach the database
    data = (tmp_path / "sfox-bot.db").read_bytes()
    assert b"xoxb-" not in data and b"sandbox-" not in data


def test_demo_fresh_uses_a_temporary_database(tmp_path):
    done = sfox_bot(tmp_path, "demo", "--fresh")
    assert done.returncode == 0, done.stdout + done.stderr
    assert_scene(done.stdout, 1, 2, 3)
    assert "a temporary database (--fresh)" in done.stdout
    assert list(tmp_path.iterdir()) == []  # nothing left behind: the next run starts at #1 again


def test_demo_ignores_the_real_settings(tmp_path):
    """Real (here: broken or unreachable) Slack/sFOX/database settings, in the environment and in
    ./.env, are not read: the demo neither fails on them nor uses them."""
    broken = {
        "SLACK_BOT_TOKEN": "not-a-bot-token",
        "SLACK_SIGNING_SECRET": "has whitespace",
        "SLACK_API_URL": "ftp://nowhere",
        "SFOX_API_KEY": "real key",
        "SFOX_API_URL": "http://127.0.0.1:9",
        "SFOX_APPROVERS": "not-an-id",
        "DATABASE_URL": "mysql://elsewhere",
    }
    (tmp_path / ".env").write_text("".join(f"{k}={v}\n" for k, v in broken.items()))
    done = sfox_bot(tmp_path, "demo", **broken)
    assert done.returncode == 0, done.stdout + done.stderr
    assert_scene(done.stdout, 1, 2, 3)
    assert (tmp_path / "sfox-bot.db").exists()


def test_demo_first_closes_a_request_left_open_by_an_earlier_session(tmp_path):
    console = sfox_bot(tmp_path, "console", stdin="/sfox-deactivate client_1 left open\n")
    assert console.returncode == 0, console.stdout + console.stderr
    assert [r["status"] for r in history(tmp_path)] == ["pending"]

    done = sfox_bot(tmp_path, "demo")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "alice cancels request #1, left open by an earlier session" in done.stdout
    assert "alice › clicks [ Deny ] on card #1" in done.stdout
    assert_scene(done.stdout, 2, 3, 4)
    leftover = history(tmp_path)[-1]
    assert (leftover["id"], leftover["status"], leftover["denied_by"]) == (1, "denied", "UALICE")


def test_demo_will_not_write_into_a_real_audit_trail(tmp_path):
    store = Store.from_url(f"sqlite:///{tmp_path / 'sfox-bot.db'}")
    migrate.upgrade(store.engine)
    store.create_request(
        sfox_user_id="client_77",
        reason="a real one",
        requested_by="U0REAL01",
        channel_id="C0REALOPS",
        required_approvals=1,
        target_name=None,
        target_email=None,
        target_status=None,
        now=datetime.now(UTC),
        ttl=timedelta(hours=1),
    )
    store.close()

    done = sfox_bot(tmp_path, "demo")
    assert done.returncode == 1
    assert "holds requests made in Slack" in done.stderr and "--fresh" in done.stderr
    assert [(r["id"], r["sfox_user_id"]) for r in history(tmp_path)] == [(1, "client_77")]
