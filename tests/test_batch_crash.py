"""A batch's runner killed (SIGKILL, whole process group) right after claiming a user, then a
fresh process resumes the batch from its sweep: every user DELETEd exactly once, the claimed
users reconciled by a read before anything is sent for them, one summary. And a batch command
killed right after its ack: the fresh process carries its pre-flight out and answers the
requester."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import func, select

from bot.fakes.slack_api import FakeSlack
from bot.store.schema import batches
from tests.conftest import ALICE, BOB, bot_env, checked_slack
from tests.crash_support import BotProcess, View

pytestmark = pytest.mark.slow


@pytest.fixture
def fake_slack() -> Iterator[FakeSlack]:
    yield from checked_slack(clock_ts=True)


def test_batch_row_claimed_then_killed_is_resumed_by_another_process(
    fake_slack, fake_sfox, database_url, tmp_path
):
    env = bot_env(
        fake_slack,
        fake_sfox,
        database_url,
        SFOX_TIMEOUT_SECONDS="1",  # claims and the runner's lease run out after 1 + 5 s
        SFOX_SWEEP_INTERVAL_SECONDS="0.2",
        SFOX_BALANCE_CHECK="off",
    )
    ids = [f"crash_{i:02d}" for i in range(30)]
    for uid in ids:
        fake_sfox.add_user(uid)
    first = BotProcess(env, tmp_path, "first", crash="batch_row_claimed", pause=0.3)
    second = None
    try:
        view = View(first.url, database_url, fake_slack, fake_sfox)
        response = view.driver.command(ALICE, "batch " + ",".join(ids) + " crash test")
        assert response.status_code == 200
        card = fake_slack.wait_for(
            lambda: [c for c in fake_slack.cards() if c.text.startswith("sFOX batch")], 20
        )[0]
        batch_id = int(card.text.split("#", 1)[1].split(" ", 1)[0])
        view.driver.click(BOB, "sfox_batch_approve", str(batch_id), card.ts)
        first.wait_crashed("batch_row_claimed")
        rows = list(view.store.history(limit=None, batch_id=batch_id))
        claimed = [r.id for r in rows if r.status == "executing"]
        assert claimed and len(fake_sfox.requests("DELETE")) < len(ids)

        second = BotProcess(env, tmp_path, "second")
        view.point_at(second.url)
        summary = fake_slack.wait_for(
            lambda: [m for m in fake_slack.thread(card.ts) if "finished" in m.text], timeout=60
        )
        assert len(summary) == 1 and "30 deactivated, 0 failed" in summary[0].text, summary[0].text
        assert dict(fake_sfox.deletes) == {uid: 1 for uid in ids}  # nobody DELETEd twice
        for request_id in claimed:
            kinds = [e.kind for e in view.store.events_for(request_id)]
            # Read first (the account was still there, nothing had been sent), then sent once.
            assert "reconciled" in kinds and kinds.index("reconciled") < kinds.index("sfox_delete"), kinds
            assert kinds.count("sfox_call_started") == 1
    finally:
        first.stop()
        if second is not None:
            second.stop()


def test_batch_command_acked_then_killed_is_carried_out_after_restart_and_answered(
    fake_slack, fake_sfox, database_url, tmp_path
):
    env = bot_env(
        fake_slack, fake_sfox, database_url, SFOX_SWEEP_INTERVAL_SECONDS="0.2", SFOX_BALANCE_CHECK="off"
    )
    ids = [f"acked_{i}" for i in range(5)]
    for uid in ids:
        fake_sfox.add_user(uid)
    first = BotProcess(env, tmp_path, "first", crash="command_acked", pause=0.5)
    second = None
    try:
        view = View(first.url, database_url, fake_slack, fake_sfox)
        response = view.driver.command(ALICE, "batch " + ",".join([*ids, "bad/id", ids[0]]) + " offboarding")
        assert response.json()["text"] == "Checking 5 users on sFOX…"
        first.wait_crashed("command_acked")
        assert fake_slack.cards() == [] and fake_sfox.requests("GET") == []

        second = BotProcess(env, tmp_path, "second")
        view.point_at(second.url)
        card = fake_slack.wait_for(
            lambda: [c for c in fake_slack.cards() if c.text.startswith("sFOX batch")], 40
        )[0]
        batch_id = int(card.text.split("#", 1)[1].split(" ", 1)[0])
        name = response.extensions["response_name"]
        answer = fake_slack.wait_for(
            lambda: [t for t in view.driver.ephemeral_for(name, timeout=20) if "Batch #" in t], 20
        )
        assert len(answer) == 1 and "restarted while it was preparing your batch" in answer[0], answer
        assert f"Batch #{batch_id} posted for approval: 5 users" in answer[0]
        # What the command left out before its ack is still named.
        assert "malformed (1)" in answer[0] and "duplicated (1)" in answer[0]
        assert len(fake_slack.cards()) == 1
        with view.store.engine.connect() as conn:
            assert conn.execute(select(func.count()).select_from(batches)).scalar_one() == 1
        rows = list(view.store.history(limit=None))
        assert sorted(r.sfox_user_id for r in rows) == ids and {r.batch_id for r in rows} == {batch_id}
        assert len(fake_sfox.requests("GET")) == 5  # each user looked up once
    finally:
        first.stop()
        if second is not None:
            second.stop()
