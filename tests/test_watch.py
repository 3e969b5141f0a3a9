"""Issue 19, watch until empty: a funded account asked `--when-empty` (or whose blocked DM's
*Watch* button is pressed) is watched, not blocked; once every balance reads zero the normal card
is posted and approved as usual (one DELETE); at its deadline it expires; *Stop watching* ends it
(the requester or an approver; nobody else). Through real HTTP: a fake Slack, a fake sFOX (its
`client_draining` user withdraws after two balance reads), signed requests."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert, select

from bot.cli.history import write_table
from bot.requests.history import history_row
from bot.sfox.balances import BalanceCheck
from bot.slack.watch_blocks import STOP_WATCHING, WATCH
from bot.store.schema import clicks
from tests.conftest import ALICE, BOB, MALLORY
from tests.helpers import buttons, card_text, wait_status, wait_until
from tests.support import event_kinds, later_ephemerals

# A short interval: the loop reads again at once, the limiter's window still applies.
FAST = {"SFOX_WATCH_INTERVAL_SECONDS": "0.1"}


def dm_to(bot, user, *words):
    return wait_until(lambda: [m for m in bot.slack.dms(user) if all(w in m.text for w in words)] or None)


def watch(bot, text, user=ALICE):
    """Ask `--when-empty`; the request id and the requester's answer."""
    response = bot.driver.command(user, f"{text} --when-empty", "C0WATCH01")
    (answer,) = later_ephemerals(bot, response)
    record = wait_until(lambda: next(iter(bot.store.history(limit=1)), None))
    return record.id, answer


def click(bot, user, action, request_id, dm):
    response = bot.driver.click(user, action, str(request_id), dm.ts)
    return later_ephemerals(bot, response)[0]


def test_a_watch_ends_in_a_card_and_one_delete(make_bot, fake_sfox):
    bot = make_bot(**FAST)
    request_id, answer = watch(bot, "client_draining leaving")
    assert "I am watching its balances" in answer and "every 0.1 s" in answer and "USD 500" in answer
    assert bot.store.get(request_id).status == "watching"
    assert bot.slack.cards() == []
    started = dm_to(bot, ALICE, "is being watched")[0]
    assert buttons(started) == [STOP_WATCHING]

    bot.runtime.watch.start()
    card = bot.slack.wait_for(lambda: bot.slack.cards() or None)[0]
    record = wait_until(lambda: (r := bot.store.get(request_id)).message_ts == card.ts and r)
    assert record.status == "pending"
    assert "Balances: all zero (checked" in card_text(card)
    assert record.expires_at > record.watch_read_at + timedelta(minutes=59)  # its TTL starts now
    (cleared,) = dm_to(bot, ALICE, "every balance now reads zero")
    assert f"p{card.ts.replace('.', '')}" in cleared.text  # the link to the card

    bot.driver.click(BOB, "sfox_approve", str(request_id), card.ts)
    wait_status(bot, request_id, "succeeded")
    assert dict(fake_sfox.deletes) == {"client_draining": 1}
    kinds = event_kinds(bot, request_id)
    assert kinds[:3] == ["requested", "watch_started", "watch_cleared"]
    assert kinds.count("watch_started") == 1 and "card_posted" in kinds  # reads are not audited
    assert len([u for u, _ in fake_sfox.balance_reads if u == "client_draining"]) == 3


def test_balances_already_zero_just_post_the_card(bot):
    response = bot.driver.command(ALICE, "client_1 --when-empty", "C0WATCH02")
    card = bot.slack.wait_for(lambda: bot.slack.cards() or None)[0]
    assert "all zero" in card_text(card)
    record = wait_until(lambda: (r := next(iter(bot.store.history(limit=1)))).message_ts and r)
    assert record.status == "pending" and "watch_started" not in event_kinds(bot, record.id)
    assert response.status_code == 200


