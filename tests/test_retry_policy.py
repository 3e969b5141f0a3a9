"""Issue 32, part 2: Retry is an approval. Through real HTTP (signed clicks, the fake sFOX's
DELETEs): with step-up on, Retry asks for the code as Approve does (a person not enrolled is
told how to enrol, a plain Retry never sends); a Retry is refused once the request failed more
than SFOX_RETRY_WINDOW_HOURS ago or a newer request for the same sFOX user exists, and the card
then stops offering it; a person in none of the request's stages may not retry it."""

from __future__ import annotations

import json
from datetime import timedelta

from bot.fakes.sfox_api import Fault
from bot.store.schema import clicks
from tests.conftest import ALICE, BOB, CAROL
from tests.helpers import buttons, open_request, wait_status, wait_until
from tests.mfa_support import approve_modal, code, enrol, error_of, now, stepped_bot
from tests.test_approval_policy import COMPLIANCE, DAVE, HELP1, POLICY, answer_to, policy_bot

RETRY = "sfox_retry"


def failed(bot, text="client_1 offboarding", *, approver=BOB, secret=None, requester=ALICE):
    """A request approved (with a code when `secret` is given) whose DELETE sFOX refused with 503
    on every attempt: `failed`, offering Retry."""
    record, card = open_request(bot, requester, text)
    bot.sfox.script(*[Fault("DELETE", status=503)] * bot.runtime.settings.sfox_max_attempts)
    if secret is None:
        bot.driver.click(approver, "sfox_approve", str(record.id), card.ts)
    else:
        modal, _ = approve_modal(bot, approver, record.id, card.ts)
        bot.driver.submit_view(approver, modal, {"code": code(secret, bot, 1)})
    done = wait_status(bot, record.id, "failed", "succeeded")
    assert done.status == "failed" and done.retryable
    wait_until(lambda: buttons(bot.slack.message(card.ts)) == [RETRY])
    return done, card


def retry_events(bot, request_id):
    return [e for e in bot.store.events_for(request_id) if e.kind == "retry_claimed"]


def clock_at(bot, when):
    bot.runtime.workflow.now = lambda: when


# -- the second factor ------------------------------------------------------------------------


def test_with_step_up_retry_asks_for_a_code_and_a_person_not_enrolled_sends_nothing(make_bot):
    """The issue's case: Bob approved with a code, sFOX failed, Carol (never enrolled) clicked
    Retry with no code and the DELETE went out."""
    bot = stepped_bot(make_bot)
    bob = enrol(bot, BOB)
    record, card = failed(bot, secret=bob)
    deletes = len(bot.sfox.requests("DELETE"))

    click = bot.driver.click(CAROL, RETRY, str(record.id), card.ts, confirm=False)
    assert bot.driver.modal_for(click.extensions["response_name"]) is None
    told = answer_to(bot, click)
    assert "/sfox-deactivate mfa" in told and "*Retry*" in told and "Nothing was sent" in told
    assert bot.store.get(record.id).status == "failed" and retry_events(bot, record.id) == []
    assert len(bot.sfox.requests("DELETE")) == deletes

    carol = enrol(bot, CAROL)
    click = bot.driver.click(CAROL, RETRY, str(record.id), card.ts, confirm=False)
    modal = bot.driver.modal_for(click.extensions["response_name"])
    assert modal is not None and modal["callback_id"] == "sfox_approve_code"
    assert modal["title"]["text"] == "Retry with a code" and modal["submit"]["text"] == "Retry"
    assert f"request #{record.id}" in json.dumps(modal["blocks"])
    right = code(carol, bot, 1)
    wrong = f"{(int(right) + 1) % 1_000_000:06d}"
    assert "not valid" in error_of(bot.driver.submit_view(CAROL, modal, {"code": wrong}))
    assert bot.store.get(record.id).status == "failed" and len(bot.sfox.requests("DELETE")) == deletes

    bot.driver.submit_view(CAROL, modal, {"code": right})
    assert wait_status(bot, record.id, "succeeded").attempts == 2
    assert len(bot.sfox.requests("DELETE")) == deletes + 1
    (claimed,) = retry_events(bot, record.id)
    assert claimed.actor == CAROL and json.loads(claimed.detail) == {"step_up": "totp"}
    with bot.store.engine.connect() as conn:
        journalled = conn.execute(clicks.select().where(clicks.c.action == RETRY)).mappings().all()
    assert [row["step_up"] for row in journalled] == ["totp"]  # only the click whose code checked out


def test_a_retry_without_a_code_is_refused_visibly_and_never_sends(make_bot):
    """Defence in depth: a plain Retry journalled before step-up was switched on (replayed by the
    sweep), or reaching the retry path any other way, is refused by the policy."""
    bot = stepped_bot(make_bot)
    record, card = failed(bot, secret=enrol(bot, BOB))
    enrol(bot, CAROL)
    deletes = len(bot.sfox.requests("DELETE"))
    result = bot.runtime.workflow.retry(record.id, CAROL)
    assert not result.execute and "needs a code" in result.ephemeral and "*Retry*" in result.ephemeral
    with bot.store.engine.begin() as conn:
        conn.execute(
            clicks.insert().values(
                request_id=record.id,
                action=RETRY,
                actor=CAROL,
                received_at=now(bot) - timedelta(minutes=1),
                lease_until=now(bot) - timedelta(seconds=1),
            )
        )
    assert bot.runtime.clicks.replay() == 1
    assert bot.store.get(record.id).status == "failed" and retry_events(bot, record.id) == []
    assert len(bot.sfox.requests("DELETE")) == deletes


