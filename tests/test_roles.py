"""The two tiers in one test process (issue 26): a web role that only records and acks, and
workers that take what it recorded the moment they are woken. Each tier is a real Runtime on the
same database (SQLite and PostgreSQL), the web one served over HTTP to signed Slack requests; the
processes of `sfox-bot run` are tested in tests/test_roles_processes.py."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from bot.config import load_settings
from bot.fakes.polling import poll
from bot.runtime.bootstrap import Runtime, build_runtime
from bot.runtime.roles import WEB, WORKER, TakeLoop, handover_state
from bot.store.db import Store
from bot.store.schema import commands
from tests.conftest import ALICE, BOB, Bot, bot_env, start_bot
from tests.helpers import wait_status, wait_until

# Far longer than any wait below: a test that passes was woken, never saved by the poll.
NEVER_POLLS = 600.0


class Tiers:
    def __init__(self, slack: Any, sfox: Any, database_url: str, **settings: str) -> None:
        self.env = bot_env(slack, sfox, database_url, **settings)
        self.web: Bot = start_bot(load_settings(self.env), slack, sfox, role=WEB)
        self.workers: list[Runtime] = []

    def add_worker(self) -> Runtime:
        settings = load_settings(self.env)
        worker = build_runtime(
            settings, store=Store.from_url(settings.database_url, settings.audit_key), role=WORKER
        )
        worker.take_loop = TakeLoop(worker, poll_seconds=NEVER_POLLS)
        worker.start_sweeper()  # its first sweep runs at once; the next in SFOX_SWEEP_INTERVAL_SECONDS
        self.workers.append(worker)
        return worker

    def stop_worker(self, worker: Runtime) -> None:
        worker.shutdown(wait=True)
        worker.store.close()
        self.workers.remove(worker)

    def stop(self) -> None:
        for worker in list(self.workers):
            self.stop_worker(worker)
        self.web.stop()


@pytest.fixture
def tiers(fake_slack: Any, fake_sfox: Any, database_url: str) -> Iterator[Tiers]:
    fake_sfox.add_user("acct_1")
    fake_sfox.add_user("acct_2")
    made = Tiers(fake_slack, fake_sfox, database_url)
    yield made
    made.stop()


def waiting(tiers: Tiers) -> int:
    with tiers.web.store.reader() as conn:
        return handover_state(conn).waiting


def listening(worker: Runtime) -> bool:
    assert worker.take_loop is not None
    return wait_until(lambda: worker.take_loop._listener is not None)  # type: ignore[union-attr]


def test_the_web_role_acks_and_records_and_calls_nobody_until_a_worker_takes_it(tiers):
    web = tiers.web
    response = web.driver.command(ALICE, "acct_1 offboarded")
    assert response.status_code == 200 and "Looking up" in response.json()["text"]
    assert waiting(tiers) == 1
    assert web.sfox.requests() == [] and web.slack.cards() == []  # nothing after the ack
    ready = httpx.get(f"{web.url}/readyz").json()
    assert ready["role"] == "web" and ready["workers"]["waiting"] == 1
    assert ready["workers"]["last_taken_at"] is None
    metrics = httpx.get(f"{web.url}/metrics").text
    assert 'sfox_bot_role{role="web"} 1.0' in metrics and "sfox_bot_work_waiting 1.0" in metrics
    assert "sfox_bot_worker_last_took_timestamp_seconds 0.0" in metrics

    listening(tiers.add_worker())
    card = web.slack.wait_for(lambda: web.slack.cards() or None)[0]
    record = wait_until(lambda: (r := next(iter(web.store.history(limit=1)), None)) and r.message_ts and r)
    assert record.message_ts == card.ts and record.requested_by == ALICE
    assert waiting(tiers) == 0
    ready = httpx.get(f"{web.url}/readyz").json()
    assert ready["workers"]["waiting"] == 0 and ready["workers"]["last_taken_at"] is not None
    # Taken fresh, so answered as the one process would have: no "the bot restarted" to anyone.
    assert not [e for e in web.slack.ephemeral if "restarted" in e.get("text", "")]


def test_a_listening_worker_is_woken_at_once_and_the_approval_sends_one_delete(tiers):
    web = tiers.web
    listening(tiers.add_worker())
    web.driver.command(ALICE, "acct_2 closed")
    card = web.slack.wait_for(lambda: web.slack.cards() or None, timeout=10)[0]
    record = wait_until(lambda: (r := next(iter(web.store.history(limit=1)), None)) and r.message_ts and r)
    response = web.driver.click(BOB, "sfox_approve", str(record.id), card.ts)
    assert response.status_code == 200
    done = wait_status(web, record.id, "succeeded")
    assert done.approved_by == (BOB,)
    assert len(web.sfox.requests("DELETE")) == 1
    with web.store.reader() as conn:
        assert conn.execute(commands.select()).mappings().one()["holds"] == 1


def test_two_workers_share_a_burst_and_carry_each_command_out_once(tiers):
    web = tiers.web
    ids = [f"acct_burst_{n}" for n in range(12)]
    for user in ids:
        web.sfox.add_user(user)
    for worker in (tiers.add_worker(), tiers.add_worker()):
        listening(worker)
    for n, user in enumerate(ids):
        assert web.driver.command(ALICE, f"{user} burst", channel_id=f"C0BURST{n:04}").status_code == 200
    wait_until(lambda: len(web.slack.cards()) == len(ids), timeout=30)
    assert sorted(r.sfox_user_id for r in web.store.history(limit=50)) == sorted(ids)

    def finished() -> list[Any]:
        with web.store.reader() as conn:
            rows = conn.execute(commands.select()).mappings().all()
        return list(rows) if all(r["done_at"] is not None for r in rows) else []

    rows = wait_until(finished)
    assert len(rows) == len(ids) and all(r["holds"] == 1 for r in rows)  # each taken once


def test_a_command_taken_by_a_worker_that_died_is_resumed_and_its_requester_told(tiers):
    """The worker's lease runs out; the next worker's pass sees holds 1 and takes it as resumed."""
    web = tiers.web
    web.driver.command(ALICE, "acct_1 offboarded")
    wait_until(lambda: waiting(tiers) == 1)
    taken = web.runtime.commands.journal.take_due()  # a worker that takes it, then dies
    assert [r["holds"] for r in taken] == [1]
    with web.store.transaction() as conn:  # its lease runs out
        conn.execute(commands.update().values(lease_until=commands.c.received_at))
    listening(tiers.add_worker())
    web.slack.wait_for(lambda: web.slack.cards() or None)
    texts = wait_until(
        lambda: [e.get("text", "") for e in web.slack.ephemeral if "restarted" in e.get("text", "")]
    )
    assert "The bot restarted while it was handling your command" in texts[0]


def test_the_web_role_keeps_no_lease_on_what_it_hands_over(tiers, monkeypatch):
    """Its lease keeper would renew the command for as long as the web process lives, hiding it
    from every worker: the web role holds nothing."""
    from bot.runtime import commands as commands_module

    monkeypatch.setattr(commands_module, "KEEP_EVERY_SECONDS", 0.05)
    web = tiers.web
    assert web.driver.command(ALICE, "acct_1 offboarded").status_code == 200

    def renewed() -> bool:
        with web.store.reader() as conn:
            row = conn.execute(commands.select()).mappings().one()
        return row["lease_until"] > row["received_at"]

    assert not poll(renewed, 0.5)  # ten of the keeper's turns: its lease stays run out
    listening(tiers.add_worker())
    web.slack.wait_for(lambda: web.slack.cards() or None, timeout=10)


def test_a_burst_of_more_clicks_than_a_worker_holds_is_taken_without_waiting_for_its_poll(tiers):
    """A worker takes at most MAX_IN_FLIGHT clicks at a time; the rest are taken as soon as one
    is done, never left to a poll (600 s here) after the burst's wake-ups are over."""
    from concurrent.futures import ThreadPoolExecutor

    from bot.runtime.clicks import MAX_IN_FLIGHT

    web = tiers.web
    users = [f"acct_click_{n}" for n in range(MAX_IN_FLIGHT + 8)]
    for user in users:
        web.sfox.add_user(user)
    listening(tiers.add_worker())
    for n, user in enumerate(users):
        assert web.driver.command(ALICE, f"{user} burst", channel_id=f"C0CLICK{n:04}").status_code == 200
    wait_until(lambda: len(web.slack.cards()) == len(users), timeout=30)
    records = wait_until(
        lambda: (
            (rs := [r for r in web.store.history(limit=100) if r.message_ts]) and len(rs) == len(users) and rs
        )
    )
    with ThreadPoolExecutor(8) as pool:
        answers = list(
            pool.map(lambda r: web.driver.click(BOB, "sfox_approve", str(r.id), r.message_ts), records)
        )
    assert all(a.status_code == 200 for a in answers)
    for record in records:
        wait_status(web, record.id, "succeeded", timeout=20)
    assert len(web.sfox.requests("DELETE")) == len(users)


def test_an_intake_request_to_the_web_role_is_answered_once_a_worker_opened_it(
    fake_slack, fake_sfox, database_url
):
    """The intake API's answer names the request and its card: the web role waits for the worker
    that opens it, rather than opening it itself (it makes no sFOX call)."""
    from tests.test_intake import INTAKE, ask, post

    fake_sfox.add_user("acct_intake_1")
    made = Tiers(fake_slack, fake_sfox, database_url, **INTAKE)
    try:
        listening(made.add_worker())
        response = post(made.web, ask())
        assert response.status_code == 202, response.text
        answer = response.json()
        assert answer["status"] == "pending" and answer["url"].startswith("https://")
        assert made.web.store.get(answer["request_id"]).requested_via == "backoffice"
        # The web process's own counts: not one sFOX call of its own.
        assert "sfox_bot_sfox_calls_total{" not in httpx.get(f"{made.web.url}/metrics").text
    finally:
        made.stop()
