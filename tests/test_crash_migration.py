"""Two replicas start together on PostgreSQL and the one migrating dies mid-migration (SIGKILL,
statements run, nothing committed): the other one, waiting on the migration lock, migrates from
scratch and serves; the dead one restarts cleanly."""

from __future__ import annotations

import time

import pytest

from bot.store import migrate
from bot.store.db import Store
from tests.conftest import ALICE, BOB, bot_env
from tests.crash_support import BotProcess, View
from tests.helpers import open_request, wait_status

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


def test_migration_killed_midway_leaves_the_other_replica_to_migrate(
    postgres_url, fake_slack, fake_sfox, tmp_path
):
    env = bot_env(fake_slack, fake_sfox, postgres_url)
    first = BotProcess(env, tmp_path, "first", crash="migration_applied", pause=3, wait_ready=False)
    deadline = time.monotonic() + 30
    while "crash point migration_applied reached" not in first.output():
        assert first.proc.poll() is None and time.monotonic() < deadline, first.output()
        time.sleep(0.05)
    # The first replica holds the migration lock, its statements run but not committed; the
    # second starts now and must wait for it.
    second = BotProcess(env, tmp_path, "second", wait_ready=False)
    try:
        first.wait_crashed("migration_applied")
        second.wait_ready(timeout=60)
        store = Store.from_url(postgres_url)
        assert migrate.is_at_head(store.engine)

        view = View(second.url, postgres_url, fake_slack, fake_sfox)
        record, card = open_request(view, ALICE, "client_1 after a broken deploy")
        view.driver.click(BOB, "sfox_approve", str(record.id), card.ts)
        wait_status(view, record.id, "succeeded", timeout=20)
        assert fake_sfox.deletes["client_1"] == 1

        restarted = BotProcess(env, tmp_path, "first-again")  # finds the schema at head
        restarted.stop()
        store.close()
        view.store.close()
    finally:
        second.stop()
        first.kill()
