from tests.conftest import ALICE, BOB
from tests.helpers import buttons, open_request, wait_status


def test_happy_path(bot):
    record, card = open_request(bot, ALICE, "client_1 leaving the company")
    assert record.status == "pending"
    assert buttons(card) == ["sfox_approve", "sfox_deny"]
    r = bot.driver.click(BOB, "sfox_approve", str(record.id), card.ts)
    assert r.status_code == 200
    done = wait_status(bot, record.id, "succeeded")
    assert done.http_status == 200
    assert bot.sfox.deletes["client_1"] == 1
    replies = bot.slack.wait_for(lambda: bot.slack.thread(card.ts))
    assert "deactivated" in replies[0].text
