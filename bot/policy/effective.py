"""The Policy in force, built from the settings: SFOX_POLICY_FILE's stages, requesters, step-up
and intake option, or the approver settings (and SFOX_STEP_UP, SFOX_INTAKE_REQUIRE_SLACK_USER)
read as the equivalent policy. The one place that turns settings into rules, so
every process (`run`, the WSGI app, the sandbox) reads the same settings the same way; `sfox-bot
policy` prints the same spec (`Settings.policy_spec`)."""

from __future__ import annotations

from collections.abc import Container
from datetime import timedelta

from bot.config import Settings
from bot.policy.approvers import GroupDirectory, People, approvers_for, directory_for
from bot.policy.policy_file import PolicySpec
from bot.policy.rules import Policy

# The sFOX call is bounded by its timeout; a claim older than that plus this belongs to a dead process.
CLAIM_GRACE_SECONDS = 5.0


def build_policy(
    settings: Settings, *, approvers: Container[str] | None = None, directory: GroupDirectory | None = None
) -> Policy:
    """The rules' settings. `approvers` stands in for the approver settings (tests, the sandbox);
    `directory` for the Slack reads of user groups (one is made from the bot token when needed)."""
    common = {
        "ttl": timedelta(seconds=settings.request_ttl_seconds),
        "allowed_channels": settings.allowed_channels,
        "require_reason": settings.require_reason,
        "schedule_horizon": timedelta(days=settings.schedule_max_days),
        "retry_window": timedelta(hours=settings.retry_window_hours),
        "claim_lease": timedelta(seconds=settings.sfox_timeout_seconds + CLAIM_GRACE_SECONDS),
    }
    spec = settings.policy
    if spec is None:
        people = approvers if approvers is not None else approvers_for(settings)
        found = people.directory if isinstance(people, People) else None
        # A request asked under an earlier policy file may name groups: they are read with the token.
        if found is None and settings.slack_bot_token:
            found = directory_for(settings)
        return Policy(
            approvers=people,
            required_approvals=settings.required_approvals,
            directory=found,
            step_up=settings.step_up,
            intake_require_slack_user=settings.intake_require_slack_user,
            **common,
        )
    if directory is None and (spec.groups or settings.slack_bot_token):
        directory = directory_for(settings)
    return Policy(
        approvers=everyone_in_a_stage(spec, directory),
        required_approvals=sum(s.count for s in spec.stages),
        stages=spec.stages,
        requesters=None if spec.requesters is None else _people(spec.requesters, directory),
        step_up=spec.step_up,
        directory=directory,
        intake_require_slack_user=spec.intake_require_slack_user,
        **common,
    )


def everyone_in_a_stage(spec: PolicySpec, directory: GroupDirectory | None) -> People:
    """Every person in any stage: who may approve, deny, retry, change a batch and read requests."""
    return _people(tuple(m for s in spec.stages for m in s.members), directory)


def _people(ids: tuple[str, ...], directory: GroupDirectory | None) -> People:
    users = [i for i in ids if not i.startswith("S")]
    groups = [i for i in ids if i.startswith("S")]
    return People(users, groups, directory if groups else None)
