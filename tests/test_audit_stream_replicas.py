"""The audit stream across real `sfox-bot run` processes: the replica sending is SIGKILLed while
a batch is in flight, or right after the webhook acknowledged one (crash point `stream_acked`); a
second replica takes the lease over once it runs out and resumes from the cursor, and the receiver
gets every `seq`, in order (that batch again: duplicates are allowed, gaps are not), its copy
verifying as a chain."""

from __future__ import annotations

import pytest

from bot.audit.chain import head
from bot.audit.stream_cursor import read_state
from bot.store import migrate
from bot.store.db import Store
from tests.conftest import bot_env
from tests.crash_support import BotProcess
from tests.helpers import wait_until
from tests.stream_support import (
    WEBHOOK_SECRET,
    Receiver,
    append_events,
    assert_in_order_none_missing,
    verify_received,
)

pytestmark = pytest.mark.slow


def env_for(fake_slack, fake_sfox, database_url, receiver):
    return bot_env(
        fake_slack,
        fake_sfox,
        database_url,
        SFOX_AUDIT_WEBHOOK_URL=receiver.url,
        SFOX_AUDIT_WEBHOOK_SECRET=WEBHOOK_SECRET,
        SFOX_AUDIT_WEBHOOK_LEASE_SECONDS="3",  # a dead sender's lease runs out within 3 s
    )


def trail(database_url, count):
    store = Store.from_url(database_url)
    migrate.upgrade(store.engine)
    append_events(store, count)
    return store


def test_a_replica_killed_mid_stream_is_taken_over_and_every_seq_arrives(
    fake_slack, fake_sfox, database_url, tmp_path
):
    store = trail(database_url, 250)
    receiver = Receiver(script=[200, "hold"])  # seq 1-100 acknowledged, 101-200 held open
    env = env_for(fake_slack, fake_sfox, database_url, receiver)
    processes: list[BotProcess] = []
    try:
        processes.append(first := BotProcess(env, tmp_path, "first"))
        assert receiver.holding.wait(30), first.output()
        dead = read_state(store)
        assert dead.cursor == 100 and dead.holder is not None  # mid-stream
        first.kill()
        receiver.release.set()  # its answer goes to a dead connection

        processes.append(BotProcess(env, tmp_path, "second"))
        last = head(store.engine)[0]
        wait_until(lambda: read_state(store).cursor == last, timeout=30)
        taken = read_state(store)
        assert taken.holder not in (None, dead.holder)  # the second replica holds the lease now
        assert receiver.problems == []
        assert_in_order_none_missing(receiver.seqs(), last)
        assert verify_received(receiver.lines(), None) == last
        assert receiver.seqs().count(101) == 2  # the batch the dead replica had in flight, again
    finally:
        for process in processes:
            process.stop()
        receiver.close()
        store.close()


def test_stream_acked_then_killed_sends_that_batch_again(fake_slack, fake_sfox, database_url, tmp_path):
    store = trail(database_url, 150)
    receiver = Receiver()
    env = env_for(fake_slack, fake_sfox, database_url, receiver)
    processes: list[BotProcess] = []
    try:
        first = BotProcess(env, tmp_path, "first", crash="stream_acked", wait_ready=False)
        processes.append(first)
        first.wait_crashed("stream_acked")
        assert receiver.seqs() == list(range(1, 101)) and read_state(store).cursor == 0

        processes.append(BotProcess(env, tmp_path, "second"))
        last = head(store.engine)[0]
        wait_until(lambda: read_state(store).cursor == last, timeout=30)
        assert receiver.seqs() == [*range(1, 101), *range(1, last + 1)]  # that batch again, then on
        assert_in_order_none_missing(receiver.seqs(), last)
        assert verify_received(receiver.lines(), None) == last and receiver.problems == []
    finally:
        for process in processes:
            process.stop()
        receiver.close()
        store.close()
