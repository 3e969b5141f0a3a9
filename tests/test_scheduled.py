"""Issue 19, "Deactivate on a date": `/sfox-deactivate <id> [reason] --at <when>`. The card says
when (Slack's `<!date^…>`), approval follows the policy, and once approved the request is
`scheduled` with nothing sent; at its time, never before, one replica claims it, reads the
balances again and sends the one DELETE. Time is moved by writing `run_at` into the past (as the
reminder and expiry tests age their rows), except in the one test of the loop's own wake-up."""

from __future__ import annotations

import io
import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from bot.cli.history import write_table
from bot.fakes.sfox_users import currency
from bot.requests.base import Command
from bot.requests.history import history_row
from bot.store.outcomes import Outcome
from bot.store.schema import requests
from tests.conftest import ALICE, BOB, CAROL, MALLORY
from tests.helpers import buttons, card_text, open_request, wait_status, wait_until
from tests.support import ack_text, drain
from tests.threads import run_concurrently

DATE = re.compile(r"<!date\^(\d+)\^\{date_short_pretty\} at \{time\}\|(\d{4}-\d\d-\d\d \d\d:\d\d UTC)>")


def iso(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def make_due(bot, request_id: int, late: timedelta = timedelta(seconds=1)) -> None:
    """Move the request's time `late` into the past, as if the clock had passed it."""
    at = datetime.now(UTC) - late
    with bot.store.transaction() as conn:
        conn.execute(update(requests).where(requests.c.id == request_id).values(run_at=at))


def schedule_approved(bot, text: str = "client_1 contract ends --at +2h"):
    record, card = open_request(bot, ALICE, text)
    bot.driver.click(BOB, "sfox_approve", str(record.id), card.ts)
    return wait_status(bot, record.id, "scheduled"), card


def replies(bot, ts: str, words: str) -> list[str]:
    return [m.text for m in bot.slack.thread(ts) if words in m.text]


@pytest.mark.parametrize(
    ("option", "words"),
    [
        ("--at tomorrow", "is not a time I can read"),
        ("--at 2020-01-01T00:00Z", "is in the past"),
        ("--at +91d", "more than 90 days ahead (SFOX_SCHEDULE_MAX_DAYS)"),
        ("--at 2026-12-31T17:00", "has no time zone"),
        ("--at", "needs a time"),
        ("--at +2h --when-empty", "not both"),
    ],
)
def test_at_refusals_reach_the_requester_and_change_nothing(bot, option, words):
    answer = ack_text(bot.driver.command(ALICE, f"client_1 offboarding {option}", "C0REFUSE1"))
    assert words in answer and "Nothing was posted" in answer
    assert list(bot.store.history()) == [] and bot.slack.cards() == [] and bot.sfox.requests() == []


def test_scheduled_request_is_approved_early_and_runs_at_its_time_not_before(bot):
    record, card = open_request(bot, ALICE, "client_1 contract ends --at +2h")
    assert record.status == "pending" and record.run_at is not None
    assert record.expires_at == record.run_at  # approvable until its time, not for the TTL
    shown = card_text(card)
    (unix, fallback), *_ = DATE.findall(shown)
    assert int(unix) == int(record.run_at.timestamp())
    assert fallback == record.run_at.strftime("%Y-%m-%d %H:%M UTC")
    assert "To run" in shown and "Runs" in shown

    bot.driver.click(BOB, "sfox_approve", str(record.id), card.ts)
    scheduled = wait_status(bot, record.id, "scheduled")
    assert scheduled.claimed_at is None and bot.sfox.requests("DELETE") == []
    updated = bot.slack.wait_for(
        lambda: (m := bot.slack.message(card.ts)) and "scheduled" in card_text(m) and m
    )
    assert buttons(updated) == ["sfox_deny"]  # the Cancel button
    assert DATE.search(card_text(updated))
    (told,) = bot.slack.wait_for(lambda: replies(bot, card.ts, "will be deactivated"))
    assert DATE.search(told) and f"<@{BOB}>" in told

    assert bot.runtime.schedule.tick() == 0  # before its time: nothing claimed, nothing sent
    assert bot.store.get(record.id).status == "scheduled" and bot.sfox.requests("DELETE") == []

    make_due(bot, record.id)
    assert bot.runtime.schedule.tick() == 1
    done = wait_status(bot, record.id, "succeeded")
    assert done.outcome is Outcome.DEACTIVATED and bot.sfox.deletes["client_1"] == 1
    assert bot.runtime.schedule.tick() == 0  # never twice
    drain(bot)
    assert bot.slack.thread(card.ts)[-1].text.count("is deactivated") == 1
    assert "is done" in bot.slack.dms(ALICE)[-1].text
    assert replies(bot, card.ts, "after its time") == []  # on time: no lateness to tell
    kinds = [e.kind for e in bot.store.events_for(record.id)]
    assert kinds.index("scheduled") < kinds.index("claimed") < kinds.index("sfox_delete")


def test_the_loop_wakes_at_the_time_of_a_request_it_scheduled(make_bot):
    bot = make_bot()
    bot.runtime.schedule.start()
    at = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=4)
    record, card = open_request(bot, ALICE, f"client_1 --at {iso(at)}")
    bot.driver.click(BOB, "sfox_approve", str(record.id), card.ts)
    wait_status(bot, record.id, "scheduled")
    done = wait_status(bot, record.id, "succeeded", timeout=15)
    (delete,) = bot.sfox.requests("DELETE")
    assert delete.at >= at.timestamp() and done.claimed_at >= at


