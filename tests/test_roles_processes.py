"""The two tiers as real processes (issue 26): `sfox-bot run` supervising a web process and its
workers, and `--role web` / `--role worker` run apart, killed with -9 the way a host loses them.
Nothing Slack was told we received is lost: what the web role acked while no worker ran is done
when one returns, and what a worker holds is finished when the web role dies."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.fakes.polling import poll
from bot.store.schema import commands
from tests.conftest import ALICE, BOB, bot_env
from tests.crash_support import View
from tests.helpers import wait_status, wait_until
from tests.ops_support import SFOX_BOT, Process, start_run

pytestmark = pytest.mark.slow


@pytest.fixture
def procs() -> Iterator[list[Process]]:
    started: list[Process] = []
    yield started
    for proc in started:
        if proc.proc.poll() is None:
            proc.proc.send_signal(signal.SIGTERM)
            try:
                proc.proc.wait(30)
            except Exception:
                proc.kill()


def children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return [int(p) for p in f.read().split()]


def role_of(pid: int) -> str:
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        argv = f.read().split(b"\0")
    # A child forked a moment ago may not have exec'd yet: it has the supervisor's command line.
    return argv[argv.index(b"--role") + 1].decode() if b"--role" in argv else ""


def workers_of(supervisor: int) -> list[int]:
    return [p for p in children(supervisor) if role_of(p) == "worker"]


def ready(url: str) -> dict[str, Any]:
    return httpx.get(f"{url}/readyz", timeout=5).json()


def worker(env: dict[str, str], cwd: Path, procs: list[Process], name: str) -> Process:
    proc = Process([SFOX_BOT, "run", "--role", "worker"], env, cwd, name)
    procs.append(proc)
    proc.wait_for_output("worker listening for work")
    return proc


def card_for(view: View, user: str, channel: str) -> Any:
    assert view.driver.command(ALICE, f"{user} offboarded", channel).status_code == 200
    return view.slack.wait_for(
        lambda: next((m for m in view.slack.cards() if user in str(m.blocks)), None), timeout=30
    )


def test_run_supervises_a_web_process_and_workers_restarts_a_killed_worker_and_stops_in_order(
    fake_slack, fake_sfox, database_url, tmp_path, procs
):
    for user in ("acct_sup_1", "acct_sup_2"):
        fake_sfox.add_user(user)
    env = bot_env(fake_slack, fake_sfox, database_url, SFOX_WORKERS="2")
    bot = start_run(env, tmp_path)
    procs.append(bot)
    wait_until(lambda: len(workers_of(bot.proc.pid)) == 2, timeout=30)
    assert ready(bot.url)["role"] == "web"
    view = View(bot.url, database_url, fake_slack, fake_sfox)
    try:
        card = card_for(view, "acct_sup_1", "C0SUP0001")
        record = wait_until(
            lambda: (r := next(iter(view.store.history(limit=1)), None)) and r.message_ts and r
        )
        assert view.driver.click(BOB, "sfox_approve", str(record.id), card.ts).status_code == 200
        assert wait_status(view, record.id, "succeeded", timeout=30).approved_by == (BOB,)

        killed = workers_of(bot.proc.pid)[0]
        os.kill(killed, signal.SIGKILL)
        bot.wait_for_output("child died; restarting")
        wait_until(lambda: len([p for p in workers_of(bot.proc.pid) if p != killed]) == 2, timeout=30)
        card_for(view, "acct_sup_2", "C0SUP0002")  # the tiers carry on
        assert len(fake_sfox.requests("DELETE")) == 1

        tiers = children(bot.proc.pid)
        assert bot.terminate(timeout=60) == 0, bot.output
        assert not [p for p in tiers if os.path.exists(f"/proc/{p}") and role_of_alive(p)]
    finally:
        view.store.close()


def role_of_alive(pid: int) -> bool:
    """A process still running (not a zombie waiting to be reaped)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_what_the_web_role_acks_while_its_worker_is_dead_is_done_when_a_worker_returns(
    fake_slack, fake_sfox, database_url, tmp_path, procs
):
    users = [f"acct_gone_{n}" for n in range(3)]
    for user in users:
        fake_sfox.add_user(user)
    env = bot_env(fake_slack, fake_sfox, database_url)
    web = start_run(env, tmp_path, "--role", "web", name="web")
    procs.append(web)
    first = worker(env, tmp_path, procs, "worker-1")
    first.proc.kill()  # -9: the host lost it
    first.proc.wait(10)
    view = View(web.url, database_url, fake_slack, fake_sfox)
    try:
        for n, user in enumerate(users):
            response = view.driver.command(ALICE, f"{user} offboarded", f"C0GONE{n:04}")
            assert response.status_code == 200 and "Looking up" in response.json()["text"]
        assert ready(web.url)["workers"]["waiting"] == 3  # acked, recorded, and nobody to take them
        assert fake_sfox.requests() == [] and fake_slack.cards() == []

        second = worker(env, tmp_path, procs, "worker-2")
        if not poll(lambda: len(fake_slack.cards()) == 3, 60):
            raise AssertionError(f"not carried out: {ready(web.url)}\n{second.output}")
        assert ready(web.url)["workers"]["waiting"] == 0
        assert sorted(r.sfox_user_id for r in view.store.history(limit=10)) == sorted(users)
    finally:
        view.store.close()


def test_a_worker_finishes_what_it_took_when_the_web_role_dies(
    fake_slack, fake_sfox, database_url, tmp_path, procs
):
    fake_sfox.add_user("acct_web_dies")
    fake_sfox.delay = 1.0  # each sFOX call: time enough to kill the web process meanwhile
    env = bot_env(fake_slack, fake_sfox, database_url)
    web = start_run(env, tmp_path, "--role", "web", name="web")
    procs.append(web)
    worker(env, tmp_path, procs, "worker")
    view = View(web.url, database_url, fake_slack, fake_sfox)
    try:
        assert view.driver.command(ALICE, "acct_web_dies offboarded", "C0WEBDIES1").status_code == 200

        def taken() -> bool:
            with view.store.reader() as conn:
                return conn.execute(commands.select()).mappings().one()["taken_at"] is not None

        wait_until(taken)
        web.kill()
        card = fake_slack.wait_for(lambda: fake_slack.cards() or None, timeout=30)[0]
        record = wait_until(
            lambda: (r := next(iter(view.store.history(limit=1)), None)) and r.message_ts and r
        )
        assert record.message_ts == card.ts and record.sfox_user_id == "acct_web_dies"
    finally:
        view.store.close()
