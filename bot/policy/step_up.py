"""The second factor's rule: with step-up on, an approval counts only when it came with a valid
code. Every approval path (single requests, batches, whatever comes next) asks `step_up_refusal`
before recording, so a plain click or an old click replayed by the sweep is never counted; whether
a code is good (its step, replay, the lock-out) is bot/mfa/stepup.py's job."""

from __future__ import annotations

from bot.policy.rules import Policy, Refusal, Refused


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
