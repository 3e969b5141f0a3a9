"""Anchors: the chain's head posted to SFOX_AUDIT_CHANNEL (fake Slack) at most once per interval,
only when it moved, by one replica at a time, and again after Slack refused a post."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.audit import anchors as audit_anchors
from bot.audit import chain as audit
from bot.audit import verify as audit_verify
from bot.audit.anchors import AuditAnchor
from bot.fakes.slack_api import FakeSlack
from bot.slack.calls import make_web_client
from bot.store.db import Store
from bot.store.records import Event
from tests.conftest import ALICE, BOT_TOKEN
from tests.helpers import open_request, wait_until
from tests.test_audit import fill
from tests.threads import run_concurrently

CHANNEL = "C0AUDIT01"


class Clock:
    def __init__(self) -> None:
        self.at = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.at

    def advance(self, **delta: float) -> None:
        self.at += timedelta(**delta)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgresql":
        return str(request.getfixturevalue("postgres_url"))
    return f"sqlite:///{tmp_path / 'anchor.db'}"


def anchor_for(store: Store, slack: FakeSlack, clock: Clock, minutes: int = 60) -> AuditAnchor:
    client = make_web_client(BOT_TOKEN, slack.api_url)
    return AuditAnchor(store.engine, client, CHANNEL, timedelta(minutes=minutes), now=clock)


def posted(slack: FakeSlack) -> list[str]:
    with slack.lock:
        return [m.text for m in slack.messages if m.channel == CHANNEL]


def test_posts_the_head_once_per_interval_and_only_when_it_moved(url, fake_slack):
    clock = Clock()
    store = fill(url, requests=0)
    try:
        anchor = anchor_for(store, fake_slack, clock)
        assert anchor.tick() is False and posted(fake_slack) == []  # an empty trail: nothing to anchor
        store.close()
        store = fill(url, requests=1)  # 3 events
        anchor = anchor_for(store, fake_slack, clock)
        assert anchor.tick() is True
        seq, digest = audit.head(store.engine)
        assert seq == 3
        assert posted(fake_slack) == [audit_anchors.anchor_text(3, digest, 3, clock.at)]
        assert f"`3 {digest}` · 3 events · 2026-12-01T12:00:00.000000Z" in posted(fake_slack)[0]
        assert f"--anchor 3:{digest}" in posted(fake_slack)[0]
        assert anchor.tick() is False  # nothing moved
        clock.advance(minutes=61)
        assert anchor.tick() is False  # due, but the head has not moved
        store.record_event(1, clock.at, Event("note"))
        clock.advance(minutes=1)
        assert anchor.tick() is True
        assert f"`4 {audit.head(store.engine)[1]}` · 4 events" in posted(fake_slack)[-1]
        store.record_event(1, clock.at, Event("note"))
        clock.advance(minutes=59)
        assert anchor.tick() is False  # moved, but not an interval since the last anchor
        clock.advance(minutes=1)
        assert anchor.tick() is True
        assert len(posted(fake_slack)) == 3
        # What was posted is what an auditor passes to verify.
        for text in posted(fake_slack):
            seq_text, digest_text = text.split("`")[1].split()
            report = audit_verify.verify(store.engine, None, [(int(seq_text), digest_text)])
            assert report.ok, report.line()
    finally:
        store.close()


def test_one_replica_posts_each_anchor(url, fake_slack):
    clock = Clock()
    fill(url, requests=1).close()
    stores = [Store.from_url(url) for _ in range(2)]
    replicas = [anchor_for(s, fake_slack, clock) for s in stores]
    try:
        for round_ in range(5):
            stores[0].record_event(1, clock.at, Event("note", detail=str(round_)))
            clock.advance(minutes=60)
            wins = run_concurrently([r.tick for r in replicas for _ in range(2)], timeout=30)
            assert sorted(wins) == [False, False, False, True], wins
            assert len(posted(fake_slack)) == round_ + 1
    finally:
        for s in stores:
            s.close()


def test_a_refused_post_is_tried_again_at_the_next_sweep(tmp_path, fake_slack):
    clock = Clock()
    store = fill(f"sqlite:///{tmp_path / 'refused.db'}", requests=1)
    try:
        anchor = anchor_for(store, fake_slack, clock)
        fake_slack.fail("chat.postMessage", "not_in_channel")
        assert anchor.tick() is False and posted(fake_slack) == []
        assert anchor.tick() is True  # the claim was given back: no interval to wait
        assert len(posted(fake_slack)) == 1
    finally:
        store.close()


def test_the_running_bot_posts_anchors_from_its_sweep(make_bot):
    bot = make_bot(SFOX_AUDIT_CHANNEL=CHANNEL, SFOX_SWEEP_INTERVAL_SECONDS="0.1")
    open_request(bot, ALICE, "client_1 left")
    bot.runtime.start_sweeper()
    text = wait_until(lambda: posted(bot.slack) and posted(bot.slack)[0])
    seq, digest = text.split("`")[1].split()
    assert audit_verify.verify(bot.store.engine, None, [(int(seq), digest)]).ok


def test_a_bot_with_an_audit_key_writes_a_keyed_chain(make_bot):
    key = "bot-audit-key-0123456789"
    bot = make_bot(SFOX_AUDIT_KEY=key)
    open_request(bot, ALICE, "client_1 left")
    assert audit_verify.verify(bot.store.engine, key).ok
    assert audit_verify.verify(bot.store.engine).problem.kind == "wrong key"
