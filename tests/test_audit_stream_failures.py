"""The audit stream's answers that are not an acknowledgement (issue 31), through real HTTP: a
redirect is not followed and acknowledges nothing, and a receiver that never answers is given up
at the stream's timeout (a third of the lease, so the POST has ended before another replica may
take over). Either way the cursor stays where it was, the failure is counted, the batch is sent
again at its backoff, and a later 2xx moves the cursor on."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from bot.audit import stream_cursor
from bot.audit.stream import Failed, Outcome, Sent
from tests.stream_support import WEBHOOK_SECRET, Receiver, append_events, assert_in_order_none_missing


def wait_for(condition, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


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
        stream.observers.append(
            lambda outcome: seen.append((outcome, time.monotonic(), stream_cursor.read_state(bot.store)))
        )
        stream.backoff = lambda failures: 0.05  # the 1 s of retry_delay, faster
        loop.poll_seconds = 0.05
        started = time.monotonic()
        loop.start()
        wait_for(lambda: stream_cursor.read_state(bot.store).cursor == 3)
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
