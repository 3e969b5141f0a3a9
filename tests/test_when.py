"""The command's options (bot/policy/when.py): what `--at` and `--when-empty` accept, and the
refusals a person reads."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.policy.rules import Refusal, Refused
from bot.policy.when import Options, parse_when, split_options

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
HORIZON = timedelta(days=90)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-12-31T17:00Z", datetime(2026, 12, 31, 17, 0, tzinfo=UTC)),
        ("2026-12-31T17:00:00+01:00", datetime(2026, 12, 31, 16, 0, tzinfo=UTC)),
        ("+90m", NOW + timedelta(minutes=90)),
        ("+2h", NOW + timedelta(hours=2)),
        ("+3d", NOW + timedelta(days=3)),
    ],
)
def test_times_read_as_utc_instants(value: str, expected: datetime) -> None:
    assert parse_when(value, NOW, HORIZON) == expected


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("2026-12-01T17:00Z", "in the past"),
        ("+0m", "in the past"),
        ("+91d", "more than 90 days ahead (SFOX_SCHEDULE_MAX_DAYS)"),
        ("2026-12-31T17:00", "has no time zone"),
        ("2026-12-31", "has no time zone"),
        ("tomorrow", "is not a time I can read"),
        ("+2w", "is not a time I can read"),
    ],
)
def test_bad_times_are_refused_with_the_reason(value: str, words: str) -> None:
    refused = parse_when(value, NOW, HORIZON)
    assert isinstance(refused, Refusal) and refused.kind is Refused.BAD_OPTION
    assert words in refused.text and "Nothing was posted" in refused.text


def test_options_are_whole_words_anywhere_and_leave_the_reason() -> None:
    assert split_options("left the company --when-empty", NOW, HORIZON) == Options(
        "left the company", when_empty=True
    )
    assert split_options("--at +2h contract ends", NOW, HORIZON) == Options(
        "contract ends", run_at=NOW + timedelta(hours=2)
    )
    assert split_options("a--at is not an option", NOW, HORIZON) == Options("a--at is not an option")


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("--when-empty --at +2h", "not both"),
        ("--at +2h --at +3h", "given twice"),
        ("reason --at", "needs a time"),
        ("--whenempty", "is not an option"),
    ],
)
def test_bad_options_are_refused(text: str, words: str) -> None:
    refused = split_options(text, NOW, HORIZON)
    assert isinstance(refused, Refusal) and words in refused.text