def test_the_requester_may_not_retry_with_a_code_either(make_bot):
    bot = stepped_bot(make_bot)
    enrol(bot, ALICE)
    record, card = failed(bot, secret=enrol(bot, BOB))
    click = bot.driver.click(ALICE, RETRY, str(record.id), card.ts, confirm=False)
    assert bot.driver.modal_for(click.extensions["response_name"]) is None
    assert "second admin must retry" in answer_to(bot, click)
    assert bot.store.get(record.id).status == "failed"


# -- the window and the newer request ------------------------------------------------------------


def test_a_retry_past_the_window_is_refused_says_why_and_the_card_stops_offering_it(bot):
    late, late_card = failed(bot, "client_3 offboarding")
    soon, _soon_card = failed(bot, "client_1 offboarding")
    deletes = len(bot.sfox.requests("DELETE"))

    # Within the default 24 hours a Retry still goes out ...
    clock_at(bot, soon.completed_at + timedelta(hours=23, minutes=59))
    bot.driver.click(CAROL, RETRY, str(soon.id), _soon_card.ts)
    assert wait_status(bot, soon.id, "succeeded").attempts == 2
    assert len(bot.sfox.requests("DELETE")) == deletes + 1

    # ... past them it is refused, saying when it failed and what to do instead.
    clock_at(bot, late.completed_at + timedelta(hours=24, seconds=1))
    click = bot.driver.click(CAROL, RETRY, str(late.id), late_card.ts)
    told = answer_to(bot, click)
    assert f"Request #{late.id} failed <!date^{int(late.completed_at.timestamp())}^" in told
    assert "more than 24 hours ago" in told and "SFOX_RETRY_WINDOW_HOURS" in told
    assert "/sfox-deactivate client_3" in told and "nothing was sent" in told
    assert bot.store.get(late.id).status == "failed" and retry_events(bot, late.id) == []
    assert len(bot.sfox.requests("DELETE")) == deletes + 1
    # The card loses its Retry button, and its thread says why.
    wait_until(lambda: buttons(bot.slack.message(late_card.ts)) == [])
    wait_until(lambda: any("no longer be retried" in m.text for m in bot.slack.thread(late_card.ts)))
    assert "retry_closed" in [e.kind for e in bot.store.events_for(late.id)]


def test_the_window_is_the_setting(make_bot):
    bot = make_bot(SFOX_RETRY_WINDOW_HOURS="1.5")
    record, card = failed(bot)
    clock_at(bot, record.completed_at + timedelta(minutes=91))
    told = answer_to(bot, bot.driver.click(CAROL, RETRY, str(record.id), card.ts))
    assert "more than 1.5 hours ago" in told
    assert bot.store.get(record.id).status == "failed"


def test_a_newer_request_for_the_same_user_closes_the_retry(bot):
    """The issue's other case: a months-old failed card still worked after a newer request for
    the same user was denied."""
    old, old_card = failed(bot)
    deletes = len(bot.sfox.requests("DELETE"))
    newer, newer_card = open_request(bot, ALICE, "client_1 asked again")
    bot.driver.click(CAROL, "sfox_deny", str(newer.id), newer_card.ts, reason="not this one")
    wait_status(bot, newer.id, "denied")

    told = answer_to(bot, bot.driver.click(CAROL, RETRY, str(old.id), old_card.ts))
    assert f"request #{newer.id}" in told and "denied" in told and "/sfox-deactivate client_1" in told
    assert bot.store.get(old.id).status == "failed" and retry_events(bot, old.id) == []
    assert len(bot.sfox.requests("DELETE")) == deletes
    wait_until(lambda: buttons(bot.slack.message(old_card.ts)) == [])


def test_a_newer_open_request_is_named_to_be_decided_on_its_card(bot):
    old, old_card = failed(bot)
    newer, _ = open_request(bot, ALICE, "client_1 asked again")
    told = answer_to(bot, bot.driver.click(CAROL, RETRY, str(old.id), old_card.ts))
    assert f"request #{newer.id}" in told and "pending" in told and "its card" in told
    assert bot.store.get(old.id).status == "failed" and bot.store.get(newer.id).status == "pending"


# -- the stages -----------------------------------------------------------------------------------


def test_a_person_in_none_of_the_requests_stages_may_not_retry_it(make_bot, fake_slack, tmp_path):
    """The policy file was edited (and the bot restarted) after the request failed: Dave now
    approves under the new file, but is in none of the stages it was asked under."""
    first = policy_bot(make_bot, fake_slack, tmp_path)
    fake_slack.usergroups[COMPLIANCE] = [BOB]
    record, card = open_request(first, HELP1, "client_1 asked before the edit")
    first.sfox.script(*[Fault("DELETE", status=503)] * first.runtime.settings.sfox_max_attempts)
    first.driver.click(BOB, "sfox_approve", str(record.id), card.ts)
    first.driver.click(CAROL, "sfox_approve", str(record.id), card.ts)
    assert wait_status(first, record.id, "failed", "succeeded").status == "failed"
    deletes = len(first.sfox.requests("DELETE"))
    first.stop()
    (tmp_path / "policy.yaml").write_text(POLICY.replace(f"[{BOB}, {CAROL}]", f"[{BOB}, {CAROL}, {DAVE}]"))
    bot = make_bot(SFOX_APPROVERS="", SFOX_POLICY_FILE=str(tmp_path / "policy.yaml"))
    told = answer_to(bot, bot.driver.click(DAVE, RETRY, str(record.id), card.ts))
    assert "none of the approval stages this was asked under" in told
    assert bot.store.get(record.id).status == "failed" and len(bot.sfox.requests("DELETE")) == deletes
