"""The store's batch rules on SQLite and PostgreSQL: a batch whose user got an open request
meanwhile is refused with the store's typed error, and nothing is written."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert, select

from bot.store import migrate
from bot.store.batches import BatchStore, BatchUsersOpen
from bot.store.db import Store
from bot.store.schema import batches, requests
from tests.conftest import ALICE

T0 = datetime(2026, 1, 1, tzinfo=UTC)
TTL = timedelta(hours=1)


@pytest.fixture(params=["sqlite", "postgres"])
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


def test_a_batch_whose_user_is_already_open_raises_the_typed_error_and_writes_nothing(store):
    single_request(store, user="cohort_2")
    with pytest.raises(BatchUsersOpen):
        new_batch(store, users=("cohort_1", "cohort_2"))
    with store.engine.connect() as conn:
        assert conn.execute(select(batches.c.id)).all() == []
        assert conn.execute(select(requests.c.sfox_user_id)).scalars().all() == ["cohort_2"]
