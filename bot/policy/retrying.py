"""Retry is an approval (issue 32): it sends the DELETE again, so it is asked what an Approve is
asked (an approver in a stage the request was asked under, never its requester, with the second
factor when step-up is on; bot/requests/deciding.py asks those very rules), and two things more,
because a failed request is no standing permission to deactivate its account:

- it may be retried only within `Policy.retry_window` (SFOX_RETRY_WINDOW_HOURS) of its failure:
  the approvals behind it were given for that moment, not for months later;
- never once a newer request for the same sFOX user exists, whatever that one came to (denied,
  pending, done): the newer one is the live decision about the account.

The store's retry claim holds both again in SQL, in its compare-and-set (`claim_retry` in
bot/store/deciding.py), so a request that crosses either line between this check and the claim
is still never sent. Pure: the caller reads the newer request, and says whether it is open.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Protocol

from bot.policy.rules import Policy, Refusal, Refused
from bot.slack.blocks import code, escape, slack_date


class Retried(Protocol):
    """What the retry rule reads of a request (a RequestRecord fits)."""

    @property
    def id(self) -> int: ...

    @property
    def sfox_user_id(self) -> str: ...

    @property
    def status(self) -> str: ...

    @property
    def completed_at(self) -> datetime | None: ...


def retry_refusal(
    policy: Policy, record: Retried, now: datetime, newer: Retried | None = None, *, newer_open: bool = False
) -> Refusal | None:
    """Why `record` (failed, offering Retry) may no longer be retried, or None. `newer`: the
    newest later request for the same sFOX user, if any (`newer_open`: it is still open)."""
    if newer is not None:
        if newer_open:
            then = f"Decide that one on its card (or `/sfox-deactivate status {escape(newer.sfox_user_id, 128)}`)."
        else:
            then = _ask_again(record)
        return Refusal(
            Refused.RETRY_SUPERSEDED,
            f":no_entry: Request #{record.id} can no longer be retried: request #{newer.id} for "
            f"{code(record.sfox_user_id)} came after it and is {newer.status}, so nothing was sent. {then}",
        )
    failed_at = record.completed_at
    if failed_at is None or failed_at + policy.retry_window <= now:
        when = "at a time the bot did not record" if failed_at is None else slack_date(failed_at)
        return Refusal(
            Refused.RETRY_TOO_OLD,
            f":hourglass: Request #{record.id} failed {when}, more than {hours(policy.retry_window)} ago "
            "(SFOX_RETRY_WINDOW_HOURS), so it can no longer be retried; nothing was sent. "
            + _ask_again(record),
        )
    return None


def hours(window: timedelta) -> str:
    """The window as people read it: "24 hours", "1 hour", "1.5 hours"."""
    n = window.total_seconds() / 3600
    return f"{n:g} hour" + ("" if n == 1 else "s")


def _ask_again(record: Retried) -> str:
    return (
        f"If {code(record.sfox_user_id)} should still be deactivated, ask again with "
        f"`/sfox-deactivate {escape(record.sfox_user_id, 128)}`."
    )
