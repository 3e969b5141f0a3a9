"""The command's options and their rules: `--when-empty` (watch the balances until they read zero,
then post the card) and `--at <when>` (deactivate on a date, never before). Every entry point that
takes a command's text (the single command, the batch command) splits its options here, so the
words a person types mean the same everywhere and are refused in the same words.

`<when>` is an instant, never a wall-clock time without a zone: ISO 8601 with `Z` or an offset
(`2026-12-31T17:00Z`, `2026-12-31T17:00:00+01:00`), or relative to now (`+90m`, `+2h`, `+3d`). It
must lie in the future and at most `Policy.schedule_horizon` ahead (SFOX_SCHEDULE_MAX_DAYS)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from bot.policy.rules import Refusal, Refused
from bot.slack.blocks import code

WHEN_EMPTY = "--when-empty"
AT = "--at"
RELATIVE = re.compile(r"\+(\d{1,6})([mhd])")
UNITS = {"m": "minutes", "h": "hours", "d": "days"}
EXAMPLES = "`2026-12-31T17:00Z`, `2026-12-31T17:00:00+01:00`, `+90m`, `+2h` or `+3d`"


@dataclass(frozen=True)
class Options:
    """What a command's text asked for besides the ids: the rest is its reason."""

    reason: str
    when_empty: bool = False
    run_at: datetime | None = None


def split_options(text: str, now: datetime, horizon: timedelta) -> Options | Refusal:
    """The options found as whole words anywhere in `text` (after the id), and the words left as
    the reason; or why the options cannot be accepted. Nothing is recorded either way."""
    words = (text or "").split()
    rest: list[str] = []
    when_empty = False
    run_at: datetime | None = None
    seen_at = False
    i = 0
    while i < len(words):
        word = words[i]
        if word.lower() == WHEN_EMPTY:
            when_empty = True
        elif word.lower() == AT:
            if seen_at:
                return _refused(f"{code(AT)} was given twice: give one time.")
            seen_at = True
            if i + 1 >= len(words):
                return _refused(f"{code(AT)} needs a time, like {EXAMPLES}.")
            parsed = parse_when(words[i + 1], now, horizon)
            if isinstance(parsed, Refusal):
                return parsed
            run_at = parsed
            i += 1
        elif word.startswith("--") and len(word) > 2:
            return _refused(
                f"{code(word, 40)} is not an option: use {code(WHEN_EMPTY)} or {code(AT + ' <when>')}."
            )
        else:
            rest.append(word)
        i += 1
    if when_empty and run_at is not None:
        return _refused(
            f"Give {code(WHEN_EMPTY)} or {code(AT)}, not both: {code(WHEN_EMPTY)} posts the card as soon "
            f"as the balances read zero; {code(AT)} deactivates at a time you choose."
        )
    return Options(" ".join(rest), when_empty, run_at)


def parse_when(value: str, now: datetime, horizon: timedelta) -> datetime | Refusal:
    """The instant `value` names, in UTC; or why it cannot be a deactivation's time."""
    delta = relative_delta(value)
    if delta is not None:
        at = now + delta
    else:
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return _refused(f"{code(value, 60)} is not a time I can read: use {EXAMPLES}.")
        if parsed.tzinfo is None or parsed.utcoffset() is None:
            return _refused(
                f"{code(value, 60)} has no time zone: add `Z` (UTC) or an offset like `+01:00`, "
                f"or give a relative time like `+2h`."
            )
        at = parsed.astimezone(UTC)
    if at <= now:
        return _refused(f"{code(value, 60)} is in the past: give a time ahead.")
    if at - now > horizon:
        days = horizon.days or 1
        return _refused(
            f"{code(value, 60)} is more than {days} days ahead (SFOX_SCHEDULE_MAX_DAYS): give an earlier time."
        )
    return at


def relative_delta(value: str) -> timedelta | None:
    """`+90m`, `+2h`, `+3d` as a span of time; None for anything else."""
    relative = RELATIVE.fullmatch(value.strip())
    if relative is None:
        return None
    return timedelta(**{UNITS[relative.group(2)]: int(relative.group(1))})


def _refused(text: str) -> Refusal:
    return Refusal(Refused.BAD_OPTION, f":warning: {text} Nothing was posted.")
