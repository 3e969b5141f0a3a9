"""The rules that make deactivation safe: exactly one DELETE per request (double clicks, many
simultaneous clicks, two bot processes on one database, on SQLite and PostgreSQL), the ack never
waits for sFOX, and an expired request cannot be approved."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest

from bot.fakes.slack_driver import SlackDriver
from bot.store import migrate
from bot.store.db import Store
from tests.conftest import ALICE, BOB, CAROL, SIGNING_SECRET
from tests.helpers import buttons, card_text, open_request, wait_status
from tests.support import Gate, ack_text, drain, event_kinds, later_ephemerals

APPROVE = "sfox_approve"
CLICKS = 30


@pytest.fixture
def any_database(database_url):
    """The bots' one database, on both engines (database_url)."""
    return database_url


def simultaneous_clicks(bots, record, card, n=CLICKS, users=(BOB, CAROL)):
    """`n` signed Approve clicks, alternating between `users` and spread over `bots`, each from its
    own thread and connection, all released at the same instant. Returns the HTTP statuses."""
    drivers = [SlackDriver(bots[i % len(bots)].url, SIGNING_SECRET, bots[0].slack) for i in range(n)]
    bodies = [
        d.click_body(users[i % len(users)], APPROVE, str(record.id), card.ts)[0]
        for i, d in enumerate(drivers)
    ]
    start = threading.Barrier(n)

    def one(i):
        start.wait()
        return drivers[i].post(bodies[i], "application/x-www-form-urlencoded").status_code

    try:
        with ThreadPoolExecutor(n) as pool:
            return list(pool.map(one, range(n)))
    finally:
        for d in drivers:
            d.close()


def assert_exactly_one_delete(bots, record, card, fake_sfox, approvers):
    for b in bots:
        drain(b)  # every click processed, every sFOX call and Slack message finished
    done = bots[0].store.get(record.id)
    assert done.status == "succeeded"
    assert len(fake_sfox.requests("DELETE")) == 1
    assert fake_sfox.deletes[record.sfox_user_id] == 1
    assert set(done.approved_by) <= set(approvers) and len(done.approved_by) >= done.required_approvals
    kinds = event_kinds(bots[0], record.id)
    assert kinds.count("claimed") == 1 and kinds.count("sfox_delete") == 1
    replies = bots[0].slack.thread(card.ts)
    assert len(replies) == 1 and "is deactivated" in replies[0].text


def test_double_click_sends_one_delete(bot, fake_sfox):
    record, card = open_request(bot, ALICE, "client_1 left")
    with Gate(fake_sfox) as gate:
        first = bot.driver.click(BOB, APPROVE, str(record.id), card.ts)
        second = bot.driver.click(BOB, APPROVE, str(record.id), card.ts)
        assert first.status_code == second.status_code == 200
        gate.wait_arrived()
        # Both steps run at once after their acks: either click may win the claim. The other,
        # whichever it is, is told; the winner needs no answer (the card says it). A first click
        # that loses has recorded the approval the second one then claimed with.
        names = {first.extensions["response_name"], second.extensions["response_name"]}
        [answer] = bot.slack.wait_for(
            lambda: [e["text"] for e in list(bot.slack.ephemeral) if e.get("response_url") in names]
        )
        told = ("being deactivated right now", "already approved", "is already being deactivated")
        assert any(words in answer for words in told), answer
    assert_exactly_one_delete([bot], record, card, fake_sfox, {BOB})


@pytest.mark.parametrize("required", ["1", "2"])
def test_many_simultaneous_approvals_send_one_delete(make_bot, fake_sfox, any_database, required):
    bot = make_bot(DATABASE_URL=any_database, SFOX_REQUIRED_APPROVALS=required)
    record, card = open_request(bot, ALICE, "client_1 left")
    statuses = simultaneous_clicks([bot], record, card)
    assert statuses == [200] * CLICKS
    wait_status(bot, record.id, "succeeded")
    assert_exactly_one_delete([bot], record, card, fake_sfox, {BOB, CAROL})
    if required == "2":
        assert sorted(bot.store.get(record.id).approved_by) == [BOB, CAROL]


def test_two_bot_processes_sharing_a_database_send_one_delete(make_bot, fake_sfox, any_database):
    one = make_bot(DATABASE_URL=any_database)
    two = make_bot(DATABASE_URL=any_database)
    assert one.store is not two.store and one.runtime.jobs is not two.runtime.jobs
    record, card = open_request(one, ALICE, "client_1 left")
    statuses = simultaneous_clicks([one, two], record, card)
    assert statuses == [200] * CLICKS
    wait_status(two, record.id, "succeeded")
    assert_exactly_one_delete([one, two], record, card, fake_sfox, {BOB, CAROL})