def test_a_watch_expires_at_its_deadline(bot, fake_sfox):
    request_id, _ = watch(bot, "client_2")
    record = bot.store.get(request_id)
    assert record.expires_at - record.created_at == timedelta(days=14)
    later = datetime.now(UTC) + timedelta(days=14, minutes=1)
    bot.runtime.workflow.now = lambda: later  # the clock, injected: fourteen days on
    assert bot.runtime.workflow.watch_due() == 1
    record = wait_status(bot, request_id, "expired")
    (dm,) = dm_to(bot, ALICE, f"#{request_id}", "expired")
    assert "did not reach zero within 14 day(s)" in dm.text
    assert bot.slack.cards() == [] and not fake_sfox.deletes
    assert event_kinds(bot, request_id)[-1] == "watch_expired"
    assert bot.runtime.workflow.watch_due() == 0  # nothing left to read


@pytest.mark.parametrize("stopper", [ALICE, BOB])
def test_stop_watching_by_the_requester_or_an_approver(bot, stopper):
    request_id, _ = watch(bot, "client_2")
    dm = dm_to(bot, ALICE, "is being watched")[0]
    refused = click(bot, MALLORY, STOP_WATCHING, request_id, dm)
    assert "not on the sFOX approver list" in refused
    assert bot.store.get(request_id).status == "watching"
    assert "Stopped watching" in click(bot, stopper, STOP_WATCHING, request_id, dm)
    record = wait_status(bot, request_id, "cancelled")
    assert record.denied_by == stopper
    assert "already stopped" in click(bot, stopper, STOP_WATCHING, request_id, dm)  # harmless again
    assert event_kinds(bot, request_id).count("watch_cancelled") == 1
    dm_to(bot, ALICE, "watching was stopped by")
    assert bot.runtime.workflow.watch_due() == 0


def test_the_watch_button_on_a_blocked_dm(make_bot):
    bot = make_bot(**FAST)
    response = bot.driver.command(ALICE, "client_held", "C0WATCH03")
    assert "--when-empty" in later_ephemerals(bot, response)[0]
    record = wait_until(lambda: next(iter(bot.store.history(limit=1)), None))
    blocked = dm_to(bot, ALICE, "closed before any card")[0]
    assert buttons(blocked) == [WATCH] and record.status == "blocked"
    assert "not on the sFOX approver list" in click(bot, MALLORY, WATCH, record.id, blocked)
    assert "I am watching" in click(bot, ALICE, WATCH, record.id, blocked)
    assert bot.store.get(record.id).status == "watching"
    assert "already being watched" in click(bot, BOB, WATCH, record.id, blocked)  # compare-and-set
    assert event_kinds(bot, record.id).count("watch_started") == 1
    dm_to(bot, ALICE, "is being watched")
    # status, list and the App Home show it, and when it was last read.
    assert "last read" in bot.driver.command(BOB, "list").json()["text"]
    assert "Watching its balances" in bot.driver.command(BOB, f"status {record.id}").json()["text"]
    bot.driver.home_opened(BOB)
    home = bot.slack.wait_for(lambda: bot.slack.home(BOB))
    assert "Watched until empty" in str(home) and "last read" in str(home)


def test_a_watch_that_clears_days_later_waits_its_full_ttl(bot, fake_sfox):
    """The TTL, the reminder and the lost-card grace count from the read that cleared it, not
    from when the watch began."""
    request_id, _ = watch(bot, "client_2")
    fake_sfox.users["client_2"]["balances"] = []  # withdrawn meanwhile
    later = datetime.now(UTC) + timedelta(days=5)
    bot.runtime.workflow.now = lambda: later
    assert bot.runtime.workflow.watch_due() == 1
    record = wait_until(lambda: (r := bot.store.get(request_id)).message_ts and r)
    assert record.status == "pending" and record.expires_at == later + timedelta(hours=1)
    assert record.pending_since == later
    assert bot.runtime.visibility.reminders.due(later) == []


