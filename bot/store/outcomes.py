"""What the bot knows about a request's DELETE, as a typed value recorded with each outcome.

`requests.outcome` (migration 0007) is written in the same conditional update as the outcome
itself, by whichever process settles it (the executor, or a reconcile's read), so any replica,
before or after a restart, reads the same answer. It says more than the status: a `failed`
request may be one sFOX refused, one it rate-limited, or one whose process stopped before the
DELETE went out; only the last two may be sent again without an approver (a batch's runner
claims them again), because sFOX certainly did nothing with them.
"""

from __future__ import annotations

from enum import StrEnum


class Outcome(StrEnum):
    DEACTIVATED = "deactivated"  # sFOX answered the DELETE with a 2xx
    CONFIRMED_GONE = "confirmed_gone"  # a reconcile's read found the account gone
    REFUSED = "refused"  # sFOX answered with an error: it did nothing
    RATE_LIMITED = "rate_limited"  # sFOX answered 429: it did nothing
    NOT_SENT = "not_sent"  # nothing reached sFOX (no connection, or no slot of our own limit)
    # Nothing was sent: at a scheduled request's time its balances read non-zero (sFOX would refuse).
    HELD_FUNDS = "held_funds"
    # Claimed, but the process stopped before the DELETE: no `sfox_call_started` in the trail.
    STOPPED_BEFORE_SENDING = "stopped_before_sending"
    STILL_PRESENT = "still_present"  # the DELETE may have gone out; a read still found the account
    UNKNOWN = "unknown"  # the DELETE may have gone out and nobody knows yet


# Failed outcomes sFOX certainly did nothing with, which a batch sends again on its own.
CLAIM_AGAIN = frozenset({Outcome.RATE_LIMITED, Outcome.STOPPED_BEFORE_SENDING})


def parse_outcome(value: str | None) -> Outcome | None:
    """The stored value as an Outcome; None for rows settled before migration 0007 or written
    by a newer version with a kind this one does not know."""
    if value is None:
        return None
    try:
        return Outcome(value)
    except ValueError:
        return None
