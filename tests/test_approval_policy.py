"""Issue 18, the policy: SFOX_POLICY_FILE's requesters and stages through real HTTP (the fake
Slack's user groups, signed commands and clicks, the fake sFOX's DELETEs)."""

from __future__ import annotations

import json
from functools import partial

from bot.slack.batch_card import BATCH_APPROVE
from tests.conftest import BOB, CAROL, MALLORY
from tests.helpers import card_text, open_request, wait_status, wait_until
from tests.mfa_support import MFA_KEY, approve_modal, code, enrol
from tests.test_batches import add_users, ask, batch_id_of
from tests.threads import run_concurrently

HELP1, HELP2, DAVE = "UHELP001", "UHELP002", "UDAVE004"
COMPLIANCE, HELPDESK = "S0COMPLIANCE", "S0HELPDESK"

POLICY = f"""\
# who may ask, and the two stages every request must meet
requesters: [{HELP1}, {HELPDESK}]
approvals:
  - from: [{COMPLIANCE}]
    count: 1
    name: Compliance
  - from: [{BOB}, {CAROL}]
    count: 1
    name: Support leads
"""


def policy_bot(make_bot, fake_slack, tmp_path, text=POLICY, **overrides):
    fake_slack.usergroups[COMPLIANCE] = [BOB, DAVE]  # Bob is in both stages
    fake_slack.usergroups[HELPDESK] = [HELP2]
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    return make_bot(SFOX_APPROVERS="", SFOX_POLICY_FILE=str(path), **overrides)


def answer_to(bot, response):
    return bot.driver.ephemeral_for(response.extensions["response_name"])[0]


def approved_stages(bot, request_id):
    return {
        e.actor: json.loads(e.detail).get("stage")
        for e in bot.store.events_for(request_id)
        if e.kind == "approved"
    }


def test_a_person_in_two_stages_counts_once_and_fills_whichever_still_needs_them(
    make_bot, fake_slack, fake_sfox, tmp_path
):
    # On both engines (database_url): the claim's stage check reads the approvals in its own
    # transaction.
    bot = policy_bot(make_bot, fake_slack, tmp_path)
    record, card = open_request(bot, HELP1, "client_1 offboarding")
    shown = card_text(card)
    assert "Compliance 0 of 1 · Support leads 0 of 1" in shown
    assert "*Compliance* (<!subteam^S0COMPLIANCE>)" in shown and f"<@{CAROL}>" in shown
    # Bob may fill either stage; his one approval fills one (Compliance, the first he can).
    first = bot.driver.click(BOB, "sfox_approve", str(record.id), card.ts)
    assert "1 more approval(s) needed" in answer_to(bot, first)
    assert approved_stages(bot, record.id) == {BOB: "Compliance"}
    again = bot.driver.click(BOB, "sfox_approve", str(record.id), card.ts)
    assert "already approved" in answer_to(bot, again)
    current = bot.store.get(record.id)
    assert current.status == "pending" and fake_sfox.deletes == {}
    message = wait_until(
        lambda: (m := bot.slack.message(card.ts)) and "Compliance 1 of 1" in card_text(m) and m
    )
    assert f"Compliance 1 of 1: <@{BOB}> · Support leads 0 of 1" in card_text(message)
    # Dave can fill only Compliance: Bob moves to Support leads, and every stage is met.
    bot.driver.click(DAVE, "sfox_approve", str(record.id), card.ts)
    wait_status(bot, record.id, "succeeded")
    assert fake_sfox.deletes == {"client_1": 1}
    assert approved_stages(bot, record.id) == {BOB: "Compliance", DAVE: "Compliance"}
    assert [e.kind for e in bot.store.events_for(record.id)].count("claimed") == 1


