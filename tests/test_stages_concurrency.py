"""Exactly-once under stages: many threads approve and claim the same requests at once, each
approval able to fill only some stages. Whatever the interleaving, a request is claimed once, and
only when every stage is met by distinct people (never on the count of approvals alone)."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime, timedelta
from functools import partial

import pytest

from bot.policy import quorum, rules
from bot.policy.stages import Stage, dump_stages
from bot.store import migrate
from bot.store.db import Store
from tests.threads import run_concurrently


@pytest.fixture(params=["sqlite", "postgres"])
def url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'race.db'}"
    request.applymarker(pytest.mark.postgres)
    return request.getfixturevalue("postgres_url")


REQUESTS = 15
# Two stages of 2: compliance (C1..C3) and leads (L1..L3); BOTH may fill either.
STAGES = (Stage(count=2, members=("S0COMPLIANCE",), name="Compliance"), Stage(count=2, members=("S0LEADS",)))
ELIGIBLE = {
    "UC1": (0,),
    "UC2": (0,),
    "UC3": (0,),
    "UL1": (1,),
    "UL2": (1,),
    "UBOTH": (0, 1),
}


def _staged_request(store: Store, sfox_user_id: str, now: datetime):
    """A pending request asked under STAGES (four approvals in all, by UREQUESTER)."""
    return store.create_request(
        sfox_user_id=sfox_user_id,
        reason="race",
        requested_by="UREQUESTER",
        channel_id="C0123TEST",
        required_approvals=4,
        target_name=None,
        target_email=None,
        target_status=None,
        now=now,
        ttl=timedelta(hours=1),
        stages=dump_stages(STAGES),
    )


def test_many_threads_claim_once_and_only_with_every_stage_met(url):
    store = Store.from_url(url)
    migrate.upgrade(store.engine)
    now = datetime.now(UTC)
    ids = [_staged_request(store, f"client_{i}", now).id for i in range(REQUESTS)]
    people = list(ELIGIBLE)

    def approver(name: str, order: list[int]) -> tuple[str, set[int], set[int]]:
        """The requests `name`'s approval was recorded on, and those it claimed."""
        approved, claimed = set(), set()
        for rid in order:
            at = datetime.now(UTC)
            if store.add_approval(rid, name, at, ELIGIBLE[name]):
                approved.add(rid)
            # The count of approvals reaches 4 before the stages are met (three of compliance
            # and one of leads): the claim must wait for the stage check.
            if store.claim(rid, at, actor=name):
                claimed.add(rid)
        return name, approved, claimed

    took = run_concurrently([partial(approver, p, random.sample(ids, len(ids))) for p in people])
    per_request = Counter(rid for _, _, claimed in took for rid in claimed)
    assert set(per_request) == set(ids) and set(per_request.values()) == {1}
    told = {(name, rid) for name, approved, _ in took for rid in approved}
    assert told == {(name, rid) for rid in ids for name in store.get(rid).approved_by}
    for name, _, claimed in took:
        for rid in claimed:
            assert [e.actor for e in store.events_for(rid) if e.kind == "claimed"] == [name]
    for rid in ids:
        record = store.get(rid)
        assert record.status == "executing" and record.attempts == 1
        kinds = Counter(e.kind for e in store.events_for(rid))
        assert kinds["claimed"] == 1
        # Replayed as the claim saw it: the approvals up to the claim met every stage.
        claimed_at = next(e.seq for e in store.events_for(rid) if e.kind == "claimed")
        before = [e.actor for e in store.events_for(rid) if e.kind == "approved" and e.seq < claimed_at]
        seen = type(record)(
            **{
                **record.__dict__,
                "approved_by": tuple(before),
                "approval_stages": tuple(ELIGIBLE[p] for p in before),
            }
        )
        assert quorum.quorum_met(seen), before
    store.close()


def test_four_approvals_in_one_stage_never_claim(database_url):
    store = Store.from_url(database_url)
    migrate.upgrade(store.engine)
    now = datetime.now(UTC)
    record = _staged_request(store, "client_1", now)
    for name in ("UC1", "UC2", "UC3", "UL1"):
        assert store.add_approval(record.id, name, now, ELIGIBLE[name])
        assert not store.claim(record.id, now, actor=name)
    assert store.add_approval(record.id, "UBOTH", now, ELIGIBLE["UBOTH"])
    assert store.claim(record.id, now, actor="UBOTH")
    assert rules.tally(store.get(record.id)).startswith("Compliance 2 of 2")
    store.close()
