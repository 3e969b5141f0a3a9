"""Crash point `scheduled_due` (issue 19): a real `sfox-bot run` claims a scheduled request at
its time and is SIGKILLed before it reads the balances or sends the DELETE. A fresh process takes
the stale claim over, finds nothing was sent, puts the request back to `scheduled` and runs it:
once, late rather than never, and its thread says how late."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.conftest import ALICE, BOB
from tests.helpers import card_text, open_request, wait_status
from tests.test_crash_points import crash, fake_slack  # noqa: F401 - the crash tests' fixtures

pytestmark = pytest.mark.slow


def test_scheduled_due_then_killed_runs_once_late_after_restart(crash, fake_slack, fake_sfox):  # noqa: F811
    first = crash.start("first", crash="scheduled_due")
    view = crash.view
    at = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=5)
    record, card = open_request(view, ALICE, f"client_1 notice period ends --at {at:%Y-%m-%dT%H:%M:%SZ}")
    view.driver.click(BOB, "sfox_approve", str(record.id), card.ts)
    wait_status(view, record.id, "scheduled")
    first.wait_crashed("scheduled_due")
    dead = view.store.get(record.id)
    assert dead.status == "executing" and dead.claimed_at >= at  # claimed at its time, not before
    assert fake_sfox.requests("DELETE") == []

    crash.start("second")
    done = wait_status(view, record.id, "succeeded", timeout=40)
    assert done.outcome is not None and fake_sfox.deletes["client_1"] == 1
    kinds = [e.kind for e in view.store.events_for(record.id)]
    assert kinds.count("claimed") == 2 and "rescheduled" in kinds and kinds.count("sfox_delete") == 1
    late = fake_slack.wait_for(lambda: [m for m in fake_slack.thread(card.ts) if "after its time" in m.text])
    assert len(late) == 1 and "late rather than never" in late[0].text
    fake_slack.wait_for(
        lambda: (m := fake_slack.message(card.ts)) and "Deactivated" in card_text(m), timeout=20
    )
    fake_slack.wait_for(lambda: [m for m in fake_slack.thread(card.ts) if "is deactivated" in m.text])
