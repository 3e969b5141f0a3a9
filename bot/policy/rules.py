"""The approval rules, and the words they are said in: the one place they are written.

Single requests, batches, the App Home, the subcommands, the reminders and the cards all ask
these functions, so a rule (or its wording) cannot drift between entry points:

- who may ask: a requester (the policy's `requesters`; without them every approver), in an allowed
  channel (`ask_refusal`); an approver who is not a requester is told the policy keeps them apart;
- who may approve, deny, retry, change a batch or read requests: a person in any stage of the
  policy (`approver_refusal`, `decide_refusal`: a requester in no stage is told so, and may still
  Deny, i.e. cancel, their own request); while Slack cannot tell us who is in a group the refusal
  says so (we cannot know);
- which stages an approval may fill: the stages the request was asked under, read live
  (`stages_open_to`); a person in none of them is refused (`Refused.NOT_IN_STAGE`);
- never the requester: their own approval (or retry) is refused (`own_approval_refusal`,
  `own_retry_refusal`) and never counted (`counted_approvals`; the store's claims exclude it in SQL
  too: `approvals_by_others` in bot/store/deciding.py);
- the quorum: every stage met, a person counting once (`stage_progress`, `quorum_met` in
  bot/policy/quorum.py; the matching in bot/policy/stages.py), and its wording (`approvals_missing`, `still_needed_for`,
  `approvals_wanted`, `tally`, `who_may_approve`);
- the second factor: with step-up on, an approval counts only when it came with a valid code
  (`step_up_refusal` in bot/policy/step_up.py; the code itself is checked in bot/mfa/stepup.py);
- who may start or stop a watch (issue 19): its requester or any approver (`watch_refusal`);
- the reason's rules: bot/policy/reasons.py.

Pure: no I/O beyond asking the approver container (which may read the group from Slack, cached).
A refusal is a typed `Refusal` (its kind to branch on, its text to show), never matched on text.
"""

from __future__ import annotations

from collections.abc import Container
from dataclasses import dataclass
from datetime import timedelta
from enum import Enum

from bot.policy import stages as staging
from bot.policy.approvers import GroupDirectory, People
from bot.policy.quorum import Approvable, is_staged, item_stages, stage_progress
from bot.policy.stages import Stage
from bot.slack.ids import SLACK_USER_ID

STEP_UPS = ("none", "totp")


@dataclass(frozen=True)
class Policy:
    """The rules' settings: who asks, who approves in which stages, for how long a request may
    wait, where one may be asked, and the second factor on Approve."""

    # Every person in any stage: who may approve, deny, retry, change a batch, read requests.
    approvers: Container[str]
    # Without `stages`: one stage of every approver, this many (SFOX_REQUIRED_APPROVALS).
    required_approvals: int = 1
    ttl: timedelta = timedelta(hours=1)
    allowed_channels: frozenset[str] = frozenset()
    # SFOX_REQUIRE_REASON: a request without a reason is refused before anything is posted.
    require_reason: bool = False
    # An `executing` claim older than this belongs to a process that died (the sFOX call is
    # bounded by its timeout, so a live process always finishes well inside it).
    claim_lease: timedelta = timedelta(seconds=45)
    # SFOX_POLICY_FILE's stages (bot/policy/policy_file.py); empty: the one stage above.
    stages: tuple[Stage, ...] = ()
    # Who may ask; None: every approver.
    requesters: Container[str] | None = None
    # The second factor on Approve (issue 18): "none", or "totp" (an approval counts only with a
    # valid code from the approver's authenticator; bot/policy/step_up.py). Set from SFOX_STEP_UP or
    # the policy file's `step_up:`.
    step_up: str = "none"
    # How far ahead `--at` may schedule a deactivation (SFOX_SCHEDULE_MAX_DAYS; bot/policy/when.py).
    schedule_horizon: timedelta = timedelta(days=90)
    # How long after a request failed its Retry may be pressed (SFOX_RETRY_WINDOW_HOURS;
    # bot/policy/retrying.py).
    retry_window: timedelta = timedelta(hours=24)
    # Reads the user groups the stages name (bot/policy/approvers.py); None: no groups.
    directory: GroupDirectory | None = None
    # Issue 32: an intake API request must name the Slack user it acts for (`slack_user_id`, its
    # requester, who never approves it). The policy file's `intake: {require_slack_user: …}`, or
    # SFOX_INTAKE_REQUIRE_SLACK_USER without a file; checked in bot/intake/body.py.
    intake_require_slack_user: bool = False

    def __post_init__(self) -> None:
        if self.step_up not in STEP_UPS:
            raise ValueError(f"step_up must be one of {STEP_UPS}, got {self.step_up!r}")

    def effective_stages(self) -> tuple[Stage, ...]:
        """The stages a new request or batch is asked under (stored with it)."""
        return self.stages or (Stage(count=self.required_approvals),)

    @property
    def total_approvals(self) -> int:
        """Approvals needed in all (the sum of the stages' counts; the claim's SQL guard)."""
        return staging.total(self.effective_stages())