def test_one_stage_met_twice_is_not_enough(make_bot, fake_slack, fake_sfox, tmp_path):
    bot = policy_bot(make_bot, fake_slack, tmp_path)
    fake_slack.usergroups[COMPLIANCE] = [DAVE, "UERIN005"]
    record, card = open_request(bot, HELP1, "client_1")
    first = bot.driver.click(DAVE, "sfox_approve", str(record.id), card.ts)
    # Clicks run after their acks, in any order: Dave's is counted before Erin clicks.
    assert "1 more approval(s) needed" in answer_to(bot, first)
    second = bot.driver.click("UERIN005", "sfox_approve", str(record.id), card.ts)
    text = answer_to(bot, second)
    assert "1 more approval(s) needed" in text and "Still waiting for: Support leads (1)" in text
    assert approved_stages(bot, record.id) == {DAVE: "Compliance", "UERIN005": None}
    assert bot.store.get(record.id).status == "pending" and fake_sfox.deletes == {}
    bot.driver.click(CAROL, "sfox_approve", str(record.id), card.ts)
    wait_status(bot, record.id, "succeeded")
    assert fake_sfox.deletes == {"client_1": 1}


def test_requester_only_and_approver_only_people_are_refused_clearly(
    make_bot, fake_slack, fake_sfox, tmp_path
):
    bot = policy_bot(make_bot, fake_slack, tmp_path)
    # A stage member who is not a requester may not ask (maker-checker) …
    text = bot.driver.command(CAROL, "client_1").json()["text"]
    assert "not a requester" in text and "keeps the people who ask apart" in text
    # … nor a stranger; the group's member may.
    assert "not on the sFOX requester list" in bot.driver.command(MALLORY, "client_1").json()["text"]
    assert bot.slack.cards() == []
    record, card = open_request(bot, HELP2, "client_1")  # through the helpdesk group
    # A requester in no stage may not approve someone else's request …
    refused = bot.driver.click(HELP1, "sfox_approve", str(record.id), card.ts)
    assert "in no approval stage, so you cannot approve or deny" in answer_to(bot, refused)
    # … nor their own (the two-person rule); a stranger neither.
    own = bot.driver.click(HELP2, "sfox_approve", str(record.id), card.ts)
    assert "cannot approve it" in answer_to(bot, own)
    outsider = bot.driver.click(MALLORY, "sfox_approve", str(record.id), card.ts)
    assert "not on the sFOX approver list" in answer_to(bot, outsider)
    assert bot.store.get(record.id).approved_by == ()
    # The requester's own Deny is a cancel, though they are in no stage.
    bot.driver.click(HELP2, "sfox_deny", str(record.id), card.ts)
    cancelled = wait_status(bot, record.id, "denied")
    assert cancelled.denied_by == HELP2
    reply = wait_until(lambda: bot.slack.thread(card.ts))[0]
    assert "cancelled this request" in reply.text
    assert fake_sfox.deletes == {}


def test_any_stage_member_may_deny(make_bot, fake_slack, fake_sfox, tmp_path):
    bot = policy_bot(make_bot, fake_slack, tmp_path)
    record, card = open_request(bot, HELP1, "client_1")
    bot.driver.click(DAVE, "sfox_deny", str(record.id), card.ts)  # Dave: only through the group
    assert wait_status(bot, record.id, "denied").denied_by == DAVE


def test_a_batch_under_the_policy(make_bot, fake_slack, fake_sfox, tmp_path):
    bot = policy_bot(make_bot, fake_slack, tmp_path, SFOX_BALANCE_CHECK="off")
    ids = add_users(fake_sfox, 3)
    answer = bot.driver.command(CAROL, "batch " + ",".join(ids)).json()["text"]
    assert "not a requester" in answer
    _answer, card, _ = ask(bot, HELP1, "batch " + ",".join(ids) + " cohort closed")
    bid = str(batch_id_of(card))
    assert "Compliance 0 of 1 · Support leads 0 of 1" in card_text(card)
    helper = bot.driver.click(HELP2, BATCH_APPROVE, bid, card.ts)
    assert "in no approval stage" in answer_to(bot, helper)
    first = bot.driver.click(CAROL, BATCH_APPROVE, bid, card.ts)
    assert "Still waiting for: Compliance (1)" in answer_to(bot, first)
    assert fake_sfox.deletes == {}
    bot.driver.click(BOB, BATCH_APPROVE, bid, card.ts)  # Bob fills Compliance: both met
    rows = wait_until(
        lambda: (
            (rs := list(bot.store.history(limit=None, batch_id=int(bid))))
            and all(r.status == "succeeded" for r in rs)
            and rs
        ),
        timeout=30,
    )
    assert fake_sfox.deletes == dict.fromkeys(ids, 1)
    for row in rows:
        assert approved_stages(bot, row.id) == {CAROL: "Support leads", BOB: "Compliance"}


