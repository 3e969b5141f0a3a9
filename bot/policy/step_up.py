"""The second factor's rule: with step-up on, an approval counts only when it came with a valid
code. Every approval path (single requests, batches, a Retry, whatever comes next) asks
`step_up_refusal` before recording, so a plain click or an old click replayed by the sweep is never
counted; whether a code is good (its step, replay, the lock-out) is bot/mfa/stepup.py's job. A
Retry sends the DELETE again, so it is an approval too (issue 32): the same rule, said as a Retry."""

from __future__ import annotations

from bot.policy.rules import Policy, Refusal, Refused, Step

# How each kind of approval is said: the verb, its button, and what did not happen.
_SAID = {
    Step.APPROVE: ("Approving", "Approve", "Nothing was counted."),
    Step.RETRY: ("Retrying", "Retry", "Nothing was sent."),
}


def step_up_refusal(policy: Policy, stepped_up: str | None, step: Step = Step.APPROVE) -> Refusal | None:
    """Why an approval (`step`: an Approve, or a Retry) may not count yet: step-up is on and it
    did not come with a valid code (`stepped_up` names the factor it came with, e.g. "totp"; None
    for a plain click). Every approval path asks this before recording."""
    if policy.step_up == "none" or stepped_up == policy.step_up:
        return None
    verb, button, unchanged = _SAID[step]
    return Refusal(
        Refused.STEP_UP_NEEDED,
        f":closed_lock_with_key: {verb} needs a code from your authenticator app: click *{button}* "
        f"again and enter it. {unchanged}",
    )


def enrol_hint(step: Step = Step.APPROVE) -> str:
    """What someone asked for a code they cannot give yet (not enrolled) is told."""
    verb, button, unchanged = _SAID[step]
    return (
        f":closed_lock_with_key: {verb} here needs a second factor, and you have none yet. Set one "
        f"up with `/sfox-deactivate mfa` (any authenticator app), then click *{button}* again. "
        f"{unchanged}"
    )
