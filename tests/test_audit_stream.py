"""The audit trail streamed to SFOX_AUDIT_WEBHOOK_URL (issue 20), through real HTTP: a receiver
that fails its first attempts (a 5xx, a dropped connection) still gets every `seq`, in order, none
missing, each POST signed, and its copy verifies as a chain; two senders on one database take
turns by the lease; the workflow never waits on the webhook."""

from __future__ import annotations

import re
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.audit import stream_cursor
from bot.audit.stream import AuditStream, Failed, Idle, Sent
from bot.runtime.stream import StreamLoop
from bot.store import migrate
from bot.store.db import Store
from tests.conftest import ALICE, BOB
from tests.helpers import open_request, wait_status
from tests.stream_support import (
    WEBHOOK_SECRET,
    Receiver,
    append_events,
    assert_in_order_none_missing,
    verify_received,
)
from tests.support import dump_database

AUDIT_KEY = "audit-key-0123456789-SECRET"
README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def readme_verify_stream():
    """The receiver's check as the README's Audit stream section gives it."""
    section = README[README.index("## Audit stream\n") :]
    namespace: dict = {}
    exec(re.search(r"```python\n(.*?)```", section, re.S).group(1), namespace)  # noqa: S102
    return namespace["verify_stream"]


def wait_for(condition, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_a_receiver_that_fails_first_gets_every_seq_in_order_and_the_chain_verifies(make_bot, caplog):
    receiver = Receiver(script=[503, "drop"])
    try:
        bot = make_bot(
            SFOX_AUDIT_WEBHOOK_URL=receiver.url,
            SFOX_AUDIT_WEBHOOK_SECRET=WEBHOOK_SECRET,
            SFOX_AUDIT_KEY=AUDIT_KEY,
        )
        loop = bot.runtime.stream
        assert isinstance(loop, StreamLoop)
        append_events(bot.store, 250)
        delays: list[int] = []
        loop.stream.backoff = lambda n: delays.append(n) or 0.05 * n  # the 1 s, 2 s … of retry_delay, faster
        loop.poll_seconds = 0.05
        loop.start()
        wait_for(lambda: stream_cursor.read_state(bot.store).cursor == 250)
        assert receiver.attempts == 5 and delays == [1, 2]  # 503, dropped, then 1-100, 101-200, 201-250
        assert receiver.problems == []  # every POST signed, as application/x-ndjson
        assert [len(b) for b in receiver.batches] == [100, 100, 50]
        assert_in_order_none_missing(receiver.seqs(), 250)
        assert verify_received(receiver.lines(), AUDIT_KEY) == 250

        # Later events follow, and the stream's lag and failures are in the metrics.
        append_events(bot.store, 3, datetime(2026, 12, 3, 10, tzinfo=UTC))
        wait_for(lambda: stream_cursor.read_state(bot.store).cursor == 253)
        assert verify_received(receiver.lines(), AUDIT_KEY) == 253
        state = stream_cursor.read_state(bot.store)
        assert (state.lag, state.failures, state.last_error, state.holder) == (0, 0, None, loop.stream.holder)
        assert readme_verify_stream()(receiver.lines(), AUDIT_KEY.encode())[0] == 253
        scrape = bot.runtime.visibility.metrics.scrape()[0].decode()
        assert "sfox_bot_audit_stream_failures_total 2.0" in scrape
        # The three later events, one transaction each, may be found by one poll or by several.
        assert 4 <= len(receiver.batches) <= 6
        assert f"sfox_bot_audit_stream_batches_total {float(len(receiver.batches))}" in scrape
        assert "sfox_bot_audit_stream_lag_events 0.0" in scrape
        assert "sfox_bot_audit_stream_oldest_unsent_seconds 0.0" in scrape
        assert WEBHOOK_SECRET not in scrape
        loop.stop(5)  # stopping gives the lease back: another replica may carry on at once
        assert stream_cursor.read_state(bot.store).holder is None
        for text in (caplog.text, dump_database(bot.store)):
            assert WEBHOOK_SECRET not in text and "T0KEN" not in text  # nor the URL's path
    finally:
        receiver.close()


def test_a_failure_is_recorded_with_its_backoff_and_lag_shows_in_the_metrics(make_bot):
    receiver = Receiver(script=[500])
    try:
        bot = make_bot(SFOX_AUDIT_WEBHOOK_URL=receiver.url, SFOX_AUDIT_WEBHOOK_SECRET=WEBHOOK_SECRET)
        append_events(bot.store, 3, datetime.now(UTC) - timedelta(seconds=90))
        stream = bot.runtime.stream.stream
        at = datetime.now(UTC)
        stream.now = lambda: at  # the stream's own clock, stopped: no window of wall time to miss
        outcome = stream.send_one()
        assert isinstance(outcome, Failed) and outcome.error == "HTTP 500" and outcome.failures == 1
        assert outcome.retry_at == at + timedelta(seconds=1)  # retry_delay(1)
        state = stream_cursor.read_state(bot.store)
        assert (state.cursor, state.failures, state.last_error) == (0, 1, "HTTP 500")
        assert state.retry_at == outcome.retry_at
        assert stream.send_one() == Idle("waiting to try again")
        scrape = bot.runtime.visibility.metrics.scrape()[0].decode()
        assert "sfox_bot_audit_stream_lag_events 3.0" in scrape
        age = float(re.search(r"^sfox_bot_audit_stream_oldest_unsent_seconds (\S+)$", scrape, re.M)[1])
        assert 89 < age < 200
        at += timedelta(seconds=1)  # its time: tried again, and acknowledged (the script is spent)
        assert stream.send_one() == Sent(1, 3)
    finally:
        receiver.close()


def test_the_workflow_never_waits_on_the_webhook(make_bot):
    """A receiver that holds every POST open: a request is still opened, approved and deleted."""
    receiver = Receiver(script=["hold"] * 50)
    try:
        bot = make_bot(SFOX_AUDIT_WEBHOOK_URL=receiver.url, SFOX_AUDIT_WEBHOOK_SECRET=WEBHOOK_SECRET)
        bot.runtime.stream.start()
        append_events(bot.store, 1)
        assert receiver.holding.wait(10)
        started = time.monotonic()
        record, card = open_request(bot, ALICE, "client_1 left the company")
        bot.driver.click(BOB, "sfox_approve", str(record.id), card.ts)
        assert wait_status(bot, record.id, "succeeded").status == "succeeded"
        assert time.monotonic() - started < 10 and receiver.attempts == 1  # still holding the first
    finally:
        receiver.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def shared_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'two.db'}"
    return request.getfixturevalue("postgres_url")


