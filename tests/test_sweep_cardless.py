"""A request recorded but never given a card (the bot stopped in between) cannot be approved by
anyone; the sweep closes it so the sFOX user can be requested again."""

from datetime import UTC, datetime, timedelta

from tests.conftest import ALICE, BOB
from tests.helpers import open_request


def _cardless(bot, minutes_ago: float):
    created = datetime.now(UTC) - timedelta(minutes=minutes_ago)
    return bot.store.create_request(
        sfox_user_id="client_1",
        reason="bot died before the card",
        requested_by=ALICE,
        channel_id="C0123TEST",
        required_approvals=1,
        target_name=None,
        target_email=None,
        target_status=None,
        now=created,
        ttl=timedelta(hours=1),
    )


def test_sweep_closes_a_request_whose_card_was_never_posted(bot):
    record = _cardless(bot, minutes_ago=10)
    summary = bot.runtime.workflow.sweep()
    assert summary["abandoned"] == 1
    closed = bot.store.get(record.id)
    assert closed.status == "failed" and "before it recorded the approval card" in closed.error
    assert "card_failed" in [e.kind for e in bot.store.events_for(record.id)]
    assert bot.sfox.deletes["client_1"] == 0
    # The user is free for a new request, which works normally.
    again, card = open_request(bot, BOB, "client_1 second try")
    assert again.id != record.id and again.status == "pending" and card.ts


def test_sweep_leaves_a_request_whose_card_may_still_be_on_its_way(bot):
    record = _cardless(bot, minutes_ago=0.1)
    assert bot.runtime.workflow.sweep()["abandoned"] == 0
    assert bot.store.get(record.id).status == "pending"


def test_a_posted_card_is_never_abandoned(bot):
    record, _ = open_request(bot, ALICE, "client_1 leaving")
    assert not bot.store.abandon(record.id, datetime.now(UTC), "test")
    assert bot.store.get(record.id).status == "pending"
