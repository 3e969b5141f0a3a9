"""The approval rules, and the words they are said in: the one place they are written.

Single requests, batches, the App Home, the subcommands, the reminders and the cards all ask
these functions, so a rule (or its wording) cannot drift between entry points:

- who may ask: an approver, in an allowed channel (`ask_refusal`);
- who may approve, deny, retry, change a batch or read requests: an approver (`approver_refusal`);
  while Slack cannot tell us who is in the approver group the refusal says so (we cannot know);
- never the requester: their own approval (or retry) is refused (`own_approval_refusal`,
  `own_retry_refusal`) and never counted (`counted_approvals`; the store's claims exclude it in SQL
  too: `approvals_by_others` in bot/store/deciding.py);
- the quorum and its wording (`approvals_missing`, `still_needed`, `approvals_wanted`, `tally`);
- the second factor: with step-up on, an approval counts only when it came with a valid code
  (`step_up_refusal`; the code itself is checked in bot/mfa/stepup.py);
- the reason: spaces folded, at most `MAX_REASON` characters (`clean_reason`, `reason_refusal`),
  and required where SFOX_REQUIRE_REASON says so (`missing_reason_refusal`; a batch's form always
  asks for one, `reason_required_field_error`).

Pure: no I/O beyond asking the approver container (which may read the group from Slack, cached).
A refusal is a typed `Refusal` (its kind to branch on, its text to show), never matched on text.
"""

from __future__ import annotations

from collections.abc import Container, Sequence
from dataclasses import dataclass
from datetime import timedelta
from enum import Enum
from typing import Protocol

from bot.policy.approvers import GroupApprovers

MAX_REASON = 500


@dataclass(frozen=True)
class Policy:
    """The rules' settings: who approves, how many must, for how long a request may wait, where
    one may be asked."""

    approvers: Container[str]
    required_approvals: int = 1
    ttl: timedelta = timedelta(hours=1)
    allowed_channels: frozenset[str] = frozenset()
    # SFOX_REQUIRE_REASON: a request without a reason is refused before anything is posted.
    require_reason: bool = False
    # An `executing` claim older than this belongs to a process that died (the sFOX call is
    # bounded by its timeout, so a live process always finishes well inside it).
    claim_lease: timedelta = timedelta(seconds=45)
    # The second factor on Approve (issue 18): "none", or "totp" (an approval counts only with a
    # valid code from the approver's authenticator; `step_up_refusal`). Set from SFOX_STEP_UP or
    # the policy file's `step_up:`.
    step_up: str = "none"


class Approvable(Protocol):
    """What the quorum rules read of a request or a batch (RequestRecord and BatchRecord both fit)."""

    @property
    def requested_by(self) -> str: ...

    @property
    def approved_by(self) -> Sequence[str]: ...

    @property
    def required_approvals(self) -> int: ...


class Refused(Enum):
    """Why a step was refused, for callers that branch on it."""

    CHANNEL = "channel"
    NOT_APPROVER = "not_approver"
    GROUP_UNREADABLE = "group_unreadable"
    OWN_REQUEST = "own_request"
    REASON_TOO_LONG = "reason_too_long"
    REASON_MISSING = "reason_missing"
    STEP_UP_NEEDED = "step_up_needed"


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
    return approver_refusal(policy.approvers, requester, Step.REQUEST)


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


def group_unreadable(approvers: Container[str]) -> str | None:
    """Slack's error while it cannot tell us who is in the approver group; None when it can (or no
    group is configured). Read it after a membership test: that test is what reads the group."""
    if isinstance(approvers, GroupApprovers):
        return approvers.unreadable
    return None


def group_outage_note(approvers: Container[str]) -> str | None:
    """The App Home's aside next to the approvers' names while the group cannot be read."""
    return "(the approver group cannot be read from Slack right now)" if group_unreadable(approvers) else None


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


# -- the second factor ----------------------------------------------------------------------


def step_up_refusal(policy: Policy, stepped_up: str | None) -> Refusal | None:
    """Why an approval may not count yet: step-up is on and it did not come with a valid code
    (`stepped_up` names the factor it came with, e.g. "totp"; None for a plain click). Every
    approval path (single requests, batches, whatever comes next) asks this before recording."""
    if policy.step_up == "none" or stepped_up == policy.step_up:
        return None
    return Refusal(
        Refused.STEP_UP_NEEDED,
        ":closed_lock_with_key: Approving needs a code from your authenticator app: click *Approve* "
        "again and enter it. Nothing was counted.",
    )


def enrol_hint() -> str:
    """What someone asked for a code they cannot give yet (not enrolled) is told."""
    return (
        ":closed_lock_with_key: Approving here needs a second factor, and you have none yet. Set one "
        "up with `/sfox-deactivate mfa` (any authenticator app), then click *Approve* again. "
        "Nothing was counted."
    )


# -- the quorum ------------------------------------------------------------------------------


def counted_approvals(item: Approvable) -> tuple[str, ...]:
    """The approvals that count toward the quorum: every approver's but the requester's."""
    return tuple(a for a in item.approved_by if a != item.requested_by)


def approvals_missing(item: Approvable) -> int:
    """How many more distinct approvers (never the requester) the quorum needs."""
    return max(0, item.required_approvals - len(counted_approvals(item)))


def still_needed(missing: int) -> str:
    """What an approver who did not complete the quorum is told."""
    return f"Approval recorded. {missing} more approval(s) needed."


def approvals_wanted(item: Approvable) -> str:
    """The quorum still missing, as a reminder says it ("2 approval(s)")."""
    return f"{approvals_missing(item)} approval(s)"


def tally(item: Approvable, *, short: bool = False) -> str:
    """Where the quorum stands, as the cards, the App Home and `status` say it, or (`short`) as the
    `list` lines do. Only the approvals that count are counted."""
    have, need = len(counted_approvals(item)), item.required_approvals
    return f"{have}/{need} approvals" if short else f"{have} of {need} approvals"


# -- the reason ------------------------------------------------------------------------------


def clean_reason(text: str | None) -> str:
    """A reason as it is recorded: whitespace (newlines from the form included) folded to spaces."""
    return " ".join((text or "").split())


def reason_refusal(reason: str) -> Refusal | None:
    """Why a (cleaned) reason cannot be recorded, or None."""
    if len(reason) <= MAX_REASON:
        return None
    return Refusal(
        Refused.REASON_TOO_LONG,
        f":warning: The reason is too long ({len(reason)} characters; at most {MAX_REASON}).",
    )


def reason_field_error() -> str:
    """The same limit, said next to a form's reason box (the Deny dialog)."""
    return f"At most {MAX_REASON} characters, please."


def missing_reason_refusal(policy: Policy, reason: str) -> Refusal | None:
    """Why a request without a reason may not be asked (SFOX_REQUIRE_REASON), or None."""
    if reason or not policy.require_reason:
        return None
    return Refusal(
        Refused.REASON_MISSING,
        ":warning: A reason is required here (SFOX_REQUIRE_REASON). "
        "Usage: `/sfox-deactivate &lt;sfox_user_id&gt; &lt;reason&gt;`. Nothing was posted.",
    )


def reason_required_field_error() -> str:
    """A form whose reason box is required (the batch form), said next to that box."""
    return "A reason is required."
