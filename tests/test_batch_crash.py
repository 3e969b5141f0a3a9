"""A batch's runner killed (SIGKILL, whole process group) right after claiming a user, then a
fresh process resumes the batch from its sweep: every user DELETEd exactly once, the claimed
users reconciled by a read before anything is sent for them, one summary."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bot.fakes.slack_api import FakeSlack
from tests.conftest import ALICE, BOB, BOT_TOKEN, assert_nothing_refused, bot_env
from tests.crash_support import BotProcess, View

pytestmark = pytest.mark.slow


@pytest.fixture
def fake_slack() -> Iterator[FakeSlack]:
    with FakeSlack(token=BOT_TOKEN, clock_ts=True) as slack:
        yield slack
        assert_nothing_refused(slack)


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