class Refused(Enum):
    """Why a step was refused, for callers that branch on it."""

    CHANNEL = "channel"
    NOT_APPROVER = "not_approver"
    # Maker-checker (SFOX_POLICY_FILE): an approver who is not a requester may not ask; a requester
    # in no stage may not approve; a person in none of the stages a request was asked under.
    NOT_REQUESTER = "not_requester"
    APPROVER_ONLY = "approver_only"
    REQUESTER_ONLY = "requester_only"
    NOT_IN_STAGE = "not_in_stage"
    GROUP_UNREADABLE = "group_unreadable"
    OWN_REQUEST = "own_request"
    REASON_TOO_LONG = "reason_too_long"
    REASON_MISSING = "reason_missing"
    STEP_UP_NEEDED = "step_up_needed"
    # Retry (bot/policy/retrying.py): the request failed too long ago, or a newer one exists.
    RETRY_TOO_OLD = "retry_too_old"
    RETRY_SUPERSEDED = "retry_superseded"
    # A command's `--at`/`--when-empty` (bot/policy/when.py).
    BAD_OPTION = "bad_option"


@dataclass(frozen=True)
class Refusal:
    """A refused step: its kind, and the (already Slack-safe) text to tell the person."""

    kind: Refused
    text: str


class Step(Enum):
    """What someone not (known to be) an approver tried to do; the value completes the refusal."""

    REQUEST = "request deactivations"
    DECIDE = "approve or deny"
    APPROVE = "approve"
    DENY = "deny"
    CHANGE_BATCH = "change a batch"
    RETRY = "retry a deactivation"
    READ = "see deactivation requests"
    WATCH = "start or stop watching an account's balances"


class Subject(Enum):
    """What was requested, as the requester's own-approval refusal names it."""

    REQUEST = "deactivation"
    BATCH = "batch"


# Retrying and reading are said as what approvers may do; the rest as what the person may not.
_SAID_AS_ONLY_APPROVERS = frozenset({Step.RETRY, Step.READ})


# -- who may ask, approve, deny ----------------------------------------------------------------


def ask_refusal(policy: Policy, requester: str, channel_id: str) -> Refusal | None:
    """Why `requester` may not ask for a deactivation (single or batch) in `channel_id`, or None."""
    if policy.allowed_channels and channel_id not in policy.allowed_channels:
        places = ", ".join(f"<#{c}>" for c in sorted(policy.allowed_channels))
        return Refusal(Refused.CHANNEL, f":no_entry: `/sfox-deactivate` can only be used in {places}.")
    if policy.requesters is None:
        return approver_refusal(policy.approvers, requester, Step.REQUEST)
    if requester in policy.requesters:
        return None
    outage = _outage(policy.requesters, "requester")
    if outage:
        return outage
    if requester in policy.approvers:
        return Refusal(
            Refused.APPROVER_ONLY,
            ":no_entry: You approve sFOX deactivations but are not a requester, so you cannot request "
            "them: the approval policy keeps the people who ask apart from the people who approve.",
        )
    return Refusal(
        Refused.NOT_REQUESTER,
        ":no_entry: You are not on the sFOX requester list, so you cannot request deactivations.",
    )


