"""Every crash window, one test each: a real `sfox-bot run` kills itself (SIGKILL, whole process
group) at a named point of bot/crashpoints.py, and a fresh process takes over. Afterwards the
record matches what sFOX and Slack saw, no DELETE went out twice, no card keeps a live button for
a request that is no longer pending, and every outcome reached its thread."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from bot.crashpoints import POINTS
from bot.fakes.sfox_api import Fault
from bot.fakes.slack_api import FakeSlack, Message
from bot.store.db import Store
from tests.conftest import ALICE, BOB, CAROL, bot_env, checked_slack
from tests.crash_support import BotProcess, View
from tests.helpers import buttons, card_text, open_request, wait_status, wait_until

pytestmark = pytest.mark.slow

# Which test proves which point; a point added to bot/crashpoints.py without a test fails below.
TESTED = {
    "card_posted": "test_card_posted_then_killed_is_adopted_by_the_click_on_it",
    "click_acked": "test_click_acked_then_killed_is_handled_after_restart_and_answered",
    "command_acked": "test_command_acked_then_killed_is_carried_out_after_restart_and_answered, "
    "test_batch_command_acked_then_killed_is_carried_out_after_restart_and_answered (test_batch_crash.py)",
    "claimed": "test_claimed_then_killed_is_reconciled_never_sent_and_retryable",
    "scheduled_due": "test_scheduled_due_then_killed_runs_once_late_after_restart (test_scheduled_crash.py)",
    "delete_answered": "test_delete_answered_then_killed_is_reconciled_as_done",
    "outcome_recorded": "test_outcome_recorded_then_killed_is_delivered_after_restart",
    "reply_sent": "test_reply_sent_then_killed_is_not_posted_twice",
    "reconcile_read": "test_reconcile_read_then_killed_is_settled_by_the_next_sweep",
    "batch_row_claimed": "test_batch_row_claimed_then_killed_is_resumed_by_another_process (test_batch_crash.py)",
    "migration_applied": "test_migration_killed_midway_leaves_the_other_replica_to_migrate (test_crash_migration.py)",
    "step_completed": "test_step_completed_then_killed_is_not_completed_twice (test_workflow_step_crash.py)",
    "stream_acked": "test_stream_acked_then_killed_sends_that_batch_again (test_audit_stream_replicas.py)",
}


def test_every_crash_point_has_a_test_and_a_readme_row():
    assert set(TESTED) == set(POINTS)
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme.split("## Crash safety", 1)[1].split("\n## ", 1)[0]
    for point in POINTS:
        assert f"`{point}`" in section, f"README's Crash safety table lacks {point}"


@pytest.fixture
def fake_slack() -> Iterator[FakeSlack]:
    """Message timestamps from the wall clock, as Slack's are (the sweep looks cards up by time)."""
    yield from checked_slack(clock_ts=True)


@pytest.fixture
def crash(fake_slack, fake_sfox, database_url, tmp_path) -> Iterator[object]:
    """Start bots sharing one database; stop whatever is still running at the end."""
    started: list[BotProcess] = []

    class Harness:
        env = bot_env(
            fake_slack,
            fake_sfox,
            database_url,
            SFOX_TIMEOUT_SECONDS="1",  # claims older than 1 + 5 s are taken over by the sweep
            SFOX_SWEEP_INTERVAL_SECONDS="0.2",
        )
        view: View | None = None

        def start(self, name: str, crash: str | None = None, pause: float = 0.0) -> BotProcess:
            bot = BotProcess(self.env, tmp_path, name, crash=crash, pause=pause)
            started.append(bot)
            if self.view is None:
                self.view = View(bot.url, database_url, fake_slack, fake_sfox)
            else:
                self.view.point_at(bot.url)
            return bot

    yield Harness()
    for bot in started:
        bot.stop()


def _final_card(slack: FakeSlack, ts: str, words: str) -> Message:
    """Wait until the card says `words`; a card that is no longer pending has no live button."""
    message = slack.wait_for(lambda: (m := slack.message(ts)) and words in card_text(m) and m, timeout=40)
    return message


def _one_reply(slack: FakeSlack, ts: str, words: str) -> Message:
    replies = slack.wait_for(lambda: [m for m in slack.thread(ts) if words in m.text] or None, timeout=40)
    assert len(replies) == 1, [m.text for m in slack.thread(ts)]
    return replies[0]


def _kinds(store: Store, request_id: int) -> list[str]:
    return [e.kind for e in store.events_for(request_id)]


def test_card_posted_then_killed_is_adopted_by_the_click_on_it(crash, fake_slack, fake_sfox):
    first = crash.start("first", crash="card_posted")
    view = crash.view
    response = view.driver.command(ALICE, "client_1 offboarding")
    assert response.status_code == 200
    first.wait_crashed("card_posted")
    card = fake_slack.cards()[0]
    assert buttons(card) == ["sfox_approve", "sfox_deny"]
    orphan = next(iter(view.store.history(limit=1)))
    assert orphan.status == "pending" and orphan.message_ts is None  # what the dead process left

    crash.start("second")
    click = view.driver.click(BOB, "sfox_approve", str(orphan.id), card.ts)
    assert click.status_code == 200
    done = wait_status(view, orphan.id, "succeeded", timeout=20)
    assert done.message_ts == card.ts
    assert "card_adopted" in _kinds(view.store, orphan.id)
    assert fake_sfox.deletes["client_1"] == 1
    final = _final_card(fake_slack, card.ts, "Deactivated on sFOX")
    assert buttons(final) == []
    _one_reply(fake_slack, card.ts, "is deactivated")
    assert view.driver.ephemeral_for(click.extensions["response_name"])  # the clicker is told


