"""A `Retry-After` header read as seconds from now, as RFC 9110 allows it: delay-seconds or an
HTTP date. Read by the sFOX client (bot/sfox/client.py) and the intake callbacks
(bot/intake/callbacks.py); each caps what it will wait itself. (Slack's own answer, whole seconds
only, is read by bot/slack/calls.py.)"""

from __future__ import annotations

import email.utils
import time
from datetime import UTC


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """Retry-After as seconds from `now` (unix seconds; the wall clock by default); None when
    absent or unreadable. A date in the past is 0."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:  # "-0000" means UTC with no claim about the local zone
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - (time.time() if now is None else now))