def decide_refusal(policy: Policy, actor: str, step: Step, item: Approvable | None = None) -> Refusal | None:
    """Why `actor` may not take `step` (approve, deny, change a batch …), or None. A person in any
    stage may; a requester in no stage is told so, but may still Deny (cancel) `item` if they asked
    for it. Which stages an approval may fill is `stages_open_to`."""
    if item is not None and step in (Step.DECIDE, Step.DENY) and is_requester(item, actor):
        return None
    refusal = approver_refusal(policy.approvers, actor, step)
    if refusal is None or refusal.kind is not Refused.NOT_APPROVER or policy.requesters is None:
        return refusal
    if actor in policy.requesters:
        return Refusal(
            Refused.REQUESTER_ONLY,
            f":no_entry: You may request sFOX deactivations but are in no approval stage, so you cannot "
            f"{step.value}: the approval policy keeps the people who ask apart from the people who approve.",
        )
    return refusal


def watch_refusal(policy: Policy, item: Approvable, actor: str) -> Refusal | None:
    """Who may start a watch from a blocked request (Watch) or end one (Stop watching): its
    requester, or any approver. Neither approves anything: the card still needs the quorum."""
    if is_requester(item, actor):
        return None
    return approver_refusal(policy.approvers, actor, Step.WATCH)


def approver_refusal(approvers: Container[str], actor: str, step: Step) -> Refusal | None:
    """Why `actor` may not take `step`, or None when they are an approver. While the approver group
    cannot be read (a Slack outage) we cannot know, and say that instead of "not an approver"."""
    if actor in approvers:
        return None
    error = group_unreadable(approvers)
    if error:
        return Refusal(
            Refused.GROUP_UNREADABLE,
            f":warning: I cannot read the approver group from Slack right now (`{error[:60]}`), so I "
            "cannot tell whether you are an approver. Nothing was changed; try again in a minute.",
        )
    if step in _SAID_AS_ONLY_APPROVERS:
        return Refusal(Refused.NOT_APPROVER, f":no_entry: Only sFOX approvers can {step.value}.")
    return Refusal(
        Refused.NOT_APPROVER, f":no_entry: You are not on the sFOX approver list, so you cannot {step.value}."
    )


def _outage(people: Container[str], who: str) -> Refusal | None:
    error = group_unreadable(people)
    if not error:
        return None
    return Refusal(
        Refused.GROUP_UNREADABLE,
        f":warning: I cannot read the {who} group from Slack right now (`{error[:60]}`), so I "
        f"cannot tell whether you are {'an' if who[0] in 'aeiou' else 'a'} {who}. Nothing was changed; "
        "try again in a minute.",
    )


def group_unreadable(approvers: Container[str]) -> str | None:
    """Slack's error while it cannot tell us who is in a user group of `approvers`; None when it
    can (or no group is configured). Read it after a membership test: that test reads the group."""
    if isinstance(approvers, People):
        return approvers.unreadable
    return None


def group_outage_note(approvers: Container[str]) -> str | None:
    """The App Home's aside next to the approvers' names while the group cannot be read."""
    return "(the approver group cannot be read from Slack right now)" if group_unreadable(approvers) else None


# -- the stages ----------------------------------------------------------------------------


def stage_members(policy: Policy, stage: Stage) -> Container[str]:
    """Who may fill `stage` now: its users and its groups' current members; a stage without
    members (one asked before stages, or under the approver settings) is every approver."""
    if not stage.members:
        return policy.approvers
    return People(stage.users, stage.groups, policy.directory)


def stages_open_to(policy: Policy, item: Approvable, actor: str) -> tuple[tuple[int, ...], Refusal | None]:
    """The stages of `item` an approval by `actor` may fill, or why none: they are in none of
    them (or a group of them cannot be read now)."""
    stages = item_stages(item)
    containers = [stage_members(policy, s) for s in stages]
    eligible = tuple(i for i, c in enumerate(containers) if actor in c)
    if eligible:
        return eligible, None
    for container in containers:
        outage = _outage(container, "approver")
        if outage:
            return (), outage
    names = ", ".join(s.label() for s in stages)
    return (), Refusal(
        Refused.NOT_IN_STAGE,
        f":no_entry: You are in none of the approval stages this was asked under ({names}), "
        "so your approval cannot count. Nothing was changed.",
    )


