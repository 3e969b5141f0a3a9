"""Issue 18, the second factor on Approve (SFOX_STEP_UP=totp), through real HTTP: enrolment with
`/sfox-deactivate mfa`, Approve through the code modal (one DELETE), a wrong code, a replayed
code, the lock-out (on the bot's clock, moved instead of slept), a person not enrolled, a modal
that cannot be opened, `sfox-bot mfa reset`, and every approval path refusing an approval that
came without a code."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import pytest

from bot.audit import verify as audit_verify
from bot.config import ConfigError, load_settings
from bot.mfa import totp
from bot.mfa.sealing import Sealer, Unsealable
from bot.store.schema import clicks
from tests.conftest import ALICE, BOB, CAROL, MALLORY, Bot
from tests.helpers import open_request, wait_status, wait_until

MFA_KEY = "mfa-test-key-0123456789abcdefghijklmnop"


@pytest.fixture
def bot(make_bot) -> Bot:
    return make_bot(SFOX_STEP_UP="totp", SFOX_MFA_KEY=MFA_KEY)


def now(bot: Bot) -> datetime:
    return bot.runtime.workflow.now()


def code(secret: str, bot: Bot, steps: int = 0) -> str:
    """The code an authenticator shows `steps` steps after the bot's now."""
    return totp.code_at(secret, now(bot) + timedelta(seconds=totp.STEP_SECONDS * steps))


def enrol(bot: Bot, user: str) -> str:
    """Run `/sfox-deactivate mfa`, read the secret off the modal, type its code; the secret."""
    response = bot.driver.command(user, "mfa")
    assert response.status_code == 200 and response.content in (b"", b"null"), response.text
    modal = bot.driver.modal_for(response.extensions["response_name"])
    assert modal is not None and modal["callback_id"] == "sfox_mfa_enrol"
    shown = json.dumps(modal["blocks"])
    secret = re.search(r"secret=([A-Z2-7]+)", shown).group(1)
    assert f"`{secret}`" in shown  # the key itself, for typing, and the otpauth URI
    assert "otpauth://totp/" in shown
    assert secret not in (modal.get("private_metadata") or "")  # it travels sealed
    answer = bot.driver.submit_view(user, modal, {"first_code": code(secret, bot)})
    assert answer.status_code == 200, answer.text
    assert answer.json()["response_action"] == "update", answer.json()
    assert secret not in answer.text  # the confirmation replaces the view that showed it
    return secret


def approve_modal(bot: Bot, user: str, record_id: int, ts: str) -> tuple[dict, str]:
    response = bot.driver.click(user, "sfox_approve", str(record_id), ts, confirm=False)
    assert response.status_code == 200
    name = response.extensions["response_name"]
    modal = bot.driver.modal_for(name)
    assert modal is not None, "no code modal was opened"
    return modal, name


def error_of(response) -> str:
    body = response.json()
    assert body["response_action"] == "errors", body
    return body["errors"]["code"]


def approved_events(bot: Bot, request_id: int) -> list:
    return [e for e in bot.store.events_for(request_id) if e.kind == "approved"]


def person_events(bot: Bot) -> list[dict]:
    return [e for e in audit_verify.export_rows(bot.store.engine) if e["request_id"] is None]


def test_enrol_then_approve_with_a_code_sends_one_delete(bot):
    secret = enrol(bot, BOB)
    (enrolled,) = person_events(bot)
    assert enrolled["kind"] == "mfa_enrolled" and enrolled["actor"] == BOB and enrolled["detail"] is None
    record, card = open_request(bot, ALICE, "client_1")
    modal, name = approve_modal(bot, BOB, record.id, card.ts)
    inputs = [b["element"] for b in modal["blocks"] if b["type"] == "input"]
    assert [e["type"] for e in inputs] == ["plain_text_input"]  # exactly one box: the code
    assert bot.store.get(record.id).approved_by == ()  # opening the modal counts nothing
    # The enrolment spent the current step's code: the next step's is within the window.
    submitted = bot.driver.submit_view(BOB, modal, {"code": code(secret, bot, 1)})
    assert submitted.status_code == 200 and submitted.content in (b"", b"null"), submitted.text
    wait_status(bot, record.id, "succeeded")
    assert len(bot.sfox.requests("DELETE")) == 1
    (approved,) = approved_events(bot, record.id)
    assert approved.actor == BOB and json.loads(approved.detail) == {"step_up": "totp"}
    assert audit_verify.verify(bot.store.engine).ok  # events without a request chain too


