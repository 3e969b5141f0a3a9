"""Slash commands (a single request, a batch inline or from its form) are journalled before their
ack (bot/runtime/commands.py): a command Slack was told we received is carried out even when the
process that acked it dies first. Any replica's sweep takes it after its lease, once however many
sweep, and tells the requester through the command's response URL; what the dead process had
already created is not created again. A journal write the database cannot take within 2 s is
answered "not recorded" and changes nothing. All through signed requests over real HTTP; the
real kill is in test_crash_points.py and test_batch_crash.py."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, make_url, select, update

from bot.fakes.slack_api import FakeSlack
from bot.requests.base import CARDLESS_GRACE
from bot.runtime import journal as journal_module
from bot.runtime.journal import RESPONSE_URL_LIFETIME
from bot.store.engine import make_engine
from bot.store.schema import batches, commands
from tests.conftest import ALICE, BOB, checked_slack
from tests.helpers import wait_status, wait_until
from tests.support import Gate, ack_text
from tests.threads import run_concurrently


@pytest.fixture
def fake_slack() -> Iterator[FakeSlack]:
    """Message timestamps from the wall clock, as Slack's are (the sweep looks cards up by time)."""
    yield from checked_slack(clock_ts=True)


@pytest.fixture
def db(database_url: str) -> str:
    """The bots' one database, on both engines (database_url)."""
    return database_url


def journal(bot) -> list[dict[str, Any]]:
    with bot.store.reader() as conn:
        return [dict(r) for r in conn.execute(select(commands).order_by(commands.c.id)).mappings()]


def batch_count(bot) -> int:
    with bot.store.reader() as conn:
        return int(conn.execute(select(func.count()).select_from(batches)).scalar_one())


def answers(bot, response, timeout: float = 10.0) -> list[str]:
    """What the requester was told through the command's response URL after the ack."""
    return bot.driver.ephemeral_for(response.extensions["response_name"], timeout)


def acked_then_dead(make_bot, db: str, text: str, job: Any = None):
    """A bot that journals and acks the command, then dies before its job has run (or after
    `job(bot, accepted)`, what it got done first): stopped, it renews no lease any more."""
    dead = make_bot(DATABASE_URL=db)
    dead.runtime.commands.run = lambda accepted: job(dead, accepted) if job else None
    response = dead.driver.command(ALICE, text)
    assert response.status_code == 200
    assert dead.runtime.wait_idle()
    dead.stop()
    return response


def lease_over(bot) -> None:
    """The dead process's lease on its commands has run out."""
    with bot.store.transaction() as conn:
        conn.execute(update(commands).values(lease_until=datetime.now(UTC) - timedelta(seconds=1)))


def sweep(bot) -> int:
    resumed = bot.runtime.sweep()["commands"]
    assert bot.runtime.wait_idle()
    return resumed


# -- journalled before the ack, done once answered -------------------------------------------


def test_a_command_is_journalled_before_its_ack_and_done_once_carried_out(bot, fake_sfox):
    with Gate(fake_sfox, "GET") as gate:
        response = bot.driver.command(ALICE, "client_1 offboarding")
        assert ack_text(response) == "Looking up `client_1` on sFOX…"
        gate.wait_arrived()
        [row] = journal(bot)  # recorded before the ack, and still open while the lookup runs
        assert row["kind"] == "request" and row["requester"] == ALICE and row["done_at"] is None
        assert json.loads(row["command"]) == {"sfox_user_id": "client_1", "reason": "offboarding"}
        assert row["channel_id"] == bot.driver.channel_id and row["response_url"].endswith("/cmd1")
    record = wait_until(lambda: (r := next(iter(bot.store.history()), None)) and r.message_ts and r)
    assert record.command_id == row["id"]
    [done] = wait_until(lambda: [r for r in journal(bot) if r["done_at"] is not None])
    assert done["response_url"] is None  # no longer needed once done


