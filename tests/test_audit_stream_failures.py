"""The audit stream's answers that are not an acknowledgement (issue 31), through real HTTP: a
redirect is not followed and acknowledges nothing, and a receiver that never answers is given up
at the stream's timeout (a third of the lease, so the POST has ended before another replica may
take over). Either way the cursor stays where it was, the failure is counted, the batch is sent
again at its backoff, and a later 2xx moves the cursor on. A gap in the chain stops the stream
before it, and a sender that lost its lease cannot move the cursor back."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from bot.audit import stream_cursor
from bot.audit.stream import AuditStream, Failed, Idle, Outcome, Sent
from bot.store import migrate
from bot.store.db import Store
from tests.helpers import wait_until
from tests.stream_support import WEBHOOK_SECRET, Receiver, append_events, assert_in_order_none_missing


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_acknowledges_nothing_and_is_not_followed(make_bot, status):
    """The Location names a receiver that would answer 200: neither followed nor taken as the
    webhook's 2xx. The cursor stays, and the batch goes again to the webhook at its time."""
    elsewhere = Receiver()
    receiver = Receiver(script=[status], location=elsewhere.url)
    try:
        bot = make_bot(SFOX_AUDIT_WEBHOOK_URL=receiver.url, SFOX_AUDIT_WEBHOOK_SECRET=WEBHOOK_SECRET)
        append_events(bot.store, 3)
        stream = bot.runtime.stream.stream
        at = datetime.now(UTC)
        stream.now = lambda: at  # the stream's own clock: its retry time, not wall time
        assert stream.send_one() == Failed(f"HTTP {status}", 1, at + timedelta(seconds=1))
        state = stream_cursor.read_state(bot.store)
        assert (state.cursor, state.lag, state.failures, state.last_error) == (0, 3, 1, f"HTTP {status}")
        assert receiver.attempts == 1 and elsewhere.attempts == 0
        at += timedelta(seconds=1)
        assert stream.send_one() == Sent(1, 3)
        assert receiver.attempts == 2 and elsewhere.attempts == 0
        assert_in_order_none_missing(receiver.seqs(), 3)
        assert stream_cursor.read_state(bot.store).failures == 0
    finally:
        receiver.close()
        elsewhere.close()


def test_a_receiver_that_never_answers_is_a_failure_at_the_timeout_and_the_loop_goes_on(make_bot):
    """The first POST is held open for good: the stream gives it up at its timeout (2 s of a 6 s
    lease), well before its lease ends, counts the failure with the cursor unmoved, and sends the
    batch again at its backoff, which the receiver then acknowledges."""
    lease = 6.0
    receiver = Receiver(script=["hold"])
    try:
        bot = make_bot(
            SFOX_AUDIT_WEBHOOK_URL=receiver.url,
            SFOX_AUDIT_WEBHOOK_SECRET=WEBHOOK_SECRET,
            SFOX_AUDIT_WEBHOOK_LEASE_SECONDS=str(lease),
        )
        append_events(bot.store, 3)
        loop = bot.runtime.stream
        stream = loop.stream
        seen: list[tuple[Outcome, float, stream_cursor.StreamState]] = []

        def observe(outcome: Outcome) -> None:
            """What each POST came to, when, and the cursor then (not the loop's idle looks)."""
            if not isinstance(outcome, Idle):
                seen.append((outcome, time.monotonic(), stream_cursor.read_state(bot.store)))

        stream.observers.append(observe)
        stream.backoff = lambda failures: 0.05  # the 1 s of retry_delay, faster
        loop.poll_seconds = 0.05
        started = time.monotonic()
        loop.start()
        wait_until(lambda: len(seen) >= 2, timeout=20)  # observed after the cursor moved
        assert receiver.holding.is_set() and receiver.attempts == 2  # still holding the first
        (failed, failed_at, then), (sent, _, _) = seen[:2]
        assert isinstance(failed, Failed) and failed.error == "no answer: ReadTimeout"
        assert failed.failures == 1 and failed_at - started < lease  # ended within its lease
        assert (then.cursor, then.failures, then.holder) == (0, 1, stream.holder)
        assert sent == Sent(1, 3)
        assert stream_cursor.read_state(bot.store).failures == 0
        scrape = bot.runtime.visibility.metrics.scrape()[0].decode()
        assert "sfox_bot_audit_stream_failures_total 1.0" in scrape
        assert "sfox_bot_audit_stream_batches_total 1.0" in scrape
        assert_in_order_none_missing(receiver.seqs(), 3)  # the held copy and the acknowledged one
    finally:
        receiver.close()


@pytest.fixture
def trail(tmp_path):
    store = Store.from_url(f"sqlite:///{tmp_path / 'trail.db'}")
    migrate.upgrade(store.engine)
    append_events(store, 5)
    yield store
    store.close()


def test_a_gap_in_the_chain_stops_the_batch_before_it_and_is_never_skipped(trail):
    """seq 3 missing (a damaged trail: its row deleted past the append-only trigger): 1-2 are
    sent, then the stream fails saying which seq is missing, and never sends 4 before 3."""
    with trail.engine.begin() as conn:
        conn.exec_driver_sql("DROP TRIGGER events_no_delete")
        conn.exec_driver_sql("DELETE FROM events WHERE seq = 3")
    receiver = Receiver()
    at = datetime(2026, 12, 3, 12, tzinfo=UTC)
    stream = AuditStream(trail, receiver.url, WEBHOOK_SECRET, now=lambda: at)
    try:
        assert stream.send_one() == Sent(1, 2)
        failed = stream.send_one()
        assert isinstance(failed, Failed) and failed.error == "seq 3 is missing from the chain"
        state = stream_cursor.read_state(trail)
        assert (state.cursor, state.failures) == (2, 1)
        assert receiver.seqs() == [1, 2] and receiver.attempts == 1
    finally:
        stream.close()
        receiver.close()


def test_a_sender_that_lost_its_lease_cannot_move_the_cursor_back(trail):
    """Replica one reads the cursor (0) and POSTs 1-3; its lease runs out, replica two sends 1-5
    and gives the lease back; one takes it again, then its old POST is acknowledged: its move
    from 0 is refused, since the cursor is no longer where it read it."""
    clock = [datetime(2026, 12, 3, 12, tzinfo=UTC)]
    lease = timedelta(seconds=30)
    one = stream_cursor.take_lease(trail, "replica-one", clock[0], lease)
    assert one is not None and one.cursor == 0
    clock[0] += lease + timedelta(seconds=1)
    two = stream_cursor.take_lease(trail, "replica-two", clock[0], lease)
    assert two is not None and two.cursor == 0
    assert stream_cursor.advance(trail, "replica-two", 0, 5, clock[0], lease)
    stream_cursor.release(trail, "replica-two")
    assert stream_cursor.take_lease(trail, "replica-one", clock[0], lease) is not None
    assert not stream_cursor.advance(trail, "replica-one", one.cursor, 3, clock[0], lease)
    assert stream_cursor.read_state(trail).cursor == 5