def test_slash_command_is_acked_before_the_sfox_lookup_is_answered(bot, fake_sfox):
    with Gate(fake_sfox, method="GET") as gate:
        response = bot.driver.command(ALICE, "client_1 left")
        # The lookup cannot have been answered: the gate is still closed.
        assert "Looking up `client_1`" in ack_text(response)
        gate.wait_arrived()
        assert bot.slack.cards() == []
    bot.slack.wait_for(lambda: bot.slack.cards())


def test_click_is_acked_while_the_delete_is_still_pending(make_bot, fake_sfox):
    bot = make_bot(SFOX_TIMEOUT_SECONDS="20")
    record, card = open_request(bot, ALICE, "client_1 left")
    seen_when_acked = {}
    with Gate(fake_sfox) as gate:
        response = bot.driver.click(BOB, APPROVE, str(record.id), card.ts)
        # Slack has its answer, and sFOX has not answered the DELETE (it cannot, the gate holds it).
        seen_when_acked["status"] = response.status_code
        seen_when_acked["deactivated"] = "client_1" in fake_sfox.deactivated
        gate.wait_arrived()
        assert bot.store.get(record.id).status == "executing"
        assert bot.slack.thread(card.ts) == []
    assert seen_when_acked == {"status": 200, "deactivated": False}
    wait_status(bot, record.id, "succeeded")


def test_slow_sfox_does_not_slow_the_ack(make_bot, fake_sfox):
    """With sFOX taking 3 s to answer, Slack gets the click's HTTP answer before sFOX answers."""
    bot = make_bot(SFOX_TIMEOUT_SECONDS="20")
    record, card = open_request(bot, ALICE, "client_1 left")
    order = []  # appended from this thread (the ack) and from the fake sFOX's thread (its answer)
    answer = fake_sfox.answer

    def answer_and_note(method, path, auth):
        result = answer(method, path, auth)
        order.append(f"sfox answered {method}")
        return result

    fake_sfox.answer = answer_and_note
    fake_sfox.delay = 3.0
    try:
        response = bot.driver.click(BOB, APPROVE, str(record.id), card.ts)
        order.append(f"ack {response.status_code}")
        wait_status(bot, record.id, "succeeded")
    finally:
        fake_sfox.delay = 0.0
    assert order == ["ack 200", "sfox answered DELETE"]


def test_expired_request_cannot_be_approved(make_bot, fake_sfox):
    bot = make_bot(SFOX_REQUEST_TTL_SECONDS="1")
    record, card = open_request(bot, ALICE, "client_1 left")
    while datetime.now(UTC) <= record.expires_at:
        time.sleep(0.05)
    response = bot.driver.click(BOB, APPROVE, str(record.id), card.ts)
    [answer] = later_ephemerals(bot, response)
    assert "has expired" in answer and "nothing was changed" in answer
    done = wait_status(bot, record.id, "expired")
    assert done.approved_by == ()
    updated = bot.slack.wait_for(lambda: "Expired" in card_text(m := bot.slack.message(card.ts)) and m)
    assert buttons(updated) == []
    # Another try, and a deny, change nothing either.
    assert (
        "has expired" in later_ephemerals(bot, bot.driver.click(CAROL, APPROVE, str(record.id), card.ts))[0]
    )
    assert (
        "has expired" in later_ephemerals(bot, bot.driver.click(BOB, "sfox_deny", str(record.id), card.ts))[0]
    )
    assert fake_sfox.requests("DELETE") == []
    assert bot.store.get(record.id).status == "expired"
    # The user can be requested again: a new card, a new request.
    again, again_card = open_request(bot, BOB, "client_1 second try")
    assert again.id != record.id and again_card.ts != card.ts and again.status == "pending"
    drain(bot)
    assert fake_sfox.requests("DELETE") == []


def test_store_refuses_approval_and_claim_after_expiry_even_if_asked(tmp_path):
    """The database itself enforces the TTL, so a click racing the expiry cannot slip through."""
    store = Store.from_url(f"sqlite:///{tmp_path / 'ttl.db'}")
    migrate.upgrade(store.engine)
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    record = store.create_request(
        sfox_user_id="client_1",
        reason="",
        requested_by=ALICE,
        channel_id="C0123TEST",
        required_approvals=1,
        target_name=None,
        target_email=None,
        target_status=None,
        now=t0,
        ttl=timedelta(seconds=60),
    )
    assert store.add_approval(record.id, BOB, t0 + timedelta(seconds=59))
    late = t0 + timedelta(seconds=60)
    assert not store.add_approval(record.id, CAROL, late)
    assert not store.claim(record.id, late)
    assert not store.deny(record.id, CAROL, late, "denied")
    assert store.get(record.id).status == "pending"
    assert store.expire(record.id, late)
    assert not store.claim(record.id, t0)  # expired is final, whatever the clock says
    assert store.get(record.id).status == "expired"
    store.close()
