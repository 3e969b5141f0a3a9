"""Defence in depth for "never the requester": the store's claims themselves leave the requester's
own approval out of the count, on SQLite and PostgreSQL. The approval rows are written straight
into the tables (past every Python rule), as a bug or a hand-edited database would; and a batch
whose user got an open request meanwhile is refused with the store's typed error."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert, select, update

from bot.store import migrate
from bot.store.batches import BatchStore
from bot.store.db import Store
from bot.store.errors import BatchUsersOpen
from bot.store.schema import approvals, batch_approvals, batches, requests
from tests.conftest import ALICE, BOB

T0 = datetime(2026, 1, 1, tzinfo=UTC)
TTL = timedelta(hours=1)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request, tmp_path):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'policy.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    store = Store.from_url(url)
    migrate.upgrade(store.engine)
    yield store
    store.close()


def single_request(store: Store, required: int = 1, user: str = "client_1"):
    return store.create_request(
        sfox_user_id=user,
        reason="offboarding",
        requested_by=ALICE,
        channel_id="C0123TEST",
        required_approvals=required,
        target_name=None,
        target_email=None,
        target_status=None,
        now=T0,
        ttl=TTL,
    )


def new_batch(store: Store, required: int = 1, users=("cohort_1", "cohort_2")) -> int:
    return BatchStore(store).create(
        requested_by=ALICE,
        channel_id="C0123TEST",
        reason="cohort closed",
        required_approvals=required,
        now=T0,
        ttl=TTL,
        users=[{"sfox_user_id": u} for u in users],
        excluded={},
        balances_skipped=False,
    )


def write_approval(store: Store, table, key: str, row_id: int, approver: str) -> None:
    """An approval row put in by hand: no Python rule sees it."""
    with store.engine.begin() as conn:
        conn.execute(insert(table).values({key: row_id, "approver": approver, "created_at": T0}))


def test_the_claim_does_not_count_the_requesters_own_approval(store):
    record = single_request(store, required=1)
    write_approval(store, approvals, "request_id", record.id, ALICE)
    assert store.get(record.id).approved_by == (ALICE,)
    now = T0 + timedelta(minutes=1)
    assert not store.claim(record.id, now, actor=ALICE)
    assert store.get(record.id).status == "pending"
    # A second admin's approval is what makes the quorum.
    assert store.add_approval(record.id, BOB, now)
    assert store.claim(record.id, now, actor=BOB)
    assert store.get(record.id).status == "executing"


def test_two_required_the_requester_plus_one_is_not_enough(store):
    record = single_request(store, required=2)
    write_approval(store, approvals, "request_id", record.id, ALICE)
    now = T0 + timedelta(minutes=1)
    assert store.add_approval(record.id, BOB, now)
    assert not store.claim(record.id, now, actor=BOB)
    assert store.get(record.id).status == "pending"


def test_a_batch_is_not_started_by_the_requesters_own_approval(store):
    records = BatchStore(store)
    batch_id = new_batch(store, required=1)
    now = T0 + timedelta(minutes=1)
    # Straight through the store's own approve (the Python rule is in bot/batches/deciding.py).
    assert records.approve(batch_id, ALICE, now, timedelta(days=7)) == "recorded"
    assert records.get(batch_id).status == "pending"
    # Nor are its users claimable with the requester's approval on their rows, by the batch's
    # own claim even were the batch running.
    set_batch_status(store, batch_id, "running")
    for request_id in records.row_ids(batch_id):
        assert ALICE in store.get(request_id).approved_by
        assert not store.claim_batch_user(request_id, now)
    assert {store.get(i).status for i in records.row_ids(batch_id)} == {"pending"}
    set_batch_status(store, batch_id, "pending")
    assert records.approve(batch_id, BOB, now, timedelta(days=7)) == "started"
    first = records.row_ids(batch_id)[0]
    assert store.claim_batch_user(first, now)


def set_batch_status(store: Store, batch_id: int, status: str) -> None:
    with store.engine.begin() as conn:
        conn.execute(update(batches).where(batches.c.id == batch_id).values(status=status))


def test_a_hand_written_batch_approval_by_the_requester_does_not_count(store):
    records = BatchStore(store)
    batch_id = new_batch(store, required=2)
    write_approval(store, batch_approvals, "batch_id", batch_id, ALICE)
    now = T0 + timedelta(minutes=1)
    assert records.approve(batch_id, BOB, now, timedelta(days=7)) == "recorded"
    assert records.get(batch_id).status == "pending"


def test_a_batch_whose_user_is_already_open_raises_the_typed_error_and_writes_nothing(store):
    single_request(store, user="cohort_2")
    with pytest.raises(BatchUsersOpen):
        new_batch(store, users=("cohort_1", "cohort_2"))
    with store.engine.connect() as conn:
        assert conn.execute(select(batches.c.id)).all() == []
        assert conn.execute(select(requests.c.sfox_user_id)).scalars().all() == ["cohort_2"]