def test_a_read_that_fails_is_not_a_zero_the_watch_goes_on_and_its_deadline_holds(bot, fake_sfox):
    """The balances are withdrawn, but the due read fails (sFOX answers 500): no card, still
    watching, the read kept as failed, the next one an interval later. And no read is planned past
    the watch's deadline: the last one falls due exactly then, and expires it."""
    request_id, _ = watch(bot, "client_2")
    watching = bot.store.get(request_id)
    fake_sfox.users["client_2"]["balances"] = []
    fake_sfox.users["client_2"]["balance_fails"] = 500
    workflow = bot.runtime.workflow
    first = watching.watch_next_at
    workflow.now = lambda: first
    assert workflow.watch_due() == 1
    record = bot.store.get(request_id)
    assert record.status == "watching" and bot.slack.cards() == []
    kept = BalanceCheck.from_json(record.balances)  # the read, kept as failed: not as zero
    assert kept.balances is None and kept.problem and record.watch_read_at == first
    assert record.watch_next_at == first + workflow.watch_interval
    assert workflow.watch_due() == 0  # not before its next time

    del fake_sfox.users["client_2"]["balance_fails"]
    almost = record.expires_at - timedelta(seconds=1)
    workflow.now = lambda: almost  # the last read before the deadline plans none past it
    fake_sfox.users["client_2"]["balance_fails"] = 500
    assert workflow.watch_due() == 1
    assert bot.store.get(request_id).watch_next_at == record.expires_at
    del fake_sfox.users["client_2"]["balance_fails"]
    workflow.now = lambda: record.expires_at
    assert workflow.watch_due() == 1
    assert wait_status(bot, request_id, "expired").status == "expired"
    assert bot.slack.cards() == [] and not fake_sfox.deletes


def test_a_read_that_fails_then_one_that_reads_zero_posts_the_card(bot, fake_sfox):
    """A failed read holds the card back only until a read succeeds."""
    request_id, _ = watch(bot, "client_2")
    fake_sfox.users["client_2"]["balances"] = []
    fake_sfox.users["client_2"]["balance_fails"] = 500
    workflow = bot.runtime.workflow
    first = bot.store.get(request_id).watch_next_at
    workflow.now = lambda: first
    assert workflow.watch_due() == 1 and bot.store.get(request_id).status == "watching"
    del fake_sfox.users["client_2"]["balance_fails"]
    workflow.now = lambda: first + workflow.watch_interval
    assert workflow.watch_due() == 1
    record = wait_until(lambda: (r := bot.store.get(request_id)).message_ts and r)
    assert record.status == "pending" and "all zero" in card_text(bot.slack.cards()[0])


def test_watch_clicks_are_journalled_and_replayed_after_a_crash(bot):
    """Watch and Stop watching are recorded before their ack like every click; one acked by a
    process that died before handling it is handled by the next sweep, once."""
    request_id, _ = watch(bot, "client_2")
    dm = dm_to(bot, ALICE, "is being watched")[0]
    click(bot, MALLORY, STOP_WATCHING, request_id, dm)

    def journal():
        with bot.store.reader() as conn:
            return [
                (a, done is not None) for a, done in conn.execute(select(clicks.c.action, clicks.c.done_at))
            ]

    # Answered a moment before it is marked done: wait for that.
    wait_until(lambda: journal() == [(STOP_WATCHING, True)])
    past = datetime.now(UTC) - timedelta(minutes=1)
    with bot.store.transaction() as conn:  # acked, then the process died: never handled
        conn.execute(
            insert(clicks).values(
                request_id=request_id, action=STOP_WATCHING, actor=BOB, received_at=past, lease_until=past
            )
        )
    assert bot.runtime.clicks.replay() == 1
    assert wait_status(bot, request_id, "cancelled").denied_by == BOB
    assert bot.runtime.clicks.replay() == 0


def test_history_shows_a_watch_and_its_last_read(bot):
    request_id, _ = watch(bot, "client_2")
    out = io.StringIO()
    write_table(bot.store.history(), out)
    assert "watching; last read" in out.getvalue()
    row = history_row(bot.store.get(request_id))
    assert row["status"] == "watching" and row["watch_read_at"] is not None