def test_a_batch_is_journalled_with_what_it_left_out(make_bot, fake_sfox):
    bot = make_bot(SFOX_BALANCE_CHECK="off")
    for uid in ("cohort_1", "cohort_2"):
        fake_sfox.add_user(uid)
    response = bot.driver.command(ALICE, "batch cohort_1,bad/id,cohort_2,cohort_1 cohort closed")
    assert ack_text(response) == "Checking 2 users on sFOX…"
    assert "Batch #" in wait_until(lambda: [t for t in answers(bot, response) if "Batch #" in t])[0]
    [row] = wait_until(lambda: [r for r in journal(bot) if r["done_at"] is not None])
    assert row["kind"] == "batch"
    command = json.loads(row["command"])
    assert command["ids"] == ["cohort_1", "cohort_2"] and command["reason"] == "cohort closed"
    assert command["duplicates"] == ["cohort_1"] and [t for t, _why in command["malformed"]] == ["bad/id"]
    assert bot.runtime.batches.records.get(1).command_id == row["id"]


# -- not recorded within 2 s -------------------------------------------------------------------


@contextmanager
def journal_held(url: str) -> Iterator[None]:
    """Another writer holds the journal for longer than an ack can wait."""
    if url.startswith("sqlite"):
        conn = sqlite3.connect(make_url(url).database, isolation_level=None, timeout=30)
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            conn.execute("ROLLBACK")
            conn.close()
        return
    engine = make_engine(url)
    try:
        with engine.connect() as conn, conn.begin():
            conn.exec_driver_sql("LOCK TABLE commands IN ACCESS EXCLUSIVE MODE")
            yield
    finally:
        engine.dispose()


# The journal's budget, made small here: an ack that waits for it then answers must still come
# within Slack's 3 s with room to spare on a loaded machine (the product's is 2 s, far under 3 s,
# and its margin is what is tested: the ack waits the budget and not much longer).
BUDGET = 0.25


def test_a_command_the_database_cannot_take_in_time_is_refused_visibly(
    make_bot, db, fake_sfox, fake_slack, monkeypatch
):
    monkeypatch.setattr(journal_module, "RECORD_WITHIN_SECONDS", BUDGET)
    bot = make_bot(DATABASE_URL=db, SFOX_BALANCE_CHECK="off")
    fake_sfox.add_user("cohort_1")
    bot.driver.command(ALICE, "batch")  # the form, opened before the database is held
    form = wait_until(lambda: fake_slack.opened_views)[0]["view"]
    with journal_held(db):
        for text in ("client_1 offboarding", "batch cohort_1,client_2 cohort closed"):
            started = time.monotonic()
            response = bot.driver.command(ALICE, text)
            assert BUDGET <= time.monotonic() - started < 3.0  # waited its budget, then acked
            said = ack_text(response)
            assert "your command was *not* recorded and changed nothing" in said, said
        started = time.monotonic()
        submitted = bot.driver.submit_view(ALICE, form, {"ids": "cohort_1", "reason": "from the form"})
        assert BUDGET <= time.monotonic() - started < 3.0
        body = submitted.json()  # the form stays open, saying so
        assert body["response_action"] == "errors" and "not* recorded" in json.dumps(body["errors"])
    assert bot.runtime.wait_idle()
    assert journal(bot) == [] and list(bot.store.history()) == [] and batch_count(bot) == 0
    assert fake_sfox.requests("GET") == [] and fake_slack.cards() == []
    assert fake_slack.ephemeral == []


# -- resumed by a sweep after its lease --------------------------------------------------------


def test_a_command_left_open_is_resumed_by_the_sweep_after_its_lease_and_answered_once(
    make_bot, db, fake_slack, fake_sfox
):
    response = acked_then_dead(make_bot, db, "client_1 offboarding")
    live = make_bot(DATABASE_URL=db)
    assert sweep(live) == 0  # the dead process's lease still runs
    assert fake_slack.cards() == [] and fake_sfox.requests("GET") == []
    lease_over(live)
    assert sweep(live) == 1
    [card] = fake_slack.cards()
    [record] = list(live.store.history())
    assert (record.sfox_user_id, record.reason, record.requested_by) == ("client_1", "offboarding", ALICE)
    assert wait_until(lambda: live.store.get(record.id).message_ts) == card.ts
    [told] = answers(live, response)
    assert "restarted while it was handling your command" in told
    assert f"request #{record.id}" in told and "card is posted" in told
    assert sweep(live) == 0  # done: never again
    [row] = journal(live)
    assert row["done_at"] is not None and row["response_url"] is None
    assert len(answers(live, response)) == 1


