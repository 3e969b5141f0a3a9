"""An approval the database refused is reported as refused, on SQLite and PostgreSQL alike.

Each approval is an INSERT ... SELECT that only inserts while the request (or batch) is pending,
and "was it recorded?" is its row count. On PostgreSQL, SQLAlchemy left that count at -1 for an
INSERT unless the engine keeps it (bot/store/engine.py), so a click on a request already claimed
was told "recorded" and an `approved` event went into the audit trail with no approval behind it.
Found by tests/test_concurrency.py once each racing thread's answer was checked."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bot.store import migrate
from bot.store.batches import BatchStore
from bot.store.db import Store
from tests.test_policy_store import T0, new_batch, single_request


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path) -> Store:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'rowcount.db'}"
    else:
        request.applymarker(pytest.mark.postgres)
        url = request.getfixturevalue("postgres_url")
    store = Store.from_url(url)
    migrate.upgrade(store.engine)
    yield store
    store.close()


def test_an_approval_of_a_request_no_longer_pending_is_refused_and_not_audited(store):
    now = T0
    rid = single_request(store, required=2).id
    assert store.add_approval(rid, "UDAVE004", now) and store.add_approval(rid, "UBOB0002", now)
    assert store.claim(rid, now, actor="UBOB0002")
    assert store.add_approval(rid, "UCAROL03", now) is False  # executing: nothing inserted
    assert store.add_approval(rid, "UDAVE004", now) is False
    assert store.get(rid).approved_by == ("UDAVE004", "UBOB0002")
    approved = [e.actor for e in store.events_for(rid) if e.kind == "approved"]
    assert approved == ["UDAVE004", "UBOB0002"]


def test_an_approval_of_a_batch_no_longer_pending_is_closed(store):
    now = T0
    batches = BatchStore(store)
    bid = new_batch(store, required=2)
    assert batches.deny(bid, "UBOB0002", now)
    assert batches.approve(bid, "UCAROL03", now, timedelta(minutes=10)) == "closed"
    assert batches.get(bid).approved_by == ()
    for row in store.history(limit=None, batch_id=bid):
        assert row.approved_by == ()
        assert not [e for e in store.events_for(row.id) if e.kind == "approved"]
