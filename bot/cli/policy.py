"""`sfox-bot policy`: the approval policy in force, as the bot reads it, with every user group's
members resolved from Slack (`usergroups.users.list`) — so a compliance officer can check who may
ask and who may approve before the bot runs. A group Slack cannot read is said as such: the bot
treats its members as nobody until it can (fail closed)."""

from __future__ import annotations

import argparse
from typing import Any, TextIO

from bot.config import Settings, load_settings
from bot.policy.approvers import GroupDirectory, directory_for


def register(sub: Any) -> None:
    policy = sub.add_parser(
        "policy",
        help="print the approval policy in force, with user groups' members read from Slack",
        description="Print who may ask, the approval stages and the second factor, from "
        "SFOX_POLICY_FILE (or SFOX_APPROVERS, SFOX_APPROVER_GROUP, SFOX_REQUIRED_APPROVALS without "
        "one), each user group's members read from Slack with SLACK_BOT_TOKEN.",
    )
    policy.set_defaults(handler=cmd_policy)


def cmd_policy(_args: argparse.Namespace) -> int:
    import sys

    settings = load_settings()
    directory = directory_for(settings) if settings.slack_bot_token else None
    render(settings, directory, sys.stdout)
    return 0


def render(settings: Settings, directory: GroupDirectory | None, out: TextIO) -> None:
    """The policy of `settings`, each group resolved through `directory` (None: not resolved)."""
    spec = settings.policy_spec()
    source = settings.policy_file or "SFOX_APPROVERS, SFOX_APPROVER_GROUP, SFOX_REQUIRED_APPROVALS"
    out.write(f"Approval policy (from {source})\n")
    if spec.requesters is None:
        out.write("Who may ask: every person in any stage\n")
    else:
        out.write(f"Who may ask: {', '.join(spec.requesters)}\n")
        _groups(spec.requesters, directory, out)
    out.write("Stages: every stage must be met; a person counts once in total; the requester never counts\n")
    for number, stage in enumerate(spec.stages, 1):
        members = ", ".join(stage.members) or "(no approvers set)"
        name = f"{stage.name}: " if stage.name else ""
        out.write(f"  {number}. {name}{stage.count} of {members}\n")
        _groups(stage.members, directory, out, indent="       ")
    out.write(f"Second factor on Approve (step_up): {spec.step_up}\n")
    required = "true" if spec.intake_require_slack_user else "false"
    out.write(f"Intake API requests must name their Slack user (intake: require_slack_user): {required}\n")
    out.write(f"Approvals needed in all: {sum(s.count for s in spec.stages)}\n")


def _groups(ids: tuple[str, ...], directory: GroupDirectory | None, out: TextIO, indent: str = "  ") -> None:
    for group in (i for i in ids if i.startswith("S")):
        if directory is None:
            out.write(f"{indent}{group}: members not read (SLACK_BOT_TOKEN is not set)\n")
            continue
        members = directory.members(group)
        error = directory.unreadable(group)
        if error:
            out.write(
                f"{indent}{group}: cannot be read from Slack ({error}); "
                "its members can neither ask nor approve until it can\n"
            )
        else:
            out.write(f"{indent}{group}: {', '.join(sorted(members)) or '(no members)'}\n")
