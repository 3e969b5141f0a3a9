"""Every step is recorded (request, approvals, denial, the call with its HTTP status, sFOX's error
text and timing), and the record survives a restart: a request opened by one bot process can be
approved through another one started later on the same database."""

from __future__ import annotations

import json

from bot.fakes.sfox_api import NONZERO
from tests.conftest import ALICE, BOB, CAROL
from tests.helpers import buttons, card_text, open_request, wait_status, wait_until


def trail(bot, request_id):
    return bot.store.events_for(request_id)


def wait_trail(bot, request_id, last_kind):
    return wait_until(lambda: (t := trail(bot, request_id)) and t[-1].kind == last_kind and t)


def test_a_deactivation_is_recorded_step_by_step(bot):
    record, card = open_request(bot, ALICE, "client_1 left the company")
    bot.driver.click(BOB, "sfox_approve", str(record.id), card.ts)
    done = wait_status(bot, record.id, "succeeded")
    events = wait_trail(bot, record.id, "sfox_delete")
    assert [(e.kind, e.actor) for e in events] == [
        ("requested", ALICE),
        ("card_posted", None),
        ("approved", BOB),
        ("claimed", BOB),
        ("sfox_call_started", None),
        ("sfox_delete", None),
    ]
    assert json.loads(events[0].detail) == {"reason": "left the company"}
    assert json.loads(events[1].detail) == {"ts": card.ts}
    call = events[-1]
    assert call.http_status == 200
    assert call.duration_ms is not None and call.duration_ms >= 0
    assert json.loads(call.detail) == {"attempts": 1}
    times = [e.at for e in events]
    assert times == sorted(times)

    assert done.requested_by == ALICE and done.approved_by == (BOB,)
    assert done.channel_id == card.channel and done.message_ts == card.ts
    assert done.http_status == 200 and done.error is None and done.attempts == 1
    assert done.created_at <= done.decided_at <= done.completed_at
    assert done.target_name == "Ada Lovelace"


def test_a_failed_call_records_sfox_status_error_text_and_timing(bot):
    record, card = open_request(bot, ALICE, "client_late left")  # funds arrive after the card
    bot.driver.click(BOB, "sfox_approve", str(record.id), card.ts)
    done = wait_status(bot, record.id, "failed")
    call = wait_trail(bot, record.id, "sfox_delete")[-1]
    assert call.http_status == 422 and call.duration_ms is not None
    detail = json.loads(call.detail)
    assert detail["error"] == NONZERO and detail["attempts"] == 1 and detail["unknown"] is False
    assert (done.http_status, done.error) == (422, NONZERO)
    assert done.completed_at is not None


def test_a_denial_is_recorded_with_who_and_when(bot):
    record, card = open_request(bot, ALICE, "client_1 left")
    bot.driver.click(CAROL, "sfox_deny", str(record.id), card.ts)
    done = wait_status(bot, record.id, "denied")
    events = wait_trail(bot, record.id, "denied")
    assert [(e.kind, e.actor) for e in events][-1] == ("denied", CAROL)
    assert done.denied_by == CAROL and done.decided_at == done.completed_at == events[-1].at


def test_a_request_made_before_a_restart_can_be_approved_after_it(make_bot, fake_sfox, fake_slack):
    first = make_bot()
    record, card = open_request(first, ALICE, "client_1 left before the restart")
    first.stop()

    second = make_bot()  # a new process on the same database
    assert second.store.get(record.id).status == "pending"
    response = second.driver.click(BOB, "sfox_approve", str(record.id), card.ts)
    assert response.status_code == 200
    done = wait_status(second, record.id, "succeeded")
    assert fake_sfox.deletes["client_1"] == 1
    [reply] = fake_slack.wait_for(lambda: fake_slack.thread(card.ts))
    assert f"<@{ALICE}>" in reply.text and "is deactivated" in reply.text
    final = fake_slack.wait_for(
        lambda: "Deactivated on sFOX" in card_text(m := fake_slack.message(card.ts)) and m
    )
    assert buttons(final) == []
    kinds = [e.kind for e in wait_trail(second, record.id, "sfox_delete")]
    assert kinds[:2] == ["requested", "card_posted"] and kinds[-1] == "sfox_delete"
    assert done.reason == "left before the restart"
