"""Stages of approval, and which approval fills which stage: the one home of that accounting.

A policy (bot/policy/rules.py) asks for approvals in stages: each stage names who may fill it
(`members`: Slack users U…/W… and user groups S…) and how many distinct people it needs. A person
counts once in total: one approval fills at most one stage, assigned so that as many stages as
possible are met. That is a maximum bipartite matching between the approvals and the stages'
seats, found here with augmenting paths (Kuhn): a person in two stages fills whichever still needs
them, and a later approval may move an earlier one to the other stage it could fill.

The stages a request or a batch was asked under are stored with it (`stages`, JSON; migration
0010_policy), so a policy edited later never changes what an open request needs. Each approval is
stored with the stages its approver could fill when they approved (`approvals.stages`), so the
claim's check is a pure function of rows it reads in its own transaction: no Slack call there.
Rows from before the policy (NULL) read as one stage of `required_approvals` that every approval
may fill.

Pure: no I/O. Who is in a group is the caller's question (bot/policy/approvers.py).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

# Every approval may fill the one stage of a request asked before stages existed.
LEGACY_STAGES: tuple[int, ...] = (0,)
# A stage without a name is said as its members: at most this many, then "and N more".
MENTIONS_SHOWN = 10


@dataclass(frozen=True)
class Stage:
    """One stage: who may fill it (ids as written in the policy) and how many distinct people must.
    `members` empty means "every approver" (a request asked before stages existed)."""

    count: int
    members: tuple[str, ...] = ()
    name: str | None = None

    @property
    def users(self) -> frozenset[str]:
        return frozenset(m for m in self.members if not m.startswith("S"))

    @property
    def groups(self) -> tuple[str, ...]:
        return tuple(m for m in self.members if m.startswith("S"))

    def label(self) -> str:
        """How the stage is said in Slack: its name (escaped: it is the policy writer's text), else
        its members as Slack mentions."""
        if self.name:
            return self.name.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        return self.mentions() if self.members else "Approvers"

    def mentions(self, limit: int = MENTIONS_SHOWN) -> str:
        """Its members as Slack mentions (a user group as its handle), at most `limit` of them so a
        card stays within Slack's limits."""
        shown = [f"<!subteam^{m}>" if m.startswith("S") else f"<@{m}>" for m in self.members[:limit]]
        more = len(self.members) - len(shown)
        return ", ".join(shown) + (f" and {more} more" if more > 0 else "")

    def plain_label(self) -> str:
        """The same, for a terminal: its name, else its ids."""
        return self.name or (", ".join(self.members) if self.members else "approvers")


@dataclass(frozen=True)
class StageProgress:
    """Where one stage stands: who filled it (in approval order) of how many it needs."""

    stage: Stage
    filled_by: tuple[str, ...]

    @property
    def met(self) -> bool:
        return len(self.filled_by) >= self.stage.count

    @property
    def missing(self) -> int:
        return max(0, self.stage.count - len(self.filled_by))


def total(stages: Sequence[Stage]) -> int:
    """Approvals needed in all: the SQL guard of the claim (`required_approvals`) is this sum."""
    return sum(s.count for s in stages)


# -- stored as JSON ------------------------------------------------------------------------------


def dump_stages(stages: Sequence[Stage]) -> str:
    """The stages as stored with a request or a batch."""
    return json.dumps(
        [{"name": s.name, "from": list(s.members), "count": s.count} for s in stages], sort_keys=True
    )


def load_stages(text: str | None, required_approvals: int) -> tuple[Stage, ...]:
    """The stages stored with a request or a batch; NULL (asked before stages existed) is one stage
    of `required_approvals` that every approver may fill."""
    if not text:
        return (Stage(count=required_approvals),)
    return tuple(
        Stage(count=int(s["count"]), members=tuple(s.get("from") or ()), name=s.get("name"))
        for s in json.loads(text)
    )


def dump_eligible(indexes: Iterable[int]) -> str:
    """The stages an approval may fill, as stored with it."""
    return json.dumps(sorted(indexes))


def load_eligible(text: str | None) -> tuple[int, ...]:
    """The stages a stored approval may fill; NULL (recorded before stages existed): the first."""
    if text is None:
        return LEGACY_STAGES
    return tuple(int(i) for i in json.loads(text))


# -- who may fill which stage, and the assignment ------------------------------------------------


def eligible(
    stages: Sequence[Stage], person: str, is_member: Callable[[Stage, str], bool]
) -> tuple[int, ...]:
    """The indexes of the stages `person` may fill, `is_member` saying who is in a stage."""
    return tuple(i for i, stage in enumerate(stages) if is_member(stage, person))


def assign(approvals: Sequence[tuple[str, Sequence[int]]], counts: Sequence[int]) -> dict[str, int]:
    """Which stage each approval fills: a maximum matching of the approvals (person, the stage
    indexes they may fill; a person listed twice counts once) onto the stages' seats (`counts[i]`
    seats for stage i). People left out fill no stage (every stage they could fill is full).
    Earlier approvals are placed first and only moved, never dropped, by later ones."""
    seats = [i for i, count in enumerate(counts) for _ in range(count)]
    seats_of = {i: [k for k, s in enumerate(seats) if s == i] for i in range(len(counts))}
    holder: dict[int, str] = {}
    options: dict[str, tuple[int, ...]] = {}
    for person, indexes in approvals:
        if person not in options:
            options[person] = tuple(i for i in indexes if 0 <= i < len(counts))

    def place(person: str, seen: set[int]) -> bool:
        for stage in options[person]:
            for seat in seats_of[stage]:
                if seat in seen:
                    continue
                seen.add(seat)
                if seat not in holder or place(holder[seat], seen):
                    holder[seat] = person
                    return True
        return False

    for person in options:
        place(person, set())
    return {person: seats[seat] for seat, person in holder.items()}


def progress(
    stages: Sequence[Stage], approvals: Sequence[tuple[str, Sequence[int]]], requester: str
) -> tuple[StageProgress, ...]:
    """Each stage's progress; the requester's approval never counts."""
    counted = [(p, e) for p, e in approvals if p != requester]
    filled = assign(counted, [s.count for s in stages])
    order = [p for p, _ in counted]
    return tuple(
        StageProgress(stage, tuple(p for p in dict.fromkeys(order) if filled.get(p) == i))
        for i, stage in enumerate(stages)
    )


def all_met(stages: Sequence[Stage], approvals: Sequence[tuple[str, Sequence[int]]], requester: str) -> bool:
    """Whether every stage is met: the quorum."""
    return all(p.met for p in progress(stages, approvals, requester))


def stage_filled(
    stages: Sequence[Stage], approvals: Sequence[tuple[str, Sequence[int]]], requester: str, person: str
) -> int | None:
    """The index of the stage `person`'s approval fills now (None: none), for its audit event."""
    counted = [(p, e) for p, e in approvals if p != requester]
    return assign(counted, [s.count for s in stages]).get(person)
