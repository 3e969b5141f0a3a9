"""What one approval costs the database (issue 26, "cheaper approvals"): on SQLite every write
transaction of every process queues for one lock, so their number sets how many approvals a
minute the bot carries out. The README's "What an approval writes" lists them and why each stays;
this test keeps the count from growing unnoticed."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import event, select

from bot.slack.blocks import APPROVE
from bot.store.schema import outbox
from tests.conftest import ALICE, BOB
from tests.helpers import open_request, wait_status, wait_until

# A click journalled, the approval, the claim, the click answered, the call started, its rate
# slot taken and answered, the outcome; the card's two updates, the thread reply and the DM, each
# leased and recorded sent, a message sent recorded with the next one's lease.
WRITES_PER_APPROVAL = 14


@pytest.mark.engines("sqlite", why="the one lock every writer of SQLite queues for")
def test_one_approval_writes_no_more_than_the_transactions_it_needs(bot):
    record, card = open_request(bot, ALICE, "client_1 offboarding")
    assert bot.runtime.wait_idle()
    writes: list[str] = []
    lock = threading.Lock()

    def on_begin(conn) -> None:
        if not conn.get_execution_options().get("readonly", False):
            with lock:
                writes.append("write")

    event.listen(bot.store.engine, "begin", on_begin)
    try:
        bot.driver.click(BOB, APPROVE, str(record.id), card.ts)
        wait_status(bot, record.id, "succeeded")

        def delivered() -> bool:
            with bot.store.reader() as conn:
                rows = conn.execute(select(outbox.c.sent_at).where(outbox.c.request_id == record.id)).all()
            return bool(rows) and all(r.sent_at is not None for r in rows)

        wait_until(delivered)
        assert bot.runtime.wait_idle()
    finally:
        event.remove(bot.store.engine, "begin", on_begin)
    assert len(writes) <= WRITES_PER_APPROVAL, f"{len(writes)} write transactions"
    assert len(bot.sfox.requests("DELETE")) == 1