def test_concurrent_approvals_with_stages_send_one_delete(make_bot, fake_slack, fake_sfox, tmp_path):
    bot = policy_bot(make_bot, fake_slack, tmp_path)
    fake_slack.usergroups[COMPLIANCE] = [BOB, DAVE, "UERIN005"]
    record, card = open_request(bot, HELP1, "client_1")
    users = (BOB, CAROL, DAVE, "UERIN005")
    clicks = run_concurrently(
        [partial(bot.driver.click, u, "sfox_approve", str(record.id), card.ts) for u in users]
    )
    assert [c.status_code for c in clicks] == [200] * 4
    wait_status(bot, record.id, "succeeded")
    assert bot.runtime.wait_idle()
    # Each click has its answer: an approval recorded (and said so, or it was the one that
    # met every stage and claimed), or "changed nothing" for one that came after the claim.
    approved = set(bot.store.get(record.id).approved_by)
    (claimer,) = [e.actor for e in bot.store.events_for(record.id) if e.kind == "claimed"]
    assert claimer in approved
    for user, click in zip(users, clicks, strict=True):
        said = " ".join(
            e["text"]
            for e in list(bot.slack.ephemeral)
            if e["response_url"] == click.extensions["response_name"]
        )
        if user not in approved:
            assert "changed nothing" in said, (user, said)
        elif user != claimer:
            # Recorded with stages still open ("Approval recorded …"), or recorded just as
            # another click met the last stage ("Your approval was recorded; … already being
            # deactivated").
            assert "approval recorded" in said.lower() or "approval was recorded" in said, (user, said)
    assert fake_sfox.deletes == {"client_1": 1}
    assert [e.kind for e in bot.store.events_for(record.id)].count("claimed") == 1


def test_the_old_settings_still_work_as_one_stage(make_bot, fake_slack, fake_sfox):
    bot = make_bot(SFOX_REQUIRED_APPROVALS="2")
    record, card = open_request(bot, "UALICE01", "client_1")
    assert "0 of 2 approvals" in card_text(card) and "A second admin" in card_text(card)
    bot.driver.click(BOB, "sfox_approve", str(record.id), card.ts)
    assert bot.store.get(record.id).status == "pending"
    bot.driver.click(CAROL, "sfox_approve", str(record.id), card.ts)
    wait_status(bot, record.id, "succeeded")
    assert json.loads(bot.store.get(record.id).stages) == [{"count": 2, "from": [], "name": None}]


def test_the_app_home_shows_each_stage_to_those_who_may_fill_one(make_bot, fake_slack, fake_sfox, tmp_path):
    from bot.slack.home import HOME_APPROVE
    from tests.test_home import home_buttons, home_text, opened_home

    bot = policy_bot(make_bot, fake_slack, tmp_path)
    record, _card = open_request(bot, HELP1, "client_1")
    view = opened_home(bot, DAVE)  # in Compliance, through the group
    assert (HOME_APPROVE, str(record.id)) in home_buttons(view)
    assert "Compliance 0 of 1 · Support leads 0 of 1" in home_text(view)
    # The requester is in no stage: no approver's view, and the groups are named as approvers.
    other = home_text(opened_home(bot, HELP1))
    assert "Waiting for you" not in other and "<!subteam^S0COMPLIANCE>" in other


def test_the_reminder_names_who_can_still_meet_the_stages_left(make_bot, fake_slack, fake_sfox, tmp_path):
    bot = policy_bot(make_bot, fake_slack, tmp_path, SFOX_REMIND_AFTER_FRACTION="0")
    record, card = open_request(bot, HELP1, "client_1")
    bot.driver.click(BOB, "sfox_approve", str(record.id), card.ts)  # Bob fills Compliance
    wait_until(lambda: bot.store.get(record.id).approved_by == (BOB,))
    assert bot.runtime.sweep()["reminded"] == 1
    reminder = wait_until(lambda: [m for m in bot.slack.thread(card.ts) if "Reminder" in m.text])[0]
    assert "still needs 1 approval(s)" in reminder.text
    assert f"<@{CAROL}>: please approve" in reminder.text and "S0COMPLIANCE" not in reminder.text