@pytest.mark.parametrize("text", ["client_1 offboarding", "batch client_1,client_3 cohort closed"])
def test_two_replicas_sweeping_at_once_resume_a_command_once(make_bot, db, fake_slack, fake_sfox, text):
    response = acked_then_dead(make_bot, db, text)
    first, second = make_bot(DATABASE_URL=db), make_bot(DATABASE_URL=db)
    lease_over(first)
    swept = run_concurrently([b.runtime.sweep for b in (first, second, first, second)])
    assert first.runtime.wait_idle() and second.runtime.wait_idle()
    assert sorted(s["commands"] for s in swept) == [0, 0, 0, 1], swept
    assert len(fake_slack.cards()) == 1
    assert len(list(first.store.history())) == (2 if "batch" in text else 1)
    assert batch_count(first) == (1 if "batch" in text else 0)
    lookups = [
        r.raw_path for r in fake_sfox.requests("GET") if r.raw_path.startswith("/v1/enterprise/users/")
    ]
    assert len(lookups) == len(set(lookups)) == len(list(first.store.history()))  # each user looked up once
    [told] = answers(first, response)
    assert "restarted while it was" in told
    assert sweep(first) == 0 and sweep(second) == 0


def test_a_resumed_command_whose_request_was_created_makes_no_second(make_bot, db, fake_slack):
    def card_posted_then_died(bot, accepted) -> None:
        bot.runtime.workflow.open_request(accepted.ask)  # the request, its card, the card's ts

    response = acked_then_dead(make_bot, db, "client_1 offboarding", card_posted_then_died)
    [card] = fake_slack.cards()
    live = make_bot(DATABASE_URL=db)
    lease_over(live)
    assert sweep(live) == 1
    [record] = list(live.store.history())
    assert record.message_ts == card.ts and len(fake_slack.cards()) == 1
    [told] = answers(live, response)
    assert f"request #{record.id}" in told and "card is posted" in told


def test_a_resumed_command_whose_card_was_not_recorded_waits_for_the_lost_card_search(
    make_bot, db, fake_slack
):
    def posted_not_recorded(bot, accepted) -> None:
        bot.store.set_card = lambda *args: None  # died between the card's post and its record
        bot.runtime.workflow.open_request(accepted.ask)

    response = acked_then_dead(make_bot, db, "client_1 offboarding", posted_not_recorded)
    [card] = fake_slack.cards()
    live = make_bot(DATABASE_URL=db)
    lease_over(live)
    assert sweep(live) == 1
    [record] = list(live.store.history())
    assert record.message_ts is None and len(fake_slack.cards()) == 1  # no second card
    assert not [
        e for e in fake_slack.ephemeral if e.get("response_url") == response.extensions["response_name"]
    ]
    [row] = journal(live)
    assert row["done_at"] is None  # open until the lost card is found or the request closed
    # The sweep's lost-card search (after CARDLESS_GRACE) finds the card; then the command is told.
    live.runtime.workflow.now = lambda: datetime.now(UTC) + CARDLESS_GRACE + timedelta(seconds=30)
    sweep(live)
    assert live.store.get(record.id).message_ts == card.ts
    [told] = wait_until(lambda: answers(live, response))
    assert f"request #{record.id}" in told and "card is posted" in told
    assert [r["done_at"] is not None for r in journal(live)] == [True]


def test_a_resumed_batch_that_was_created_makes_no_second(make_bot, db, fake_slack, fake_sfox):
    def card_posted_then_died(bot, accepted) -> None:
        bot.runtime.batches.open_batch(accepted.ask)

    response = acked_then_dead(make_bot, db, "batch client_1,client_3 cohort closed", card_posted_then_died)
    [card] = fake_slack.cards()
    live = make_bot(DATABASE_URL=db)
    lease_over(live)
    assert sweep(live) == 1
    assert batch_count(live) == 1 and len(fake_slack.cards()) == 1
    [told] = answers(live, response)
    assert "restarted while it was preparing your batch" in told and "Batch #1 posted for approval" in told


