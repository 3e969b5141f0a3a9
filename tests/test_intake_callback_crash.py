"""An intake callback whose sender dies mid-POST (issue 31): a real `sfox-bot run` takes the
callback (its lease written by that process), POSTs it to a receiver that reads it whole and never
answers, and is SIGKILLed there. Nobody sends it again while the dead sender's lease lasts; once it
has run out another replica does, once, and the receiver sees the same outcome twice (it keys on
`request_id`).

The lease is 60 s (bot/intake/callbacks.py `LEASE`: longer than an attempt can take), too long to
wait out here, so the second replica's clock is moved to its end instead. That is the same thing
for the code under test: whether a callback is due, and whether a replica may take it, is decided
only by comparing the `callback_due_at` the dead process wrote against the taker's `now` (in
`due_callbacks` and in the take's compare-and-set, bot/store/intake.py); no other part of that
path reads the wall clock."""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace

import pytest

from bot.intake.callbacks import LEASE, MAX_ADDRESSES, TIMEOUT
from bot.store import migrate
from bot.store.db import Store
from bot.store.intake import IntakeStore
from tests.conftest import bot_env
from tests.crash_support import BotProcess
from tests.test_intake import INTAKE, _Receiver, ask, get, post

pytestmark = pytest.mark.slow


def test_a_sender_killed_mid_post_leaves_the_callback_to_another_replica_once_its_lease_ran_out(
    make_bot, fake_slack, fake_sfox, database_url, tmp_path
):
    fake_sfox.add_user("acct_funded", balance=3)  # blocked at once: its callback is owed at once
    receiver = _Receiver(fail=0, hold=1)  # the first POST is read whole and never answered
    store = Store.from_url(database_url)
    migrate.upgrade(store.engine)
    env = bot_env(fake_slack, fake_sfox, database_url, **INTAKE, SFOX_INTAKE_CALLBACK_HOSTS=receiver.entry)
    first = BotProcess(env, tmp_path, "first")
    try:
        response = post(SimpleNamespace(url=first.url), ask("acct_funded", callback_url=receiver.url))
        assert response.status_code == 202 and response.json()["status"] == "blocked", response.text
        request_id = response.json()["request_id"]
        assert receiver.holding.wait(15), first.output()  # mid-POST: sent, not answered
        first.kill()
    finally:
        first.kill()
    keys = IntakeStore(store)
    assert keys.callback_of(request_id).as_dict() == {"state": "owed", "attempts": 1, "error": None}

    try:
        second = make_bot(**INTAKE, SFOX_INTAKE_CALLBACK_HOSTS=receiver.entry)
        callbacks = second.runtime.intake.callbacks.callbacks
        ends = keys.next_callback_due()  # the dead sender's lease, as it wrote it
        taken_at = second.runtime.workflow.now()
        assert taken_at < ends <= taken_at + LEASE
        # Longer than an attempt can take (each address's connect, the write, the read): a sender
        # still alive, only slow, has its answer before anyone else may send it again.
        attempt = timedelta(seconds=MAX_ADDRESSES * TIMEOUT.connect + TIMEOUT.write + TIMEOUT.read)
        assert ends - taken_at > attempt, (ends - taken_at, attempt)
        callbacks.now = lambda: ends - timedelta(seconds=1)
        assert callbacks.deliver_due() == 0 and len(receiver.seen) == 1  # not while it lasts
        callbacks.now = lambda: ends
        assert callbacks.deliver_due() == 1
        assert [status for status, _, _ in receiver.seen] == [200, 200]
        assert receiver.seen[0][2] == receiver.seen[1][2]  # the same outcome, twice
        later = ends + LEASE * 10
        callbacks.now = lambda: later
        assert callbacks.deliver_due() == 0 and len(receiver.seen) == 2  # once it was received
        shown = get(second, f"/api/v1/requests/{request_id}").json()["callback"]
        assert shown == {"state": "delivered", "attempts": 2, "error": None}
    finally:
        receiver.close()
        store.close()
