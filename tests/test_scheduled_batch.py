"""Issue 19 for batches: `/sfox-deactivate batch id1,id2 [reason] --at <when>`. The card says
when; once approved the batch is `scheduled` with nothing sent, and its runner starts at its time,
never before (time moved by writing `run_at` into the past); Cancel before then cancels every
user; `--when-empty` is refused for a batch."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import update

from bot.slack.batch_card import BATCH_APPROVE, BATCH_CANCEL, BATCH_DENY
from bot.store.batches import BatchStore
from bot.store.schema import batches
from tests.conftest import ALICE, BOB, CAROL
from tests.helpers import buttons, card_text, wait_until
from tests.support import ack_text
from tests.test_batches import add_users, ask, batch_id_of
from tests.test_scheduled import DATE


def make_due(bot, batch_id: int) -> None:
    with bot.store.transaction() as conn:
        conn.execute(
            update(batches)
            .where(batches.c.id == batch_id)
            .values(run_at=datetime.now(UTC) - timedelta(seconds=1))
        )


def scheduled_batch(bot, fake_sfox):
    ids = add_users(fake_sfox, 3, prefix="later")
    answer, card, _ = ask(bot, ALICE, f"batch {','.join(ids)} contracts end --at +3d")
    assert "Batch #" in answer
    batch_id = batch_id_of(card)
    records = BatchStore(bot.store)
    assert (
        records.get(batch_id).run_at is not None
        and records.get(batch_id).expires_at == records.get(batch_id).run_at
    )
    assert DATE.search(card_text(card)) and "not before" in card_text(card)
    assert buttons(card) == [BATCH_APPROVE, BATCH_DENY]
    bot.driver.click(BOB, BATCH_APPROVE, str(batch_id), card.ts)
    wait_until(lambda: records.get(batch_id).status == "scheduled")
    return ids, batch_id, card, records


def test_a_batch_for_later_is_scheduled_and_starts_at_its_time_not_before(make_bot, fake_sfox):
    bot = make_bot()
    ids, batch_id, card, records = scheduled_batch(bot, fake_sfox)
    updated = wait_until(lambda: (m := bot.slack.message(card.ts)) and "scheduled for" in card_text(m) and m)
    assert buttons(updated) == [BATCH_CANCEL]
    wait_until(lambda: [m for m in bot.slack.thread(card.ts) if "is approved and scheduled" in m.text])
    assert bot.runtime.schedule.tick() == 0 and fake_sfox.deletes == {}
    assert {r.status for r in records.rows(batch_id)} == {"pending"}

    make_due(bot, batch_id)
    assert bot.runtime.schedule.tick() == 1
    wait_until(lambda: records.get(batch_id).status == "done", timeout=30)
    assert dict(fake_sfox.deletes) == {uid: 1 for uid in ids}
    assert bot.runtime.schedule.tick() == 0
    kinds = [e.kind for e in bot.store.events_for(records.rows(batch_id)[0].id)]
    assert "batch_started" in kinds and kinds.index("batch_started") < kinds.index("claimed")


def test_a_scheduled_batch_cancelled_before_its_time_sends_nothing(make_bot, fake_sfox):
    bot = make_bot()
    ids, batch_id, card, records = scheduled_batch(bot, fake_sfox)
    bot.driver.click(CAROL, BATCH_CANCEL, str(batch_id), card.ts)
    wait_until(lambda: records.get(batch_id).status in ("cancelled", "done"))
    assert {r.status for r in records.rows(batch_id)} == {"cancelled"}
    wait_until(lambda: [m for m in bot.slack.thread(card.ts) if "before its time" in m.text])
    make_due(bot, batch_id)
    assert bot.runtime.schedule.tick() == 0 and fake_sfox.deletes == {}


def test_when_empty_is_refused_for_a_batch_and_bad_times_too(bot, fake_sfox):
    ids = add_users(fake_sfox, 2, prefix="refused")
    answer = ack_text(bot.driver.command(ALICE, f"batch {','.join(ids)} --when-empty"))
    assert "is for a single request" in answer and "Nothing was posted" in answer
    answer = ack_text(bot.driver.command(ALICE, f"batch {','.join(ids)} --at yesterday"))
    assert "is not a time I can read" in answer
    assert bot.slack.cards() == [] and list(bot.store.history()) == []
