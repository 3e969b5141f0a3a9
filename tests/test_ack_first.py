"""A click is acknowledged before its database step runs: a busy step pool never delays the ack
(Slack gives up after 3 s), and the step still runs once the pool frees up."""

import threading

from bot.runtime.bootstrap import STEP_THREADS
from tests.conftest import ALICE, BOB
from tests.helpers import open_request, wait_status


def test_click_is_acked_while_the_step_pool_is_busy(bot):
    record, card = open_request(bot, ALICE, "client_1 leaving the company")
    release = threading.Event()
    blockers = [bot.runtime.steps.submit(release.wait, 30) for _ in range(STEP_THREADS)]
    try:
        response = bot.driver.click(BOB, "sfox_approve", str(record.id), card.ts)
        assert response.status_code == 200
        # The ack came back although no step thread was free: the approval has not been recorded.
        current = bot.store.get(record.id)
        assert current.status == "pending" and current.approved_by == ()
        assert bot.sfox.deletes["client_1"] == 0
    finally:
        release.set()
    for blocker in blockers:
        blocker.result(timeout=10)
    done = wait_status(bot, record.id, "succeeded")
    assert done.approved_by == (BOB,)
    assert bot.sfox.deletes["client_1"] == 1


def test_a_malformed_button_still_gets_its_private_answer(bot):
    response = bot.driver.click(BOB, "sfox_approve", "not-a-number")
    assert response.status_code == 200
    texts = bot.driver.ephemeral_for(response.extensions["response_name"])
    assert "did not carry a valid request" in texts[0]