def test_not_approved_by_its_time_it_expires_and_never_runs(bot):
    record, card = open_request(bot, ALICE, "client_1 --at +2h")
    make_due(bot, record.id)
    with bot.store.transaction() as conn:  # its approval window ends at its time
        conn.execute(update(requests).where(requests.c.id == record.id).values(expires_at=datetime.now(UTC)))
    bot.runtime.sweep()
    assert wait_status(bot, record.id, "expired") and bot.sfox.requests("DELETE") == []


def test_funds_that_arrive_before_the_time_stop_it(bot):
    record, card = schedule_approved(bot)
    bot.sfox.users["client_1"]["balances"] = [currency("usd", 75, held=5)]
    make_due(bot, record.id)
    bot.runtime.schedule.tick()
    failed = wait_status(bot, record.id, "failed")
    assert failed.outcome is Outcome.HELD_FUNDS and not failed.retryable
    assert "USD 75 (5 held)" in failed.error and '"balance": "75"' in failed.balances
    assert bot.sfox.requests("DELETE") == []
    (told,) = bot.slack.wait_for(lambda: replies(bot, card.ts, "still holds funds"))
    assert "Nothing was sent" in told and f"<@{ALICE}>" in told
    dm = bot.slack.wait_for(lambda: [m for m in bot.slack.dms(ALICE) if "USD 75" in m.text])
    assert "was not carried out" in dm[0].text


def test_funds_at_ask_time_do_not_block_a_request_for_later(bot):
    record, card = open_request(bot, ALICE, "client_2 --at +3d")
    assert record.status == "pending"
    assert "Balances: USD 1250 (100 held), BTC 0.5" in card_text(card)  # shown, read again at the time


@pytest.mark.parametrize("who", [ALICE, CAROL])
def test_cancel_before_the_time_by_the_requester_or_an_approver(bot, who):
    record, card = schedule_approved(bot)
    bot.driver.click(who, "sfox_deny", str(record.id), card.ts)
    cancelled = wait_status(bot, record.id, "cancelled")
    assert cancelled.denied_by == who
    (told,) = bot.slack.wait_for(lambda: replies(bot, card.ts, "cancelled the deactivation"))
    assert f"<@{who}>" in told and "Nothing was sent" in told
    final = bot.slack.wait_for(
        lambda: (m := bot.slack.message(card.ts)) and "Cancelled" in card_text(m) and m
    )
    assert buttons(final) == []
    make_due(bot, record.id)
    assert bot.runtime.schedule.tick() == 0 and bot.sfox.requests("DELETE") == []


