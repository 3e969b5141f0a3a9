"""Issue 32, parts 2 and 3, in SQL (defence in depth, SQLite and PostgreSQL): the compare-and-set
claims themselves refuse a retry past its window or behind a newer request for the same sFOX
user, and never take a batch's user as a single request (approval, claim, schedule, claim at its
time, deny, cancel, retry, a card adopted, a reminder); a batch's own claims take its users only
while it runs, and within their time."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update

from bot.requests.reminders import Reminders
from bot.store.db import Store
from bot.store.outcomes import Outcome
from bot.store.schema import batches, requests
from tests import test_policy_store
from tests.conftest import BOB, CAROL
from tests.test_policy_store import T0, new_batch, single_request

# A migrated store on SQLite and PostgreSQL, the one tests/test_policy_store.py makes.
store = test_policy_store.store

WINDOW = timedelta(hours=24)


def set_row(store: Store, request_id: int, **values) -> None:
    with store.engine.begin() as conn:
        conn.execute(update(requests).where(requests.c.id == request_id).values(**values))


def failed_at(store: Store, when, user: str = "client_1"):
    record = single_request(store, user=user)
    set_row(store, record.id, status="failed", retryable=True, completed_at=when, outcome=Outcome.REFUSED)
    return record


def test_the_retry_claim_holds_the_window_itself(store):
    record = failed_at(store, T0)
    assert not store.claim_retry(record.id, CAROL, T0 + WINDOW, WINDOW)  # exactly the window: closed
    assert store.get(record.id).status == "failed"
    assert store.claim_retry(record.id, CAROL, T0 + WINDOW - timedelta(seconds=1), WINDOW)
    assert store.get(record.id).status == "executing"


def test_the_retry_claim_refuses_a_row_failed_at_no_known_time(store):
    record = failed_at(store, None)
    assert not store.claim_retry(record.id, CAROL, T0, WINDOW)


def test_the_retry_claim_refuses_a_request_behind_a_newer_one(store):
    old = failed_at(store, T0)
    other = failed_at(store, T0, user="client_3")  # a newer request, but for someone else
    newer = single_request(store)
    set_row(store, newer.id, status="denied", completed_at=T0)
    assert not store.claim_retry(old.id, CAROL, T0 + timedelta(minutes=1), WINDOW)
    assert store.get(old.id).status == "failed"
    assert store.claim_retry(other.id, CAROL, T0 + timedelta(minutes=1), WINDOW)


def test_the_retry_claim_keeps_the_factor_it_came_with(store):
    record = failed_at(store, T0)
    assert store.claim_retry(record.id, CAROL, T0 + timedelta(minutes=1), WINDOW, step_up="totp")
    (claimed,) = [e for e in store.events_for(record.id) if e.kind == "retry_claimed"]
    assert claimed.actor == CAROL and claimed.detail == '{"step_up": "totp"}'


def test_no_single_request_step_takes_a_batchs_user(store):
    batch_id = new_batch(store)
    row, other = [r.id for r in store.history(batch_id=batch_id)]
    now = T0 + timedelta(minutes=1)
    assert not store.add_approval(row, BOB, now)
    assert store.get(row).approved_by == ()
    set_row(store, row, required_approvals=0)  # even with nothing left to approve
    assert not store.claim(row, now, actor=BOB)
    assert not store.deny(row, BOB, now, "denied")
    assert not store.adopt_card(row, "1700000001.000100", now, found_by="click", reply=None)
    assert store.get(row).status == "pending" and store.get(row).message_ts is None
    # Put by hand where only a single request goes: a time to run at, a card, a reminder due.
    later = now + timedelta(minutes=30)
    set_row(store, row, run_at=later, message_ts="1700000001.000100")
    assert not store.schedule(row, now, "scheduled", actor=BOB)
    assert Reminders(store, {BOB}, 0.0, lambda: now).due(now) == []
    set_row(store, row, status="scheduled")
    assert not store.cancel_scheduled(row, BOB, now, "cancelled")
    assert store.due_scheduled(later) == [] and store.next_run_at() is None
    assert not store.claim_due(row, later, None, {})
    assert store.get(row).status == "scheduled"
    set_row(store, other, status="failed", retryable=True, completed_at=now, outcome=Outcome.REFUSED)
    assert not store.claim_retry(other, CAROL, now, WINDOW)
    assert not store.close_retry(other, now, "retry_too_old", "too old")
    assert store.get(other).status == "failed" and store.get(other).retryable


def test_a_batchs_own_claims_take_its_users_only_while_it_runs_and_in_time(store):
    batch_id = new_batch(store)
    row, again = [r.id for r in store.history(batch_id=batch_id)]
    now = T0 + timedelta(minutes=1)
    set_row(store, row, required_approvals=0)
    set_row(store, again, status="failed", retryable=True, completed_at=now, outcome=Outcome.RATE_LIMITED)
    for status in ("pending", "paused", "cancelled"):
        with store.engine.begin() as conn:
            conn.execute(update(batches).where(batches.c.id == batch_id).values(status=status))
        assert not store.claim_batch_user(row, now)
        assert not store.claim_batch_user_again(again, now)
    with store.engine.begin() as conn:
        conn.execute(update(batches).where(batches.c.id == batch_id).values(status="running"))
    late = store.get(row).expires_at
    assert not store.claim_batch_user(row, late)
    assert not store.claim_batch_user_again(again, late)
    set_row(store, again, outcome=Outcome.REFUSED)  # sFOX may have acted: never again on its own
    assert not store.claim_batch_user_again(again, now)
    set_row(store, again, outcome=Outcome.RATE_LIMITED)
    assert store.claim_batch_user(row, now) and store.claim_batch_user_again(again, now)
    assert {store.get(row).status, store.get(again).status} == {"executing"}
