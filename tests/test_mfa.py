"""Issue 18, the second factor on Approve (SFOX_STEP_UP=totp), through real HTTP: Approve through
the code modal (one DELETE) from the card, the App Home and a batch card, a wrong code, a replayed
code, the lock-out (on the bot's clock, moved instead of slept), a person not enrolled, a modal
that cannot be opened, and every approval path refusing an approval that came without a code.
Enrolment, reset and the secret's whereabouts: tests/test_mfa_enrolment.py."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from bot.audit import verify as audit_verify
from bot.store.schema import clicks
from tests.conftest import ALICE, BOB, CAROL, MALLORY, Bot
from tests.helpers import open_request, wait_status, wait_until
from tests.mfa_support import (
    MFA_KEY,
    approve_modal,
    approved_events,
    code,
    enrol,
    error_of,
    now,
    person_events,
    stepped_bot,
)


@pytest.fixture
def bot(make_bot) -> Bot:
    return stepped_bot(make_bot)


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
    assert approved.actor == BOB and json.loads(approved.detail)["step_up"] == "totp"
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
    assert json.loads(approved.detail)["step_up"] == "totp" and len(bot.sfox.requests("DELETE")) == 1


def test_the_requester_and_non_approvers_are_answered_by_the_normal_rules(bot):
    enrol(bot, ALICE)
    record, card = open_request(bot, ALICE, "client_1")
    own = bot.driver.click(ALICE, "sfox_approve", str(record.id), card.ts, confirm=False)
    assert bot.driver.modal_for(own.extensions["response_name"]) is None
    assert "cannot approve it" in bot.driver.ephemeral_for(own.extensions["response_name"])[0]
    other = bot.driver.click(MALLORY, "sfox_approve", str(record.id), card.ts, confirm=False)
    assert "not on the sFOX approver list" in bot.driver.ephemeral_for(other.extensions["response_name"])[0]


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
    assert json.loads(approved.detail)["step_up"] == "totp"


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
        assert {"batch": bid, "step_up": "totp"}.items() <= json.loads(approved.detail).items()


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
    assert json.loads(approved.detail)["step_up"] == "totp"
    assert audit_verify.verify(bot.store.engine).ok