def test_two_senders_take_turns_by_the_lease(shared_url):
    """Two replicas' senders on one database: one holds the lease, the other waits until it runs
    out, then carries on from the cursor; the receiver never sees two POSTs at once."""
    receiver = Receiver()
    clock = [datetime(2026, 12, 3, 12, tzinfo=UTC)]
    lease = timedelta(seconds=30)
    try:
        store = Store.from_url(shared_url)
        migrate.upgrade(store.engine)
        append_events(store, 7)
        one, two = (
            AuditStream(
                store, receiver.url, WEBHOOK_SECRET, now=lambda: clock[0], lease=lease, batch_max=3, holder=h
            )
            for h in ("replica-one", "replica-two")
        )
        assert one.send_one() == Sent(1, 3)
        assert two.send_one() == Idle("another replica holds the lease")
        assert two.next_due() == clock[0] + lease  # it looks again when the lease runs out
        clock[0] += lease + timedelta(seconds=1)  # replica one stopped renewing (it died)
        assert two.send_one() == Sent(4, 6)
        assert one.send_one() == Idle("another replica holds the lease")
        two.release()  # stopping: the lease is given back, and one may carry on at once
        assert one.run() == 1 and one.next_due() is None
        assert_in_order_none_missing(receiver.seqs(), 7)

        # Both sending at once, each as fast as it can: still one POST at a time, in order.
        append_events(store, 60)
        threads = [threading.Thread(target=s.run) for s in (one, two)]  # one loop per replica
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert stream_cursor.read_state(store).cursor == 67
        assert receiver.most_in_flight == 1
        assert_in_order_none_missing(receiver.seqs(), 67)
        for s in (one, two):
            s.close()
        store.close()
    finally:
        receiver.close()
