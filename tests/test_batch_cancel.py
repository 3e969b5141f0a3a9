"""Cancelling a batch cancels every user not yet deactivated that the runner would still send:
the pending ones and the failed ones waiting to be claimed again (a 429, or a process that
stopped before the DELETE), recognised by their typed outcome, never by an error's wording."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import update

from bot.store import migrate
from bot.store.batches import BatchStore
from bot.store.db import Store
from bot.store.outcomes import Outcome
from bot.store.schema import batches, requests
from tests.conftest import BOB
from tests.test_policy_store import T0, new_batch


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request, tmp_path):
    url = (
        f"sqlite:///{tmp_path / 'cancel.db'}"
        if request.param == "sqlite"
        else request.getfixturevalue("postgres_url")
    )
    store = Store.from_url(url)
    migrate.upgrade(store.engine)
    yield store
    store.close()


def test_cancel_takes_the_users_waiting_to_be_claimed_again_and_leaves_the_rest(store):
    users = ("pending_1", "limited", "never_sent", "refused", "done")
    batch_id = new_batch(store, users=users)
    rows = {r.sfox_user_id: r.id for r in store.history(batch_id=batch_id)}
    settled = {
        "limited": ("failed", True, Outcome.RATE_LIMITED),
        "never_sent": ("failed", True, Outcome.STOPPED_BEFORE_SENDING),
        "refused": ("failed", False, Outcome.REFUSED),
        "done": ("succeeded", False, Outcome.DEACTIVATED),
    }
    with store.engine.begin() as conn:
        conn.execute(update(batches).where(batches.c.id == batch_id).values(status="running"))
        for user, (status, retryable, outcome) in settled.items():
            conn.execute(
                update(requests)
                .where(requests.c.id == rows[user])
                .values(status=status, retryable=retryable, outcome=outcome)
            )
    assert BatchStore(store).cancel(batch_id, BOB, T0 + timedelta(minutes=5)) == 3
    after = {r.sfox_user_id: r.status for r in store.history(batch_id=batch_id)}
    assert after == {
        "pending_1": "cancelled",
        "limited": "cancelled",
        "never_sent": "cancelled",
        "refused": "failed",
        "done": "succeeded",
    }