def test_cancel_refused_to_a_stranger_and_deny_before_approval_denies(bot):
    record, card = schedule_approved(bot)
    response = bot.driver.click(MALLORY, "sfox_deny", str(record.id), card.ts)
    (refused,) = bot.driver.ephemeral_for(response.extensions["response_name"])
    assert "approver" in refused and bot.store.get(record.id).status == "scheduled"
    other, other_card = open_request(bot, ALICE, "client_3 --at +1d")
    bot.driver.click(CAROL, "sfox_deny", str(other.id), other_card.ts)
    assert wait_status(bot, other.id, "denied").denied_by == CAROL


def test_a_scheduled_user_is_still_open_for_a_new_request(bot):
    record, _ = schedule_approved(bot)
    answer = bot.driver.command(ALICE, "client_1 again", "C0AGAIN01")
    assert answer.status_code == 200
    texts = bot.driver.ephemeral_for(answer.extensions["response_name"])
    assert any("already open" in t and "scheduled" in t for t in texts)


def test_two_replicas_racing_at_the_time_send_one_delete(make_bot, database_url):
    run_race(make_bot(DATABASE_URL=database_url), make_bot(DATABASE_URL=database_url))


@pytest.mark.postgres
def test_two_replicas_racing_at_the_time_send_one_delete_on_postgres(make_bot, postgres_url):
    run_race(make_bot(DATABASE_URL=postgres_url), make_bot(DATABASE_URL=postgres_url))


def run_race(first, second):
    record, card = schedule_approved(first)
    make_due(first, record.id)
    # Four ticks at once, two per replica: exactly one claims the request and starts its run.
    started = run_concurrently([b.runtime.schedule.tick for b in (first, second, first, second)])
    assert sorted(started) == [0, 0, 0, 1], started
    wait_status(first, record.id, "succeeded")
    drain(first)
    drain(second)
    assert first.sfox.deletes["client_1"] == 1
    assert [e.kind for e in first.store.events_for(record.id)].count("claimed") == 1


def test_a_request_whose_time_passed_while_no_bot_ran_runs_late_and_says_so(bot):
    record, card = schedule_approved(bot)
    make_due(bot, record.id, late=timedelta(minutes=7, seconds=3))
    bot.runtime.sweep()  # as at a start: the sweep claims what the loop has not
    wait_status(bot, record.id, "succeeded")
    (told,) = bot.slack.wait_for(lambda: replies(bot, card.ts, "after its time"))
    assert "7 min after its time" in told and "late rather than never" in told
    claimed = next(e for e in bot.store.events_for(record.id) if e.kind == "claimed")
    assert 423 <= json.loads(claimed.detail)["late_seconds"] < 430


def test_status_list_home_and_history_show_a_scheduled_request_and_its_time(bot):
    record, _ = schedule_approved(bot)
    status = ack_text(bot.driver.command(BOB, f"status {record.id}"))
    assert "Approved, scheduled" in status and "Runs " in status and DATE.search(status)
    listed = ack_text(bot.driver.command(BOB, "list"))
    assert f"#{record.id} `client_1`: scheduled" in listed and DATE.search(listed)
    assert bot.driver.home_opened(ALICE).status_code == 200
    home = wait_until(lambda: bot.slack.home(ALICE))
    mine = json.dumps(home)
    assert f"#{record.id}" in mine and "Approved, scheduled" in mine and "runs <!date^" in mine
    row = history_row(bot.store.get(record.id))
    assert row["status"] == "scheduled" and row["run_at"] == record.run_at.isoformat()
    table = io.StringIO()
    write_table(iter([bot.store.get(record.id)]), table)
    assert (
        "scheduled" in table.getvalue()
        and record.run_at.strftime("runs %Y-%m-%d %H:%M UTC") in table.getvalue()
    )


def test_a_command_carried_out_after_its_time_posts_nothing(bot):
    """A journalled command resumed after a restart whose time went by meanwhile."""
    past = datetime.now(UTC) - timedelta(minutes=1)
    answer = bot.runtime.workflow.open_request(Command(ALICE, "C0LATE001", "client_1", "", run_at=past))
    assert isinstance(answer, str) and "passed before I could post the card" in answer
    assert bot.slack.cards() == [] and list(bot.store.history()) == []