def test_status_and_list_show_each_stage(make_bot, fake_slack, fake_sfox, tmp_path):
    bot = policy_bot(make_bot, fake_slack, tmp_path)
    record, card = open_request(bot, HELP1, "client_1")
    bot.driver.click(CAROL, "sfox_approve", str(record.id), card.ts)
    wait_until(lambda: bot.store.get(record.id).approved_by == (CAROL,))
    status = bot.driver.command(DAVE, f"status {record.id}").json()["text"]
    assert f"Compliance 0 of 1 · Support leads 1 of 1: <@{CAROL}>" in status
    listing = bot.driver.command(BOB, "list").json()["text"]
    assert "Compliance 0/1 · Support leads 1/1" in listing


def test_a_requester_in_no_stage_sees_their_own_requests_on_the_home(
    make_bot, fake_slack, fake_sfox, tmp_path
):
    from tests.test_home import home_buttons, home_text, opened_home

    bot = policy_bot(make_bot, fake_slack, tmp_path)
    record, _card = open_request(bot, HELP1, "client_1")
    view = opened_home(bot, HELP1)
    text = home_text(view)
    assert "Your open requests" in text and f"#{record.id}" in text and "Waiting for you" not in text
    assert home_buttons(view) == []


def test_the_files_step_up_asks_every_stage_for_a_code(make_bot, fake_slack, fake_sfox, tmp_path):
    """`step_up: totp` in the file is the same second factor as SFOX_STEP_UP=totp: each stage's
    approval counts only with a code, and its audit event says both the stage and the factor."""
    bot = policy_bot(make_bot, fake_slack, tmp_path, POLICY + "step_up: totp\n", SFOX_MFA_KEY=MFA_KEY)
    secrets = {user: enrol(bot, user) for user in (DAVE, CAROL)}
    record, card = open_request(bot, HELP1, "client_1 two stages, two codes")
    plain = bot.driver.click(DAVE, "sfox_approve", str(record.id), card.ts, confirm=False)
    assert plain.status_code == 200  # opens the code modal: nothing counted yet
    assert bot.store.get(record.id).approved_by == ()
    for user in (DAVE, CAROL):
        modal, _ = approve_modal(bot, user, record.id, card.ts)
        submitted = bot.driver.submit_view(user, modal, {"code": code(secrets[user], bot, 1)})
        assert submitted.status_code == 200, submitted.text
    wait_status(bot, record.id, "succeeded")
    assert len(fake_sfox.requests("DELETE")) == 1
    details = {e.actor: json.loads(e.detail) for e in bot.store.events_for(record.id) if e.kind == "approved"}
    assert details[DAVE] == {"stage": "Compliance", "stage_index": 0, "step_up": "totp"}
    assert details[CAROL] == {"stage": "Support leads", "stage_index": 1, "step_up": "totp"}


def test_no_code_is_asked_of_someone_outside_the_stages_a_request_was_asked_under(
    make_bot, fake_slack, fake_sfox, tmp_path, database_url
):
    """The file was edited (and the bot restarted) after a request was asked: Dave now approves
    under the new file, but is in none of the request's stages. No code could make his approval
    count, so Approve opens no modal and he is told why."""
    before = POLICY + "step_up: totp\n"
    first = policy_bot(make_bot, fake_slack, tmp_path, before, SFOX_MFA_KEY=MFA_KEY)
    fake_slack.usergroups[COMPLIANCE] = [BOB]  # Dave is in no stage of the request
    record, card = open_request(first, HELP1, "client_1 asked before the edit")
    first.stop()
    after = before.replace(f"from: [{BOB}, {CAROL}]", f"from: [{BOB}, {CAROL}, {DAVE}]")
    (tmp_path / "policy.yaml").write_text(after)
    bot = make_bot(SFOX_APPROVERS="", SFOX_POLICY_FILE=str(tmp_path / "policy.yaml"), SFOX_MFA_KEY=MFA_KEY)
    enrol(bot, DAVE)
    click = bot.driver.click(DAVE, "sfox_approve", str(record.id), card.ts, confirm=False)
    assert bot.driver.modal_for(click.extensions["response_name"]) is None
    assert "none of the approval stages this was asked under" in answer_to(bot, click)
    assert bot.store.get(record.id).approved_by == ()
