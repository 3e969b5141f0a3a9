"""Who is who in the sandbox under a policy file (`sfox-bot console --policy FILE`): everyone the
file names becomes a person one can act as, and its user groups live in the fake Slack, filled
with `group` in the console."""

from __future__ import annotations

from typing import Any

from bot.config import Settings


def who_approves(policy_file: str | None, approvers: list[str]) -> dict[str, str]:
    """The sandboxed bot's approver settings: the policy file, or the built-in approvers."""
    if policy_file:
        return {"SFOX_POLICY_FILE": policy_file}
    return {"SFOX_APPROVERS": ",".join(approvers)}


def cannot_play(settings: Settings) -> str | None:
    """Why the sandbox cannot play this policy, or None: a second factor asks each Approve for a
    code from an authenticator app, which nobody in the sandbox can type."""
    if settings.effective_step_up == "none":
        return None
    return (
        f"the policy file asks for a second factor (step_up: {settings.effective_step_up}), which "
        "the console cannot give: try the policy here with step_up: none"
    )


def meet_the_policy(sandbox: Any, settings: Settings) -> None:
    """Everyone the policy file names becomes a person of `sandbox` (named by their id, lowercased);
    each user group it names starts empty in the fake Slack."""
    if settings.policy is None:
        return
    spec = settings.policy
    for user_id in [m for s in spec.stages for m in s.members] + list(spec.requesters or ()):
        if user_id.startswith("S"):
            sandbox.slack.usergroups.setdefault(user_id, [])
        elif user_id not in sandbox.names:
            sandbox.people[user_id.lower()] = user_id
            sandbox.names[user_id] = user_id.lower()


def set_group(sandbox: Any, group_id: str, names: list[str]) -> list[str]:
    """Make the fake Slack's user group `group_id` hold these people (names or ids); the bot reads
    it again at its next check."""
    members = [sandbox.people.get(n) or n.upper() for n in names]
    sandbox.slack.usergroups[group_id] = members
    directory = sandbox.runtime.workflow.policy.directory if sandbox.runtime is not None else None
    if directory is not None:
        directory.forget(group_id)
    return members