def test_a_wrong_code_is_the_boxs_error_and_changes_nothing(bot):
    secret = enrol(bot, BOB)
    record, card = open_request(bot, ALICE, "client_1")
    modal, _ = approve_modal(bot, BOB, record.id, card.ts)
    right = code(secret, bot, 1)
    wrong = f"{(int(right) + 1) % 1_000_000:06d}"
    assert "not valid" in error_of(bot.driver.submit_view(BOB, modal, {"code": wrong}))
    assert "6-digit" in error_of(bot.driver.submit_view(BOB, modal, {"code": "12ab"}))
    current = bot.store.get(record.id)
    assert current.status == "pending" and current.approved_by == ()
    assert approved_events(bot, record.id) == [] and bot.sfox.requests("DELETE") == []
    # The same modal, with the right code, then approves.
    bot.driver.submit_view(BOB, modal, {"code": right})
    wait_status(bot, record.id, "succeeded")


def test_a_code_once_used_is_refused_to_that_person(make_bot):
    bot = make_bot(SFOX_STEP_UP="totp", SFOX_MFA_KEY=MFA_KEY, SFOX_REQUIRED_APPROVALS="2")
    secret = enrol(bot, BOB)
    first, first_card = open_request(bot, ALICE, "client_1")
    second, second_card = open_request(bot, ALICE, "client_3")
    used = code(secret, bot, 1)
    modal, _ = approve_modal(bot, BOB, first.id, first_card.ts)
    bot.driver.submit_view(BOB, modal, {"code": used})
    wait_until(lambda: bot.store.get(first.id).approved_by == (BOB,))
    modal, _ = approve_modal(bot, BOB, second.id, second_card.ts)
    assert "used already" in error_of(bot.driver.submit_view(BOB, modal, {"code": used}))
    assert bot.store.get(second.id).approved_by == ()
    # The enrolment's own code is spent as well.
    assert "used already" in error_of(bot.driver.submit_view(BOB, modal, {"code": code(secret, bot)}))


def test_five_wrong_codes_lock_approvals_for_ten_minutes(bot):
    secret = enrol(bot, BOB)
    record, card = open_request(bot, ALICE, "client_1")
    modal, _ = approve_modal(bot, BOB, record.id, card.ts)
    right = code(secret, bot, 1)
    wrong = f"{(int(right) + 1) % 1_000_000:06d}"
    answers = [error_of(bot.driver.submit_view(BOB, modal, {"code": wrong})) for _ in range(5)]
    assert all("not valid" in a for a in answers[:4])
    assert "locked until" in answers[4]  # told
    # Locked: even the right code counts nothing, and a new click opens no modal but says so.
    assert "locked until" in error_of(bot.driver.submit_view(BOB, modal, {"code": right}))
    click = bot.driver.click(BOB, "sfox_approve", str(record.id), card.ts, confirm=False)
    assert bot.driver.modal_for(click.extensions["response_name"]) is None
    assert "locked until" in bot.driver.ephemeral_for(click.extensions["response_name"])[0]
    assert bot.store.get(record.id).approved_by == ()
    (locked,) = [e for e in person_events(bot) if e["kind"] == "mfa_locked"]  # audited once
    assert locked["actor"] == BOB and json.loads(locked["detail"])["wrong_codes"] == 5
    # Ten minutes later (the bot's clock moved, not slept) the lock is lifted.
    later = datetime.now(UTC) + timedelta(minutes=10, seconds=5)
    bot.runtime.workflow.now = lambda: later
    modal, _ = approve_modal(bot, BOB, record.id, card.ts)
    bot.driver.submit_view(BOB, modal, {"code": code(secret, bot)})
    wait_status(bot, record.id, "succeeded")


def test_not_enrolled_is_told_how_to_enrol_and_nothing_counts(bot):
    record, card = open_request(bot, ALICE, "client_1")
    click = bot.driver.click(BOB, "sfox_approve", str(record.id), card.ts, confirm=False)
    name = click.extensions["response_name"]
    assert bot.driver.modal_for(name) is None
    answer = bot.driver.ephemeral_for(name)[0]
    assert "/sfox-deactivate mfa" in answer and "Nothing was counted" in answer
    assert bot.store.get(record.id).approved_by == ()