def test_click_acked_then_killed_is_handled_after_restart_and_answered(crash, fake_slack, fake_sfox):
    first = crash.start("first", crash="click_acked", pause=0.5)  # the ack leaves before the kill
    view = crash.view
    record, card = open_request(view, ALICE, "client_1 offboarding")
    click = view.driver.click(BOB, "sfox_approve", str(record.id), card.ts)
    assert click.status_code == 200  # Slack was told the click was received
    first.wait_crashed("click_acked")
    left = view.store.get(record.id)
    assert left.status == "pending" and left.approved_by == ()  # the step never ran
    assert fake_sfox.requests("DELETE") == []

    crash.start("second")
    done = wait_status(view, record.id, "succeeded", timeout=30)
    assert done.approved_by == (BOB,)
    assert fake_sfox.deletes["client_1"] == 1
    answers = view.driver.ephemeral_for(click.extensions["response_name"], timeout=10)
    assert any("restarted right after your *Approve* click" in a for a in answers), answers
    assert buttons(_final_card(fake_slack, card.ts, "Deactivated on sFOX")) == []
    _one_reply(fake_slack, card.ts, "is deactivated")


def test_command_acked_then_killed_is_carried_out_after_restart_and_answered(crash, fake_slack, fake_sfox):
    first = crash.start("first", crash="command_acked", pause=0.5)  # the ack leaves before the kill
    view = crash.view
    response = view.driver.command(ALICE, "client_1 offboarding")
    assert response.json()["text"] == "Looking up `client_1` on sFOX…"  # Slack was told it is on its way
    first.wait_crashed("command_acked")
    assert list(view.store.history()) == [] and fake_slack.cards() == []  # the job never ran
    assert fake_sfox.requests("GET") == []

    crash.start("second")
    # After the command's lease, the new process's sweep carries it out: one card, one request.
    card = fake_slack.wait_for(lambda: fake_slack.cards() and fake_slack.cards()[0], timeout=40)
    record = wait_until(lambda: (r := next(iter(view.store.history()), None)) and r.message_ts and r)
    assert record.sfox_user_id == "client_1" and record.requested_by == ALICE
    assert record.reason == "offboarding" and record.message_ts == card.ts
    answers = view.driver.ephemeral_for(response.extensions["response_name"], timeout=20)
    assert len(answers) == 1, answers
    assert "restarted while it was handling your command" in answers[0], answers
    assert f"request #{record.id}" in answers[0] and "client_1" in answers[0]
    assert len(fake_slack.cards()) == 1 and len(list(view.store.history())) == 1
    # The card works as any other.
    view.driver.click(BOB, "sfox_approve", str(record.id), card.ts)
    wait_status(view, record.id, "succeeded", timeout=20)
    assert fake_sfox.deletes["client_1"] == 1


def test_claimed_then_killed_is_reconciled_never_sent_and_retryable(crash, fake_slack, fake_sfox):
    first = crash.start("first", crash="claimed")
    view = crash.view
    record, card = open_request(view, ALICE, "client_1 offboarding")
    with contextlib.suppress(httpx.TransportError):
        view.driver.click(BOB, "sfox_approve", str(record.id), card.ts)
    first.wait_crashed("claimed")
    assert view.store.get(record.id).status == "executing"
    assert fake_sfox.requests("DELETE") == []

    crash.start("second")
    failed = wait_status(view, record.id, "failed", timeout=30)  # after the 6 s claim lease
    assert failed.retryable and "before sending the DELETE" in failed.error
    assert fake_sfox.requests("DELETE") == []  # nothing is sent on its own
    _one_reply(fake_slack, card.ts, "before it sent the deactivation")
    fake_slack.wait_for(lambda: buttons(fake_slack.message(card.ts)) == ["sfox_retry"], timeout=40)

    view.driver.click(CAROL, "sfox_retry", str(record.id), card.ts)
    wait_status(view, record.id, "succeeded", timeout=20)
    assert fake_sfox.deletes["client_1"] == 1
    assert buttons(_final_card(fake_slack, card.ts, "Deactivated on sFOX")) == []


