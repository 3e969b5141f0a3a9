"""Approvers given as a Slack user group (SFOX_APPROVER_GROUP), through the real fake Slack."""

from __future__ import annotations

import logging

import pytest

from bot.config import ConfigError, load_settings
from bot.policy.approvers import GroupApprovers
from bot.slack.calls import make_web_client
from tests.conftest import ALICE, BOT_TOKEN, MALLORY
from tests.helpers import open_request, wait_status

DAVE, ERIN = "UDAVE004", "UERIN005"
GROUP = "S0ADMINS"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def group_calls(fake_slack) -> int:
    return sum(1 for method, _ in fake_slack.calls if method == "usergroups.users.list")


def test_group_members_request_and_approve_end_to_end(make_bot, fake_slack):
    fake_slack.usergroups[GROUP] = [DAVE, ERIN]
    bot = make_bot(SFOX_APPROVER_GROUP=GROUP, SFOX_APPROVERS=ALICE)
    record, card = open_request(bot, DAVE, "client_1 offboarding")
    assert record.requested_by == DAVE
    bot.driver.click(ERIN, "sfox_approve", str(record.id), card.ts)
    wait_status(bot, record.id, "succeeded")
    assert bot.sfox.deletes["client_1"] == 1
    # The fixed list still counts alongside the group (union).
    record2, card2 = open_request(bot, ALICE, "client_3")
    bot.driver.click(DAVE, "sfox_approve", str(record2.id), card2.ts)
    wait_status(bot, record2.id, "succeeded")
    # Asked once for all of it: the membership is cached.
    assert group_calls(fake_slack) == 1


def test_non_member_is_refused_and_nothing_happens(make_bot, fake_slack):
    fake_slack.usergroups[GROUP] = [DAVE]
    bot = make_bot(SFOX_APPROVER_GROUP=GROUP, SFOX_APPROVERS="")
    response = bot.driver.command(MALLORY, "client_1")
    assert "not on the sFOX approver list" in response.json()["text"]
    assert bot.slack.cards() == []
    assert bot.sfox.requests() == []


def test_slack_failure_fails_closed_and_is_logged(make_bot, fake_slack, caplog):
    fake_slack.usergroups[GROUP] = [DAVE]
    fake_slack.fail("usergroups.users.list", "missing_scope")
    bot = make_bot(SFOX_APPROVER_GROUP=GROUP, SFOX_APPROVERS=ALICE)
    with caplog.at_level(logging.WARNING, logger="sfox_bot.approvers"):
        response = bot.driver.command(DAVE, "client_1")
    # Issue 13: an outage is said as such, not as "you are not on the list".
    assert "cannot read the approver group" in response.json()["text"]
    assert "not on the sFOX approver list" not in response.json()["text"]
    assert bot.slack.cards() == [] and bot.sfox.requests() == []
    warned = [r for r in caplog.records if r.name == "sfox_bot.approvers"]
    assert warned and warned[0].slack_error == "missing_scope"
    assert warned[0].usergroup == GROUP
    # Fixed approvers are unaffected by the group outage.
    record, _ = open_request(bot, ALICE, "client_1")
    assert record.status == "pending"


def test_cache_expires_and_a_removed_member_loses_the_right(fake_slack):
    fake_slack.usergroups[GROUP] = [DAVE, ERIN]
    clock = Clock()
    approvers = GroupApprovers(make_web_client(BOT_TOKEN, fake_slack.api_url), GROUP, ttl=60, clock=clock)
    assert DAVE in approvers and ERIN in approvers and MALLORY not in approvers
    assert group_calls(fake_slack) == 1
    fake_slack.usergroups[GROUP] = [DAVE]
    clock.now += 59
    assert ERIN in approvers  # still within the cache lifetime
    assert group_calls(fake_slack) == 1
    clock.now += 2
    assert ERIN not in approvers
    assert DAVE in approvers
    assert group_calls(fake_slack) == 2


@pytest.mark.parametrize(
    "failure",
    [
        {"error": "ratelimited", "status": 429},
        {"error": None, "status": 500},
        {"error": "no_such_subteam", "status": 200},
    ],
)
def test_every_kind_of_failure_fails_closed_then_recovers(fake_slack, failure):
    fake_slack.usergroups[GROUP] = [DAVE]
    fake_slack.fail("usergroups.users.list", failure["error"], status=failure["status"], times=5)
    clock = Clock()
    client = make_web_client(BOT_TOKEN, fake_slack.api_url)
    client.retry_handlers.clear()
    approvers = GroupApprovers(client, GROUP, fixed=[ALICE], failure_ttl=5, clock=clock)
    assert DAVE not in approvers
    assert ALICE in approvers
    calls = group_calls(fake_slack)
    assert DAVE not in approvers  # failure cached briefly: no new call
    assert group_calls(fake_slack) == calls
    fake_slack.faults.clear()
    clock.now += 6
    assert DAVE in approvers


def test_unreachable_slack_fails_closed(fake_slack):
    client = make_web_client(BOT_TOKEN, "http://127.0.0.1:9/api/", timeout=1)
    client.retry_handlers.clear()
    assert DAVE not in GroupApprovers(client, GROUP)


def test_group_setting_is_validated_and_enough_for_run():
    base = {"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "s", "SFOX_API_KEY": "k"}
    load_settings({**base, "SFOX_APPROVER_GROUP": GROUP}).require_for_run()
    with pytest.raises(ConfigError) as err:
        load_settings({**base, "SFOX_APPROVER_GROUP": "admins"})
    assert err.value.setting == "SFOX_APPROVER_GROUP"
    with pytest.raises(ConfigError) as err:
        load_settings(base).require_for_run()
    assert err.value.setting == "SFOX_APPROVERS"
