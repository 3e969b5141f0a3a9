"""Several replicas on one PostgreSQL database: real `sfox-bot` processes, real races."""

from __future__ import annotations

import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import text

from bot.fakes.slack_driver import SlackDriver
from bot.store import migrate
from bot.store.db import Store
from tests.conftest import ALICE, BOB, CAROL, SIGNING_SECRET, bot_env
from tests.helpers import wait_until
from tests.ops_support import SFOX_BOT, clean_env, start_run

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

USERS = [f"client_r{i}" for i in range(6)]


def test_migrate_waits_for_the_advisory_lock(postgres_url, tmp_path):
    """Deterministic: while another session holds the lock, `sfox-bot migrate` waits for it."""
    store = Store.from_url(postgres_url)
    env = clean_env({"DATABASE_URL": postgres_url})
    try:
        with store.engine.connect() as holder:
            holder.execute(text("SELECT pg_advisory_lock(:k)"), {"k": migrate.ADVISORY_LOCK_KEY})
            proc = subprocess.Popen([SFOX_BOT, "migrate"], env=env, cwd=tmp_path, stdout=subprocess.PIPE)

            def waiting_on_advisory_lock() -> bool:
                with store.engine.connect() as conn:
                    return bool(
                        conn.execute(
                            text(
                                "SELECT count(*) FROM pg_stat_activity "
                                "WHERE wait_event_type = 'Lock' AND wait_event = 'advisory' "
                                "AND datname = current_database()"
                            )
                        ).scalar()
                    )

            wait_until(waiting_on_advisory_lock, timeout=30)
            assert proc.poll() is None
            assert not migrate.is_at_head(store.engine)
            holder.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": migrate.ADVISORY_LOCK_KEY})
            holder.commit()
        assert proc.wait(30) == 0
        assert migrate.is_at_head(store.engine)
    finally:
        store.close()


@pytest.mark.parametrize("backend", ["postgresql", "sqlite"])
def test_two_simultaneous_migrations(backend, request, tmp_path):
    url = (
        request.getfixturevalue("postgres_url")
        if backend == "postgresql"
        else f"sqlite:///{tmp_path / 'b.db'}"
    )
    env = clean_env({"DATABASE_URL": url})
    procs = [
        subprocess.Popen([SFOX_BOT, "migrate"], env=env, cwd=tmp_path, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    results = [(p.wait(60), p.stderr.read() if p.stderr else "") for p in procs]
    assert [code for code, _ in results] == [0, 0], results
    store = Store.from_url(url)
    try:
        with store.engine.connect() as conn:
            versions = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
        assert versions == [migrate.head_revision()]
    finally:
        store.close()


def test_two_replicas_send_exactly_one_delete_per_request(postgres_url, fake_slack, fake_sfox, tmp_path):
    for user in USERS:
        fake_sfox.add_user(user)
    env = bot_env(fake_slack, fake_sfox, postgres_url, SFOX_REQUIRED_APPROVALS="2")
    # Both start at once on an empty schema: both migrate, serialized by the advisory lock.
    with ThreadPoolExecutor(2) as pool:
        replicas = list(pool.map(lambda n: start_run(env, tmp_path, name=f"replica{n}"), (1, 2)))
    drivers = [SlackDriver(r.url, SIGNING_SECRET, fake_slack) for r in replicas]
    store = Store.from_url(postgres_url)
    try:
        for i, user in enumerate(USERS):  # requests typed at either replica
            assert drivers[i % 2].command(ALICE, f"{user} offboarding").status_code == 200
        cards = fake_slack.wait_for(lambda: len(fake_slack.cards()) == len(USERS) and fake_slack.cards())
        wait_until(lambda: all(r.message_ts for r in store.history(limit=None)))
        records = {r.sfox_user_id: r for r in store.history(limit=None)}
        assert set(records) == set(USERS)

        clicks = []
        for card in cards:
            record = next(r for r in records.values() if r.message_ts == card.ts)
            for approver in (BOB, CAROL):
                for driver in drivers:  # each approver clicks on both replicas at once
                    clicks.append((driver, approver, str(record.id), card.ts))
        with ThreadPoolExecutor(len(clicks)) as pool:
            statuses = list(
                pool.map(lambda c: c[0].click(c[1], "sfox_approve", c[2], c[3]).status_code, clicks)
            )
        assert statuses == [200] * len(clicks)

        def all_settled() -> bool:
            return all(r.status == "succeeded" for r in store.history(limit=None))

        wait_until(all_settled, timeout=30)
        assert {user: fake_sfox.deletes[user] for user in USERS} == dict.fromkeys(USERS, 1)
        assert len(fake_sfox.requests("DELETE")) == len(USERS)
        for record in store.history(limit=None):
            assert sorted(record.approved_by) == sorted([BOB, CAROL])
            kinds = [e.kind for e in store.events_for(record.id)]
            assert kinds.count("claimed") == 1 and kinds.count("sfox_delete") == 1
        for replica in replicas:
            assert replica.terminate() == 0, replica.output
    finally:
        for replica in replicas:
            replica.kill()
        for driver in drivers:
            driver.close()
        store.close()