def test_delete_answered_then_killed_is_reconciled_as_done(crash, fake_slack, fake_sfox):
    first = crash.start("first", crash="delete_answered")
    view = crash.view
    record, card = open_request(view, ALICE, "client_1 offboarding")
    with contextlib.suppress(httpx.TransportError):
        view.driver.click(BOB, "sfox_approve", str(record.id), card.ts)
    first.wait_crashed("delete_answered")
    assert view.store.get(record.id).status == "executing"
    assert "client_1" in fake_sfox.deactivated

    crash.start("second")
    wait_status(view, record.id, "succeeded", timeout=30)
    assert "reconciled" in _kinds(view.store, record.id)
    assert len(fake_sfox.requests("DELETE")) == 1  # settled by a read, never a second DELETE
    assert buttons(_final_card(fake_slack, card.ts, "Deactivated on sFOX")) == []
    _one_reply(fake_slack, card.ts, "confirmed: sFOX no longer knows the account")


def test_outcome_recorded_then_killed_is_delivered_after_restart(crash, fake_slack, fake_sfox):
    first = crash.start("first", crash="outcome_recorded")
    view = crash.view
    record, card = open_request(view, ALICE, "client_1 offboarding")
    with contextlib.suppress(httpx.TransportError):
        view.driver.click(BOB, "sfox_approve", str(record.id), card.ts)
    first.wait_crashed("outcome_recorded")
    assert view.store.get(record.id).status == "succeeded"
    assert fake_slack.thread(card.ts) == []  # recorded, but Slack was not told yet

    crash.start("second")  # its first sweep sends what is owed
    assert buttons(_final_card(fake_slack, card.ts, "Deactivated on sFOX")) == []
    _one_reply(fake_slack, card.ts, "is deactivated")
    assert len(fake_sfox.requests("DELETE")) == 1


def test_reply_sent_then_killed_is_not_posted_twice(crash, fake_slack, fake_sfox):
    first = crash.start("first", crash="reply_sent")
    view = crash.view
    record, card = open_request(view, ALICE, "client_1 offboarding")
    with contextlib.suppress(httpx.TransportError):
        view.driver.click(BOB, "sfox_approve", str(record.id), card.ts)
    first.wait_crashed("reply_sent")
    assert len(fake_slack.thread(card.ts)) == 1  # in Slack, but not marked sent

    crash.start("second")
    # Once the dead process's lease on the reply runs out (30 s), the sweep finds it in the
    # thread and marks it sent instead of posting it again.
    wait_until(lambda: not view.store.unsent_notices(datetime.now(UTC)), timeout=50)
    _one_reply(fake_slack, card.ts, "is deactivated")
    assert buttons(_final_card(fake_slack, card.ts, "Deactivated on sFOX")) == []


@pytest.mark.parametrize("applied", [True, False], ids=["delete-applied", "delete-not-applied"])
def test_reconcile_read_then_killed_is_settled_by_the_next_sweep(crash, fake_slack, fake_sfox, applied):
    first = crash.start("first", crash="reconcile_read")
    view = crash.view
    record, card = open_request(view, ALICE, "client_1 offboarding")
    # No answer to the DELETE (`unknown`); the immediate read fails, so a sweep's reconcile (every
    # 0.2 s here) is the one that reads the account, and the process dies right after that read.
    fake_sfox.script(Fault("DELETE", apply=applied, drop=True), *[Fault("GET", status=503)] * 3)
    with contextlib.suppress(httpx.TransportError):
        view.driver.click(BOB, "sfox_approve", str(record.id), card.ts)
    first.wait_crashed("reconcile_read")
    assert view.store.get(record.id).status == "unknown"
    assert _kinds(view.store, record.id).count("reconcile_started") >= 2  # the sweep's went on

    crash.start("second")
    done = wait_status(view, record.id, "succeeded", "failed", timeout=30)
    assert done.status == ("succeeded" if applied else "failed")
    assert len(fake_sfox.requests("DELETE")) == 1
    if applied:
        assert buttons(_final_card(fake_slack, card.ts, "Deactivated on sFOX")) == []
        _one_reply(fake_slack, card.ts, "confirmed: sFOX no longer knows the account")
    else:
        fake_slack.wait_for(lambda: buttons(fake_slack.message(card.ts)) == ["sfox_retry"], timeout=40)
        _one_reply(fake_slack, card.ts, "still exists")
    _one_reply(fake_slack, card.ts, "no clear answer came back")


def test_a_click_racing_the_card_record_adopts_the_same_card(crash, fake_slack, fake_sfox):
    """The card is posted and clicked while its poster is still alive (paused at the point): the
    click adopts it, and the poster's own record of the ts changes nothing."""
    first = crash.start("first", crash="card_posted", pause=3)
    view = crash.view
    view.driver.command(ALICE, "client_3 offboarding")
    card = fake_slack.wait_for(lambda: fake_slack.cards() and fake_slack.cards()[0])
    orphan = wait_until(lambda: next(iter(view.store.history(limit=1)), None))
    done = threading.Event()

    def click() -> None:
        with contextlib.suppress(httpx.TransportError):
            view.driver.click(BOB, "sfox_deny", str(orphan.id), card.ts)
        done.set()

    threading.Thread(target=click).start()
    assert done.wait(10)
    denied = wait_status(view, orphan.id, "denied", timeout=10)
    assert denied.message_ts == card.ts
    first.wait_crashed("card_posted")
    crash.start("second")
    assert buttons(_final_card(fake_slack, card.ts, "Denied")) == []
    assert fake_sfox.requests("DELETE") == []