def test_when_the_modal_cannot_be_opened_the_click_is_refused_visibly(bot, fake_slack):
    enrol(bot, BOB)
    record, card = open_request(bot, ALICE, "client_1")
    fake_slack.fail("views.open", "expired_trigger_id")
    click = bot.driver.click(BOB, "sfox_approve", str(record.id), card.ts, confirm=False)
    name = click.extensions["response_name"]
    assert bot.driver.modal_for(name) is None
    answer = bot.driver.ephemeral_for(name)[0]
    assert "not* counted" in answer and "expired_trigger_id" in answer
    current = bot.store.get(record.id)
    assert current.status == "pending" and current.approved_by == ()
    assert approved_events(bot, record.id) == [] and bot.sfox.requests("DELETE") == []


def test_an_approval_without_a_code_never_counts(bot):
    """Defence in depth: a plain Approve (journalled before step-up was switched on, or sent by
    a listener by mistake) reaches the approval path, and the policy refuses to count it."""
    record, _card = open_request(bot, ALICE, "client_1")
    result = bot.runtime.workflow.approve(record.id, BOB)
    assert "needs a code" in (result.ephemeral or "") and not result.execute
    assert bot.store.get(record.id).approved_by == ()
    with bot.store.engine.begin() as conn:
        conn.execute(
            clicks.insert().values(
                request_id=record.id,
                action="sfox_approve",
                actor=BOB,
                received_at=now(bot) - timedelta(minutes=1),
                lease_until=now(bot) - timedelta(seconds=1),
            )
        )
    bot.runtime.clicks.replay()
    assert bot.store.get(record.id).approved_by == () and bot.sfox.requests("DELETE") == []


def test_a_stepped_up_approve_replayed_after_a_crash_counts(bot):
    """The journal keeps the factor an Approve came with: a click acked (its code checked) by a
    process that died before handling it is handled by the sweep exactly as it would have been."""
    record, _card = open_request(bot, ALICE, "client_1")
    with bot.store.engine.begin() as conn:
        conn.execute(
            clicks.insert().values(
                request_id=record.id,
                action="sfox_approve",
                actor=BOB,
                step_up="totp",
                received_at=now(bot) - timedelta(minutes=1),
                lease_until=now(bot) - timedelta(seconds=1),
            )
        )
    assert bot.runtime.clicks.replay() == 1
    wait_status(bot, record.id, "succeeded")
    (approved,) = approved_events(bot, record.id)
    assert json.loads(approved.detail) == {"step_up": "totp"} and len(bot.sfox.requests("DELETE")) == 1


def test_the_requester_and_non_approvers_are_answered_by_the_normal_rules(bot):
    enrol(bot, ALICE)
    record, card = open_request(bot, ALICE, "client_1")
    own = bot.driver.click(ALICE, "sfox_approve", str(record.id), card.ts, confirm=False)
    assert bot.driver.modal_for(own.extensions["response_name"]) is None
    assert "cannot approve it" in bot.driver.ephemeral_for(own.extensions["response_name"])[0]
    other = bot.driver.click(MALLORY, "sfox_approve", str(record.id), card.ts, confirm=False)
    assert "not on the sFOX approver list" in bot.driver.ephemeral_for(other.extensions["response_name"])[0]


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


def test_app_home_approve_asks_for_a_code(bot):
    secret = enrol(bot, BOB)
    record, _card = open_request(bot, ALICE, "client_1")
    bot.driver.home_opened(BOB)
    wait_until(lambda: bot.slack.home(BOB))
    before = len(bot.slack.opened_views)
    bot.driver.home_click(BOB, "sfox_home_approve", str(record.id))
    opened = wait_until(lambda: bot.slack.opened_views[before:])
    modal = opened[0]["view"]
    assert modal["callback_id"] == "sfox_approve_code"
    assert bot.store.get(record.id).approved_by == ()
    bot.driver.submit_view(BOB, modal, {"code": code(secret, bot, 1)})
    wait_status(bot, record.id, "succeeded")
    (approved,) = approved_events(bot, record.id)
    assert json.loads(approved.detail) == {"step_up": "totp"}


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


