"""Where a request or a batch stands against the stages it was asked under: which approval fills
which stage (the matching itself: bot/policy/stages.py), and whether every stage is met. Read by
the rules' wording (bot/policy/rules.py: `tally`, `still_needed_for`, `who_may_approve`) and by the
reminders; the claim's own check reads the same accounting from rows (bot/store/deciding.py)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from bot.policy import stages as staging
from bot.policy.stages import Stage, StageProgress


class Approvable(Protocol):
    """What the quorum rules read of a request or a batch (RequestRecord and BatchRecord both fit)."""

    @property
    def requested_by(self) -> str: ...

    @property
    def approved_by(self) -> Sequence[str]: ...

    @property
    def required_approvals(self) -> int: ...

    @property
    def stages(self) -> str | None: ...

    @property
    def approval_stages(self) -> Sequence[Sequence[int] | None]: ...


def item_stages(item: Approvable) -> tuple[Stage, ...]:
    """The stages `item` was asked under (stored with it: a later policy edit does not change them)."""
    return staging.load_stages(item.stages, item.required_approvals)


def stage_progress(item: Approvable) -> tuple[StageProgress, ...]:
    """Each stage of `item` and who filled it; a person counts once, the requester never."""
    pairs = [
        (person, staging.LEGACY_STAGES if eligible is None else tuple(eligible))
        for person, eligible in zip(item.approved_by, _eligibilities(item), strict=True)
    ]
    return staging.progress(item_stages(item), pairs, item.requested_by)


def quorum_met(item: Approvable) -> bool:
    """Whether every stage of `item` is met: the claim may then be won (bot/store/deciding.py)."""
    return all(p.met for p in stage_progress(item))


def _eligibilities(item: Approvable) -> Sequence[Sequence[int] | None]:
    found = tuple(item.approval_stages)
    return found if len(found) == len(item.approved_by) else (None,) * len(item.approved_by)


def is_staged(item: Approvable) -> bool:
    """Whether `item` is worded stage by stage: asked under a policy file's stages, not the one
    stage of every approver."""
    stages = item_stages(item)
    return len(stages) > 1 or bool(stages[0].members)
