"""Issue 13: a pending request that has used SFOX_REMIND_AFTER_FRACTION of its TTL gets one
reminder in its thread, naming the approvers who have not acted, once across all replicas."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from bot.store.schema import requests
from tests.conftest import ALICE, BOB, CAROL
from tests.helpers import open_request, wait_until
from tests.threads import run_concurrently


def age(bot, request_id, minutes):
    """Make the request `minutes` old (its TTL is the default hour)."""
    created = datetime.now(UTC) - timedelta(minutes=minutes)
    with bot.store.transaction() as conn:
        conn.execute(
            update(requests)
            .where(requests.c.id == request_id)
            .values(created_at=created, expires_at=created + timedelta(hours=1))
        )


def reminders(bot, ts):
    return [m for m in bot.slack.thread(ts) if "Reminder" in m.text]


def test_one_reminder_per_request_with_two_replicas_sweeping(make_bot, database_url):
    two_replicas_remind_once(make_bot(DATABASE_URL=database_url), make_bot(DATABASE_URL=database_url))


@pytest.mark.postgres
def test_one_reminder_per_request_with_two_replicas_sweeping_on_postgres(make_bot, postgres_url):
    two_replicas_remind_once(make_bot(DATABASE_URL=postgres_url), make_bot(DATABASE_URL=postgres_url))


def two_replicas_remind_once(first, second):
    record, card = open_request(first, ALICE, "client_1")
    age(first, record.id, 20)
    first.runtime.sweep()
    assert reminders(first, card.ts) == []  # a third of its TTL: not yet
    age(first, record.id, 31)
    # Four sweeps at once, two per replica: one of them reminds, and no sweep runs after them
    # (one would redo what the racing ones failed to do, and the test would not see it).
    swept = run_concurrently([b.runtime.sweep for b in (first, second, first, second)])
    assert sorted(s["reminded"] for s in swept) == [0, 0, 0, 1], swept
    (reminder,) = wait_until(lambda: reminders(first, card.ts))
    assert f"<@{BOB}>" in reminder.text and f"<@{CAROL}>" in reminder.text
    assert f"<@{ALICE}>" not in reminder.text  # the requester cannot approve
    assert [e.kind for e in first.store.events_for(record.id)].count("reminded") == 1
    assert first.store.get(record.id).reminded_at is not None


def test_approvers_who_acted_are_not_reminded_and_the_group_is_named(make_bot, fake_slack):
    fake_slack.usergroups["S0ADMINS"] = ["UDAVE004"]
    bot = make_bot(
        SFOX_APPROVER_GROUP="S0ADMINS", SFOX_REQUIRED_APPROVALS="2", SFOX_REMIND_AFTER_FRACTION="0.25"
    )
    record, card = open_request(bot, ALICE, "client_1")
    bot.driver.click(BOB, "sfox_approve", str(record.id), card.ts)
    wait_until(lambda: BOB in bot.store.get(record.id).approved_by)
    age(bot, record.id, 16)
    bot.runtime.sweep()
    (reminder,) = wait_until(lambda: reminders(bot, card.ts))
    assert "<!subteam^S0ADMINS>" in reminder.text and f"<@{CAROL}>" in reminder.text
    assert f"<@{BOB}>" not in reminder.text
    assert "1 approval(s)" in reminder.text


def test_requests_no_longer_pending_are_not_reminded(bot):
    record, card = open_request(bot, ALICE, "client_1")
    bot.driver.click(BOB, "sfox_deny", str(record.id), card.ts)
    wait_until(lambda: bot.store.get(record.id).status == "denied")
    age(bot, record.id, 50)
    bot.runtime.sweep()
    assert reminders(bot, card.ts) == []