def who_may_approve(item: Approvable) -> str:
    """Who may approve `item`, as its card says it."""
    asked_by_person = bool(SLACK_USER_ID.match(item.requested_by))  # not a system (the intake API)
    if not is_staged(item):
        if not asked_by_person:
            return "Any approver may approve: a system asked for it, not a person."
        return f"A second admin (not {_mention(item.requested_by)}) must approve."
    parts = [f"*{s.label()}*" + ("" if not s.name else f" ({s.mentions()})") for s in item_stages(item)]
    never = f", never {_mention(item.requested_by)}" if asked_by_person else ""
    return f"Every stage must be met, a person counting once{never}: " + " · ".join(parts) + "."


def waiting_for(item: Approvable) -> list[str]:
    """Who can still help `item`: the groups and the listed people of each unmet stage who have
    not approved (Slack mentions). Empty for a stage of every approver (the caller names those)."""
    names: list[str] = []
    for p in stage_progress(item):
        if p.met:
            continue
        names += [f"<!subteam^{g}>" for g in p.stage.groups]
        names += [_mention(u) for u in sorted(p.stage.users) if awaits(item, u)]
    return list(dict.fromkeys(names))


def _mention(user: str) -> str:
    return f"<@{user}>" if SLACK_USER_ID.match(user) else "someone"


# -- never the requester ---------------------------------------------------------------------


def is_requester(item: Approvable, actor: str) -> bool:
    """Whether `actor` asked for `item`: their approval never counts, their Deny is a cancel."""
    return actor == item.requested_by


def own_approval_refusal(item: Approvable, actor: str, subject: Subject) -> Refusal | None:
    """The requester may not approve their own request or batch: a second admin must."""
    if not is_requester(item, actor):
        return None
    return Refusal(
        Refused.OWN_REQUEST,
        f"You requested this {subject.value}, so you cannot approve it: a second admin must approve.",
    )


def own_retry_refusal(item: Approvable, actor: str) -> Refusal | None:
    """A retry sends the DELETE again, so it is an approval too: never the requester's."""
    if not is_requester(item, actor):
        return None
    return Refusal(Refused.OWN_REQUEST, "You requested this deactivation, so a second admin must retry it.")


def awaits(item: Approvable, actor: str) -> bool:
    """Whether an approval by `actor` would still count: not the requester, not approved yet."""
    return not is_requester(item, actor) and actor not in item.approved_by


# -- the quorum ------------------------------------------------------------------------------


def counted_approvals(item: Approvable) -> tuple[str, ...]:
    """The approvals that count toward the quorum: every approver's but the requester's."""
    return tuple(a for a in item.approved_by if a != item.requested_by)


def approvals_missing(item: Approvable) -> int:
    """How many more distinct approvers (never the requester) the quorum needs, over all stages."""
    return sum(p.missing for p in stage_progress(item))


def still_needed(missing: int) -> str:
    """What an approver who did not complete the quorum is told."""
    return f"Approval recorded. {missing} more approval(s) needed."


def still_needed_for(item: Approvable | None) -> str:
    """The same, naming the stages still short when `item` has stages."""
    if item is None:
        return still_needed(0)
    text = still_needed(approvals_missing(item))
    if is_staged(item):
        short = [f"{p.stage.label()} ({p.missing})" for p in stage_progress(item) if not p.met]
        text += f" Still waiting for: {', '.join(short)}."
    return text


def approvals_wanted(item: Approvable) -> str:
    """The quorum still missing, as a reminder says it ("2 approval(s)")."""
    return f"{approvals_missing(item)} approval(s)"


def tally(item: Approvable, *, short: bool = False) -> str:
    """Where the quorum stands, as the cards, the App Home and `status` say it ("Compliance 0 of 1 ·
    Support leads 1 of 1: @bob"), or (`short`) as the `list` lines do. Only the approvals that
    count are counted, each in the one stage it fills."""
    progress = stage_progress(item)
    if not is_staged(item):
        have, need = len(progress[0].filled_by), progress[0].stage.count
        return f"{have}/{need} approvals" if short else f"{have} of {need} approvals"
    parts = []
    for p in progress:
        have, need = len(p.filled_by), p.stage.count
        part = f"{p.stage.label()} {have}/{need}" if short else f"{p.stage.label()} {have} of {need}"
        if p.filled_by and not short:
            part += ": " + ", ".join(_mention(u) for u in p.filled_by)
        parts.append(part)
    return " · ".join(parts)
