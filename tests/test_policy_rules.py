"""The rules of bot/policy/rules.py as pure functions: what they refuse (typed), what they count."""

from __future__ import annotations

from dataclasses import dataclass

from bot.policy import reasons, rules
from bot.policy.rules import Policy, Refused, Step, Subject
from tests.conftest import ALICE, APPROVERS, BOB, CAROL, MALLORY


@dataclass(frozen=True)
class Item:
    requested_by: str = ALICE
    approved_by: tuple[str, ...] = ()
    required_approvals: int = 2
    stages: str | None = None
    approval_stages: tuple[tuple[int, ...] | None, ...] = ()


class Unreadable:
    """Stands in for nothing: only a GroupApprovers reports an outage."""

    unreadable = "missing_scope"

    def __contains__(self, _user: object) -> bool:
        return False


def test_who_may_ask_channel_first_then_approvers():
    policy = Policy(approvers={ALICE}, allowed_channels=frozenset({"C0ALLOWED"}))
    assert rules.ask_refusal(policy, ALICE, "C0ALLOWED") is None
    assert rules.ask_refusal(policy, ALICE, "C0OTHER").kind is Refused.CHANNEL
    refusal = rules.ask_refusal(policy, MALLORY, "C0ALLOWED")
    assert refusal.kind is Refused.NOT_APPROVER
    assert refusal.text.endswith("so you cannot request deactivations.")


def test_each_step_names_what_was_refused():
    assert rules.approver_refusal({ALICE}, ALICE, Step.DECIDE) is None
    texts = {step: rules.approver_refusal({ALICE}, MALLORY, step).text for step in Step}
    assert texts[Step.DECIDE].endswith("so you cannot approve or deny.")
    assert texts[Step.CHANGE_BATCH].endswith("so you cannot change a batch.")
    assert texts[Step.RETRY] == ":no_entry: Only sFOX approvers can retry a deactivation."
    assert texts[Step.READ] == ":no_entry: Only sFOX approvers can see deactivation requests."
    # Only a real group can be unreadable; any other container is just a list.
    assert rules.approver_refusal(Unreadable(), MALLORY, Step.APPROVE).kind is Refused.NOT_APPROVER


def test_never_the_requester():
    item = Item()
    assert rules.own_approval_refusal(item, ALICE, Subject.BATCH).kind is Refused.OWN_REQUEST
    assert "this batch" in rules.own_approval_refusal(item, ALICE, Subject.BATCH).text
    assert rules.own_approval_refusal(item, BOB, Subject.REQUEST) is None
    assert rules.own_retry_refusal(item, ALICE).kind is Refused.OWN_REQUEST
    assert rules.own_retry_refusal(item, BOB) is None
    assert not rules.awaits(item, ALICE) and rules.awaits(item, BOB)
    assert not rules.awaits(Item(approved_by=(BOB,)), BOB)


def test_the_quorum_never_counts_the_requester():
    item = Item(approved_by=(ALICE, BOB), required_approvals=2)
    assert rules.counted_approvals(item) == (BOB,)
    assert rules.approvals_missing(item) == 1
    assert rules.tally(item) == "1 of 2 approvals"
    assert rules.tally(item, short=True) == "1/2 approvals"
    assert rules.approvals_wanted(item) == "1 approval(s)"
    assert rules.still_needed(1) == "Approval recorded. 1 more approval(s) needed."
    assert rules.approvals_missing(Item(approved_by=(BOB, CAROL), required_approvals=1)) == 0


def test_the_reason_rules():
    assert reasons.clean_reason("  left\n the\tcompany ") == "left the company"
    assert reasons.clean_reason(None) == ""
    assert reasons.reason_refusal("x" * reasons.MAX_REASON) is None
    refusal = reasons.reason_refusal("x" * (reasons.MAX_REASON + 1))
    assert refusal.kind is Refused.REASON_TOO_LONG
    assert refusal.text == ":warning: The reason is too long (501 characters; at most 500)."
    assert reasons.reason_field_error() == "At most 500 characters, please."


def test_a_reason_is_required_only_where_the_policy_says_so():
    optional, required = Policy(approvers=APPROVERS), Policy(approvers=APPROVERS, require_reason=True)
    assert reasons.missing_reason_refusal(optional, "") is None
    assert reasons.missing_reason_refusal(required, "left the company") is None
    refusal = reasons.missing_reason_refusal(required, "")
    assert refusal is not None and refusal.kind is Refused.REASON_MISSING
    assert "A reason is required here (SFOX_REQUIRE_REASON)" in refusal.text


def test_stages_a_request_was_asked_under_decide_which_an_approval_may_fill():
    from bot.policy.stages import Stage, dump_stages

    stages = dump_stages(
        [Stage(count=1, members=("S0GONE",), name="Compliance"), Stage(count=1, members=(BOB,))]
    )
    item = Item(stages=stages, required_approvals=2)
    # No directory (the bot now runs without the file): the group adds nobody, and nothing breaks.
    policy = Policy(approvers={BOB, CAROL})
    assert rules.stages_open_to(policy, item, BOB) == ((1,), None)
    eligible, refusal = rules.stages_open_to(policy, item, CAROL)
    assert eligible == () and refusal.kind is Refused.NOT_IN_STAGE and "Compliance" in refusal.text
    # A stage of every approver (asked before stages) is every approver of the policy now.
    assert rules.stages_open_to(policy, Item(), CAROL) == ((0,), None)


def test_maker_checker_refusals_are_typed():
    from bot.policy.stages import Stage

    policy = Policy(approvers={BOB}, requesters={ALICE}, stages=(Stage(count=1, members=(BOB,)),))
    assert rules.ask_refusal(policy, ALICE, "C0") is None
    assert rules.ask_refusal(policy, BOB, "C0").kind is Refused.APPROVER_ONLY
    assert rules.ask_refusal(policy, MALLORY, "C0").kind is Refused.NOT_REQUESTER
    assert rules.decide_refusal(policy, ALICE, Step.APPROVE).kind is Refused.REQUESTER_ONLY
    assert rules.decide_refusal(policy, ALICE, Step.DENY, Item(requested_by=ALICE)) is None  # a cancel
    assert rules.decide_refusal(policy, MALLORY, Step.DENY).kind is Refused.NOT_APPROVER
    assert rules.decide_refusal(policy, BOB, Step.APPROVE) is None
    assert policy.total_approvals == 1
