"""The Events API as Slack drives it: an event Slack did not see acknowledged within 3 s comes again,
same `event_id`, with `X-Slack-Retry-Num` and `X-Slack-Retry-Reason`; a repeat changes nothing
(bot/runtime/events.py). And the request URL's `url_verification` challenge is answered."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from bot.store.schema import metadata
from tests.conftest import ALICE, BOB
from tests.helpers import open_request


def _everything(bot: Any) -> dict[str, int]:
    """Every table's row count, and every Slack call and message the fake holds."""
    with bot.store.transaction() as conn:
        counts = {
            t.name: conn.execute(select(func.count()).select_from(t)).scalar_one()
            for t in metadata.sorted_tables
        }
    counts["slack calls"] = len(bot.slack.calls)
    counts["slack messages"] = len(bot.slack.messages)
    return counts


def _publishes(bot: Any) -> int:
    return sum(1 for method, _ in bot.slack.calls if method == "views.publish")


def test_a_resent_event_changes_nothing(bot):
    open_request(bot, ALICE, "client_1 for the home tab")
    first = bot.driver.home_opened(BOB)
    assert first.status_code == 200
    bot.slack.wait_for(lambda: bot.slack.home(BOB))
    bot.runtime.wait_idle()
    before = _everything(bot)

    for retry, reason in ((1, "http_timeout"), (2, "http_error")):
        again = bot.driver.home_opened(BOB, event_id=first.extensions["event_id"], retry=retry, reason=reason)
        assert again.status_code == 200
    bot.runtime.wait_idle()

    assert _everything(bot) == before and _publishes(bot) == 1


def test_a_retry_of_an_event_that_never_arrived_is_handled(bot):
    """The first delivery was lost on the way (so this process never saw it): the retry is the
    event, and the Home tab is published once."""
    response = bot.driver.home_opened(BOB, event_id="Ev0LOSTFIRST", retry=1, reason="http_timeout")
    assert response.status_code == 200
    bot.slack.wait_for(lambda: bot.slack.home(BOB))
    bot.runtime.wait_idle()
    assert _publishes(bot) == 1


def test_the_events_url_answers_slacks_url_verification(bot):
    """Slack checks the event subscription's request URL (app.yaml) with a signed challenge."""
    response = bot.driver.url_verification("3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P")
    assert response.status_code == 200
    assert response.json() == {"challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"}
