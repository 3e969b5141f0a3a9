"""Concurrent writers on one database: many threads, and two processes, racing to approve, claim
and deny the same requests. Whatever the interleaving, each request has exactly one winner."""

from __future__ import annotations

import multiprocessing
import random
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import pytest
from sqlalchemy import func, select

from bot.store import migrate
from bot.store.db import Store
from bot.store.schema import approvals
from tests.threads import run_concurrently

REQUESTS = 25
APPROVERS = [f"UAPPROVER{i:02d}" for i in range(8)]


def _prepare(url: str, required: int = 2) -> list[int]:
    store = Store.from_url(url)
    migrate.upgrade(store.engine)
    now = datetime.now(UTC)
    ids = [
        store.create_request(
            sfox_user_id=f"client_{i}",
            reason="race",
            requested_by="UREQUESTER",
            channel_id="C0123TEST",
            required_approvals=required,
            target_name=None,
            target_email=None,
            target_status=None,
            now=now,
            ttl=timedelta(hours=1),
        ).id
        for i in range(REQUESTS)
    ]
    store.close()
    return ids


@dataclass(frozen=True)
class Took:
    """What one racing thread was told: the requests its approval was recorded on, and those it
    won (claimed, or denied)."""

    who: str
    approved: frozenset[int]
    claimed: frozenset[int]
    denied: frozenset[int]


def _hammer(url: str, ids: list[int], deny: bool) -> list[Took]:
    """Every approver thread approves and tries to claim every request, in its own random order;
    optionally two more threads try to deny a third of them. Returns what each thread was told."""
    store = Store.from_url(url)

    def approver(name: str, order: list[int]) -> Took:
        approved, claimed = set(), set()
        for rid in order:
            now = datetime.now(UTC)
            if store.add_approval(rid, name, now):
                approved.add(rid)
            if store.claim(rid, now, actor=name):
                claimed.add(rid)
        return Took(name, frozenset(approved), frozenset(claimed), frozenset())

    def denier(name: str, order: list[int]) -> Took:
        denied = {rid for rid in order if store.deny(rid, name, datetime.now(UTC), "denied")}
        return Took(name, frozenset(), frozenset(), frozenset(denied))

    def shuffled(part: int = 1) -> list[int]:
        order = ids[:]
        random.shuffle(order)
        return order[: len(order) // part]

    racers = [partial(approver, a, shuffled()) for a in APPROVERS]
    if deny:
        racers += [partial(denier, f"UDENIER{i}", shuffled(3)) for i in range(2)]
    try:
        return run_concurrently(racers)
    finally:
        store.close()


def _in_process(url: str, ids: list[int], deny: bool, start: Any, results: Any) -> None:
    """Hammer in a child process; report when it wrote (wall clock) along with its threads' results."""
    start.wait(60)
    began = time.time()
    took = _hammer(url, ids, deny)
    results.put((began, time.time(), took))


def _check(url: str, ids: list[int], took: list[Took]) -> None:
    """Each thread's answers against the database: every request won once (claimed or denied),
    by the thread that was told it won; every approval a thread was told was recorded is, and no
    other (the two processes' threads share names: of two same-named threads, one is told)."""
    wins = Counter(rid for t in took for rid in t.claimed | t.denied)
    assert set(wins) == set(ids), "every request was decided"
    assert all(n == 1 for n in wins.values()), wins
    store = Store.from_url(url)
    try:
        records = {rid: store.get(rid) for rid in ids}
        for t in took:
            for rid in t.claimed:
                record = records[rid]
                assert record.status == "executing" and record.attempts == 1
                assert len(record.approved_by) >= record.required_approvals
                claims = [e.actor for e in store.events_for(rid) if e.kind == "claimed"]
                assert claims == [t.who], (rid, claims)
            for rid in t.denied:
                assert records[rid].status == "denied" and records[rid].denied_by == t.who
                assert not any(e.kind == "claimed" for e in store.events_for(rid))
        told = Counter((t.who, rid) for t in took for rid in t.approved)
        recorded = Counter((who, rid) for rid, r in records.items() for who in r.approved_by)
        assert told == recorded
        with store.engine.connect() as conn:
            duplicates = conn.execute(
                select(approvals.c.request_id, approvals.c.approver, func.count())
                .group_by(approvals.c.request_id, approvals.c.approver)
                .having(func.count() > 1)
            ).all()
        assert duplicates == []
    finally:
        store.close()


@pytest.mark.parametrize("deny", [False, True], ids=["approve-only", "with-denials"])
def test_many_threads_one_winner_per_request(database_url, deny):
    ids = _prepare(database_url)
    _check(database_url, ids, _hammer(database_url, ids, deny))


@pytest.mark.postgres
def test_many_threads_one_winner_per_request_on_postgres(postgres_url):
    ids = _prepare(postgres_url)
    _check(postgres_url, ids, _hammer(postgres_url, ids, True))


@pytest.mark.slow
def test_two_processes_one_winner_per_request(database_url):
    """Two OS processes, each with its own engine and threads, on one SQLite file (WAL, busy
    timeout, BEGIN IMMEDIATE): no request is claimed twice and no write is lost to 'locked'."""
    ids = _prepare(database_url)
    ctx = multiprocessing.get_context("spawn")
    # The barrier lets both processes finish importing before either starts writing.
    start, results = ctx.Barrier(3), ctx.Queue()
    procs = [
        ctx.Process(target=_in_process, args=(database_url, ids, True, start, results)) for i in range(2)
    ]
    for p in procs:
        p.start()
    start.wait(60)
    (began_a, ended_a, took_a), (began_b, ended_b, took_b) = (
        results.get(timeout=120),
        results.get(timeout=120),
    )
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    assert len(took_a) == len(took_b) == len(APPROVERS) + 2  # every thread of each reported
    _check(database_url, ids, took_a + took_b)
    # The two processes wrote at the same time (the race was real, not one after the other).
    # Which one wins the claims is up to the scheduler: on a loaded machine one may win them all.
    assert max(began_a, began_b) < min(ended_a, ended_b)
    if database_url.startswith("sqlite"):  # concurrent writers on SQLite are WAL's doing
        store = Store.from_url(database_url)
        with store.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        store.close()
