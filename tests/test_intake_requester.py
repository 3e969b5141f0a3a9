"""Issue 32, part 7: an intake request may name the Slack user it acts for (`slack_user_id`);
that person is the request's requester for the two-person rule, so they can never approve it,
and the policy's `intake: {require_slack_user: true}` (SFOX_INTAKE_REQUIRE_SLACK_USER without a
policy file) makes the field required. Through real HTTP: signed intake POSTs, the card in the
fake Slack, signed Approve clicks, the DELETEs on the fake sFOX."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conftest import ALICE, BOB, CAROL
from tests.helpers import card_text, wait_status, wait_until
from tests.test_approval_policy import answer_to
from tests.test_intake import INTAKE, ask, post, recorded


@pytest.fixture
def intake_bot(make_bot: Any, fake_sfox: Any) -> Any:
    fake_sfox.add_user("acct_intake_1")
    return make_bot(**INTAKE)


def test_the_slack_user_named_cannot_approve_it_and_another_approver_can(intake_bot):
    bot = intake_bot
    response = post(bot, ask(slack_user_id=ALICE))  # Alice, an approver, asks through the back office
    assert response.status_code == 202, response.text
    record = bot.store.get(response.json()["request_id"])
    assert record.requested_by == ALICE and record.requested_via == "backoffice"
    card = bot.slack.wait_for(lambda: bot.slack.cards() or None)[0]
    shown = card_text(card)
    assert f"<@{ALICE}> via backoffice" in shown
    assert f"not <@{ALICE}>" in shown and "Any approver may approve" not in shown
    own = bot.driver.click(ALICE, "sfox_approve", str(record.id), card.ts)
    assert "You requested this deactivation, so you cannot approve it" in answer_to(bot, own)
    assert bot.store.get(record.id).status == "pending" and bot.sfox.deletes == {}
    bot.driver.click(BOB, "sfox_approve", str(record.id), card.ts)
    done = wait_status(bot, record.id, "succeeded")
    assert done.approved_by == (BOB,) and bot.sfox.deletes == {"acct_intake_1": 1}
    requested = next(e for e in bot.store.events_for(record.id) if e.kind == "requested")
    assert requested.actor == ALICE and json.loads(requested.detail)["via"] == "backoffice"
    bot.runtime.workflow.deliver()
    # The person is told in the card's thread, as any requester; no DM: the system is called back.
    wait_until(lambda: any(f"<@{ALICE}>" in m.text for m in bot.slack.thread(card.ts)))
    assert not [m for m, _ in bot.slack.calls if m == "conversations.open"]


def test_with_two_approvals_the_named_person_never_counts(make_bot, fake_sfox):
    fake_sfox.add_user("acct_intake_1")
    bot = make_bot(**INTAKE, SFOX_REQUIRED_APPROVALS="2")
    record = bot.store.get(post(bot, ask(slack_user_id=CAROL)).json()["request_id"])
    card = bot.slack.wait_for(lambda: bot.slack.cards() or None)[0]
    bot.driver.click(CAROL, "sfox_approve", str(record.id), card.ts)
    bot.driver.click(BOB, "sfox_approve", str(record.id), card.ts)
    assert bot.store.get(record.id).status == "pending" and bot.sfox.deletes == {}
    bot.driver.click(ALICE, "sfox_approve", str(record.id), card.ts)
    assert set(wait_status(bot, record.id, "succeeded").approved_by) == {ALICE, BOB}


@pytest.mark.parametrize("value", ["alice", "C0CHANNEL1", 42, "", f"{ALICE}\n", f"<@{ALICE}>", "ualice01"])
def test_a_bad_slack_user_id_is_400_naming_the_field_and_records_nothing(intake_bot, value):
    response = post(intake_bot, ask(slack_user_id=value))
    assert response.status_code == 400, response.text
    assert response.json()["error"].startswith("slack_user_id: ")
    assert recorded(intake_bot) == (0, 0, 0)


POLICY = """\
approvals:
  - from: [UALICE01, UBOB0002, UCAROL03]
    count: 1
intake:
  require_slack_user: true
"""


def _required(bot: Any) -> None:
    missing = post(bot, ask())
    assert missing.status_code == 400
    assert missing.json()["error"].startswith("slack_user_id: required")
    assert recorded(bot) == (0, 0, 0)
    assert post(bot, ask(slack_user_id=BOB)).status_code == 202


def test_the_policy_file_s_require_slack_user_makes_it_required(make_bot, fake_sfox, tmp_path):
    fake_sfox.add_user("acct_intake_1")
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY)
    _required(make_bot(**INTAKE, SFOX_APPROVERS="", SFOX_POLICY_FILE=str(path)))


def test_without_a_policy_file_the_setting_makes_it_required(make_bot, fake_sfox):
    fake_sfox.add_user("acct_intake_1")
    _required(make_bot(**INTAKE, SFOX_INTAKE_REQUIRE_SLACK_USER="true"))


def test_without_the_option_a_body_without_it_is_asked_by_the_system_as_before(intake_bot):
    response = post(intake_bot, ask())
    assert response.status_code == 202
    record = intake_bot.store.get(response.json()["request_id"])
    assert record.requested_by == "intake-api" and record.requested_via == "backoffice"