def test_a_resumed_batch_created_without_its_card_is_closed_and_said_so(make_bot, db, fake_slack):
    class Killed(Exception):
        pass

    def killed(*_args: Any) -> str:
        raise Killed

    def died_before_the_card(bot, accepted) -> None:
        bot.runtime.batches.notifier.post_card = killed
        with pytest.raises(Killed):
            bot.runtime.batches.open_batch(accepted.ask)

    response = acked_then_dead(make_bot, db, "batch client_1,client_3 cohort closed", died_before_the_card)
    live = make_bot(DATABASE_URL=db)
    lease_over(live)
    assert sweep(live) == 1
    assert batch_count(live) == 1 and fake_slack.cards() == []
    batch = live.runtime.batches.records.get(1)
    assert batch.status == "failed"  # nobody can approve a batch without a card
    assert {r.status for r in live.store.history()} == {"failed"}
    [told] = answers(live, response)
    assert "did *not* go through" in told and "ask again" in told


def test_a_command_found_after_its_response_url_expired_is_closed_unanswered(make_bot, db, fake_slack):
    response = acked_then_dead(make_bot, db, "client_1 offboarding")
    live = make_bot(DATABASE_URL=db)
    live.runtime.workflow.now = lambda: datetime.now(UTC) + RESPONSE_URL_LIFETIME + timedelta(minutes=1)
    assert sweep(live) == 1
    # Half an hour on, nobody expects this card any more, and its requester cannot be told.
    assert fake_slack.cards() == [] and list(live.store.history()) == []
    assert [r["done_at"] is not None for r in journal(live)] == [True]
    assert not [
        e for e in fake_slack.ephemeral if e.get("response_url") == response.extensions["response_name"]
    ]


def test_a_resumed_batch_uses_no_more_than_five_posts_of_the_response_url(make_bot, db, fake_slack):
    response = acked_then_dead(make_bot, db, "batch client_1,client_3 cohort closed")
    live = make_bot(DATABASE_URL=db)
    with live.store.transaction() as conn:  # the dead process had used them all
        conn.execute(update(commands).values(posts=5, lease_until=datetime.now(UTC) - timedelta(seconds=1)))
    assert sweep(live) == 1
    assert len(fake_slack.cards()) == 1  # carried out all the same (and the job is done)
    assert not [
        e for e in fake_slack.ephemeral if e.get("response_url") == response.extensions["response_name"]
    ]


def test_a_batch_from_the_form_is_answered_by_ephemeral_message_when_resumed(make_bot, db, fake_slack):
    dead = make_bot(DATABASE_URL=db)
    dead.runtime.commands.run = lambda accepted: None
    dead.driver.command(ALICE, "batch")
    form = wait_until(lambda: fake_slack.opened_views)[0]["view"]
    submitted = dead.driver.submit_view(ALICE, form, {"ids": "client_1 client_3", "reason": "from the form"})
    assert submitted.status_code == 200
    assert dead.runtime.wait_idle()
    dead.stop()
    fake_slack.ephemeral.clear()  # "Checking 2 users on sFOX…"
    live = make_bot(DATABASE_URL=db)
    lease_over(live)
    assert sweep(live) == 1
    [told] = wait_until(lambda: [e for e in fake_slack.ephemeral if "Batch #" in e.get("text", "")])
    assert told["user"] == ALICE and "restarted while it was preparing your batch" in told["text"]
    assert len(fake_slack.cards()) == 1


def test_the_card_of_a_resumed_command_works_as_any_other(make_bot, db, fake_sfox):
    acked_then_dead(make_bot, db, "client_1 offboarding")
    live = make_bot(DATABASE_URL=db)
    lease_over(live)
    sweep(live)
    [record] = list(live.store.history())
    live.driver.click(BOB, "sfox_approve", str(record.id), live.store.get(record.id).message_ts)
    wait_status(live, record.id, "succeeded")
    assert fake_sfox.deletes["client_1"] == 1
