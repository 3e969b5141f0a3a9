"""The reason's rules, and their words: spaces folded, at most `MAX_REASON` characters
(`clean_reason`, `reason_refusal`), and required where SFOX_REQUIRE_REASON says so
(`missing_reason_refusal`; a batch's form always asks for one, `reason_required_field_error`).
Every entry point that takes a reason (the command, the batch form, the Deny dialog) asks these."""

from __future__ import annotations

from bot.policy.rules import Policy, Refusal, Refused

MAX_REASON = 500


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
