"""Issue 13: the App Home. Approvers see what waits for them (with the card's own Approve and Deny),
their open requests and the latest outcomes; others see what the bot does and who approves."""

from __future__ import annotations

from functools import partial

from bot.slack.home import HOME_APPROVE, HOME_DENY
from tests.conftest import ALICE, BOB, CAROL, MALLORY
from tests.helpers import buttons, open_request, wait_status, wait_until
from tests.threads import run_concurrently


def home_text(view):
    parts = []
    for block in view["blocks"]:
        text = block.get("text")
        if isinstance(text, dict):
            parts.append(text.get("text", ""))
        for element in block.get("elements", []):
            if isinstance(element.get("text"), str):
                parts.append(element["text"])
    return "\n".join(parts)


def home_buttons(view):
    return [
        (e["action_id"], e["value"]) for b in view["blocks"] if b["type"] == "actions" for e in b["elements"]
    ]


def opened_home(bot, user):
    bot.slack.views.pop(user, None)
    assert bot.driver.home_opened(user).status_code == 200
    return wait_until(lambda: bot.slack.home(user))


def test_an_approver_sees_what_waits_for_them_their_own_requests_and_outcomes(bot):
    waiting, _ = open_request(bot, ALICE, "client_1")
    mine, _ = open_request(bot, BOB, "client_3")
    view = opened_home(bot, BOB)
    assert (HOME_APPROVE, str(waiting.id)) in home_buttons(view)
    assert (HOME_APPROVE, str(mine.id)) not in home_buttons(view)  # never one's own
    text = home_text(view)
    assert "Waiting for you" in text and "Your open requests" in text and "Latest 10 outcomes" in text
    assert f"#{mine.id} `client_3`" in text


def test_someone_else_is_told_what_the_bot_does_and_who_approves(bot):
    view = opened_home(bot, MALLORY)
    text = home_text(view)
    assert "two-person rule" in text and f"<@{BOB}>" in text and f"<@{CAROL}>" in text
    assert home_buttons(view) == []


def test_approving_from_the_home_updates_the_card_and_republishes(bot, fake_sfox):
    record, card = open_request(bot, ALICE, "client_1")
    opened_home(bot, BOB)
    bot.slack.views.pop(BOB)
    bot.driver.home_click(BOB, HOME_APPROVE, str(record.id))
    wait_status(bot, record.id, "succeeded")
    wait_until(lambda: (m := bot.slack.message(card.ts)) and not buttons(m))
    view = wait_until(lambda: bot.slack.home(BOB))
    assert (HOME_APPROVE, str(record.id)) not in home_buttons(view)
    assert len(fake_sfox.requests("DELETE")) == 1


def test_the_home_refuses_what_the_card_refuses(bot):
    record, _ = open_request(bot, ALICE, "client_1")
    bot.driver.home_click(ALICE, HOME_APPROVE, str(record.id))
    view = wait_until(lambda: (v := bot.slack.home(ALICE)) and "second admin" in home_text(v) and v)
    assert view and bot.store.get(record.id).status == "pending"


def test_deny_from_the_home_opens_the_reason_modal(bot):
    record, card = open_request(bot, ALICE, "client_1")
    response = bot.driver.home_click(BOB, HOME_DENY, str(record.id))
    assert response.status_code == 200
    (opened,) = bot.slack.opened_views
    bot.driver.submit_view(BOB, opened["view"], {"reason": "duplicate"})
    denied = wait_status(bot, record.id, "denied")
    assert denied.deny_reason == "duplicate"
    wait_until(lambda: (m := bot.slack.message(card.ts)) and not buttons(m))
    wait_until(lambda: (v := bot.slack.home(BOB)) and "Done" in home_text(v))


def test_a_home_approval_racing_a_card_approval_sends_one_delete(make_bot, fake_sfox):
    bot = make_bot()
    for attempt in range(5):
        user = f"client_race{attempt}"
        fake_sfox.add_user(user)
        record, card = open_request(bot, ALICE, user)
        clicks = run_concurrently(
            [
                partial(bot.driver.home_click, BOB, HOME_APPROVE, str(record.id)),
                partial(bot.driver.click, CAROL, "sfox_approve", str(record.id), card.ts),
            ]
        )
        assert [c.status_code for c in clicks] == [200, 200], clicks
        wait_status(bot, record.id, "succeeded")
        bot.runtime.wait_idle()
        deletes = [r for r in fake_sfox.requests("DELETE") if r.raw_path.endswith(f"/{user}")]
        assert len(deletes) == 1
        assert [e.kind for e in bot.store.events_for(record.id)].count("claimed") == 1


def test_the_messages_tab_does_not_publish_the_home(bot):
    import json
    import time

    payload = {
        "type": "event_callback",
        "team_id": "T1",
        "api_app_id": "A1",
        "event_id": "Ev9",
        "event_time": int(time.time()),
        "event": {"type": "app_home_opened", "user": BOB, "channel": "DUBOB", "tab": "messages"},
    }
    assert bot.driver.post(json.dumps(payload).encode(), "application/json").status_code == 200
    bot.runtime.wait_idle()
    assert bot.slack.home(BOB) is None
