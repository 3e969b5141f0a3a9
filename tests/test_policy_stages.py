"""The stage accounting of bot/policy/stages.py as pure functions: a person counts once in total,
assigned so that as many stages as possible are met; the requester never counts."""

from __future__ import annotations

from bot.policy import stages
from bot.policy.stages import Stage

COMPLIANCE = Stage(count=1, members=("S0COMPLIANCE",), name="Compliance")
LEADS = Stage(count=1, members=("UBOB", "UCAROL"), name="Support leads")


def test_a_person_in_two_stages_fills_the_one_still_needing_them():
    # Bob may fill both; Dave only Support leads. Bob approved first and took stage 0 …
    approvals = [("UBOB", (0, 1)), ("UDAVE", (1,))]
    assert stages.assign(approvals, [1, 1]) == {"UBOB": 0, "UDAVE": 1}
    # … and when Dave came first for leads, Bob fills compliance.
    assert stages.assign([("UDAVE", (1,)), ("UBOB", (0, 1))], [1, 1]) == {"UDAVE": 1, "UBOB": 0}
    # An augmenting path moves an earlier approval to the other stage it could fill.
    assert stages.assign([("UBOB", (1, 0)), ("UDAVE", (1,))], [1, 1]) == {"UBOB": 0, "UDAVE": 1}


def test_a_person_counts_once_in_total():
    progress = stages.progress([COMPLIANCE, LEADS], [("UBOB", (0, 1)), ("UBOB", (0, 1))], "UALICE")
    assert [p.filled_by for p in progress] == [("UBOB",), ()]
    assert not stages.all_met([COMPLIANCE, LEADS], [("UBOB", (0, 1))], "UALICE")


def test_the_requester_never_counts():
    assert not stages.all_met([LEADS], [("UBOB", (1, 0)), ("UBOB", (0,))], "UBOB")
    assert stages.stage_filled([COMPLIANCE, LEADS], [("UBOB", (0, 1))], "UBOB", "UBOB") is None
    assert stages.stage_filled([COMPLIANCE, LEADS], [("UBOB", (0, 1))], "UALICE", "UBOB") == 0


def test_surplus_approvals_fill_nothing_and_counts_need_distinct_people():
    two = Stage(count=2, members=("UBOB", "UCAROL", "UDAVE"))
    progress = stages.progress([two], [("UBOB", (0,)), ("UCAROL", (0,)), ("UDAVE", (0,))], "UALICE")
    assert progress[0].filled_by == ("UBOB", "UCAROL") and progress[0].met and progress[0].missing == 0
    assert stages.progress([two], [("UBOB", (0,))], "UALICE")[0].missing == 1


def test_stored_as_json_and_legacy_rows_read_as_one_stage():
    text = stages.dump_stages([COMPLIANCE, LEADS])
    assert stages.load_stages(text, 99) == (COMPLIANCE, LEADS)
    assert stages.load_stages(None, 2) == (Stage(count=2),)
    assert stages.load_eligible(None) == (0,)
    assert stages.load_eligible(stages.dump_eligible([1, 0])) == (0, 1)
    assert stages.total([COMPLIANCE, LEADS]) == 2


def test_labels():
    assert COMPLIANCE.label() == "Compliance"
    assert Stage(count=1, members=("S0X", "UBOB")).label() == "<!subteam^S0X>, <@UBOB>"
    assert Stage(count=1, members=("S0X", "UBOB")).plain_label() == "S0X, UBOB"
    assert LEADS.users == {"UBOB", "UCAROL"} and COMPLIANCE.groups == ("S0COMPLIANCE",)


def test_a_stage_name_is_escaped_for_slack():
    hostile = Stage(count=1, members=("UBOB",), name="<!channel> & co")
    assert hostile.label() == "&lt;!channel&gt; &amp; co" and hostile.plain_label() == "<!channel> & co"


def test_a_long_stage_is_said_briefly():
    many = Stage(count=1, members=tuple(f"U{i:04d}" for i in range(25)))
    assert many.label().endswith("<@U0009> and 15 more") and many.label().count("<@") == 10