def test_a_batch_is_approved_with_a_code_too(make_bot, fake_sfox):
    from bot.slack.batch_card import BATCH_APPROVE
    from tests.test_batches import add_users, ask, batch_id_of

    bot = make_bot(SFOX_STEP_UP="totp", SFOX_MFA_KEY=MFA_KEY, SFOX_BALANCE_CHECK="off")
    secret = enrol(bot, BOB)
    ids = add_users(fake_sfox, 3)
    _answer, card, _ = ask(bot, ALICE, "batch " + ",".join(ids) + " stepped up")
    bid = batch_id_of(card)
    click = bot.driver.click(BOB, BATCH_APPROVE, str(bid), card.ts, confirm=False)
    modal = bot.driver.modal_for(click.extensions["response_name"])
    assert modal is not None and modal["callback_id"] == "sfox_approve_code"
    assert fake_sfox.deletes == {} and bot.runtime.batches.records.get(bid).approved_by == ()
    assert "not valid" in error_of(bot.driver.submit_view(BOB, modal, {"code": "000000"}))
    # Without a code the batch's approval path refuses too (defence in depth).
    assert "needs a code" in (bot.runtime.batches.approve(bid, CAROL).ephemeral or "")
    bot.driver.submit_view(BOB, modal, {"code": code(secret, bot, 1)})
    rows = wait_until(
        lambda: (
            (rs := list(bot.store.history(limit=None, batch_id=bid)))
            and all(r.status == "succeeded" for r in rs)
            and rs
        ),
        timeout=30,
    )
    assert dict(fake_sfox.deletes) == {uid: 1 for uid in ids}
    for row in rows:
        (approved,) = approved_events(bot, row.id)
        assert json.loads(approved.detail) == {"batch": bid, "step_up": "totp"}


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


def test_a_code_modal_submitted_after_step_up_was_switched_off(make_bot):
    """A modal opened under step-up, submitted to a bot (a replica, a restart) without it: its
    answer says so and nothing is recorded."""
    stepped = make_bot(SFOX_STEP_UP="totp", SFOX_MFA_KEY=MFA_KEY)
    secret = enrol(stepped, BOB)
    record, card = open_request(stepped, ALICE, "client_1")
    modal, _ = approve_modal(stepped, BOB, record.id, card.ts)
    plain = make_bot()  # same database, step-up off
    answer = plain.driver.submit_view(BOB, modal, {"code": code(secret, plain, 1)})
    assert "No code is asked for" in error_of(answer)
    assert plain.store.get(record.id).approved_by == ()


def test_an_expired_trigger_refuses_the_click_visibly(bot, fake_slack):
    """The strict fake's own refusal, not a scripted fault: the trigger is more than 3 s old when
    views.open arrives (the fake's clock moved on), so Slack says `expired_trigger_id`."""
    import time

    from bot.fakes.slack_strict import TRIGGER_SECONDS

    enrol(bot, BOB)
    record, card = open_request(bot, ALICE, "client_1")
    original = fake_slack.handle_api

    def late(method, args, auth):
        if method == "views.open":
            fake_slack.clock = lambda: time.monotonic() + TRIGGER_SECONDS + 1
        return original(method, args, auth)

    fake_slack.handle_api = late
    click = bot.driver.click(BOB, "sfox_approve", str(record.id), card.ts, confirm=False)
    fake_slack.handle_api, fake_slack.clock = original, time.monotonic
    name = click.extensions["response_name"]
    assert "expired_trigger_id" in bot.driver.ephemeral_for(name)[0]
    assert [r.error for r in fake_slack.refusals] == ["expired_trigger_id"]
    fake_slack.refusals.clear()  # provoked on purpose
    assert bot.store.get(record.id).approved_by == () and bot.sfox.requests("DELETE") == []


@pytest.mark.postgres
def test_enrol_approve_and_replay_on_postgresql(make_bot, postgres_url):
    bot = make_bot(
        SFOX_STEP_UP="totp", SFOX_MFA_KEY=MFA_KEY, SFOX_REQUIRED_APPROVALS="2", DATABASE_URL=postgres_url
    )
    secret = enrol(bot, BOB)
    record, card = open_request(bot, ALICE, "client_1")
    used = code(secret, bot, 1)
    modal, _ = approve_modal(bot, BOB, record.id, card.ts)
    bot.driver.submit_view(BOB, modal, {"code": used})
    wait_until(lambda: bot.store.get(record.id).approved_by == (BOB,))
    other, other_card = open_request(bot, ALICE, "client_3")
    modal, _ = approve_modal(bot, BOB, other.id, other_card.ts)
    assert "used already" in error_of(bot.driver.submit_view(BOB, modal, {"code": used}))
    (approved,) = approved_events(bot, record.id)
    assert json.loads(approved.detail) == {"step_up": "totp"}
    assert audit_verify.verify(bot.store.engine).ok
