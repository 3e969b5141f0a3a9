"""Slack's pace for `chat.postMessage`, as the fake Slack keeps it: about one message per second
per channel, short bursts allowed, then HTTP 429 with `Retry-After` (whole seconds) and
`{"ok": false, "error": "ratelimited"}` (Slack's rate-limits page: posting messages, "1 per
second, short bursts >1 allowed"; a 429 carries the seconds to wait in `Retry-After`).

Kept per channel as a token bucket: `burst` tokens, one back every `1/per_second` s, one spent
by each message Slack accepts; a refused call spends nothing. A direct message's channel (`D…`)
is a channel like any other. Slack's workspace-wide limit is not modelled.

On by default in the fake, so the whole suite meets it; `FakeSlack(rate_limited=False)` (or
`fake.rate.enabled = False`) switches it off for benchmarks that measure something else.
A testing aid: it never talks to the real Slack.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

# Slack documents "1 per second" with "short bursts >1 allowed", without a size: three at once.
PER_SECOND = 1.0
BURST = 3


class ChannelRate:
    """Which `chat.postMessage` calls Slack would refuse, channel by channel."""

    def __init__(
        self,
        per_second: float = PER_SECOND,
        burst: int = BURST,
        *,
        enabled: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.per_second = per_second
        self.burst = burst
        self.enabled = enabled
        self.clock = clock
        self.refused: dict[str, int] = {}  # channel -> 429s answered, for tests to read
        self._buckets: dict[str, tuple[float, float]] = {}  # channel -> (tokens, as of when)
        self._lock = threading.Lock()

    def admit(self, channel: str) -> int | None:
        """Take a message for `channel`: None when Slack would post it, otherwise the whole
        seconds Slack would answer in `Retry-After` (at least 1)."""
        if not self.enabled:
            return None
        with self._lock:
            now = self.clock()
            tokens, since = self._buckets.get(channel, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - since) * self.per_second)
            if tokens >= 1.0:
                self._buckets[channel] = (tokens - 1.0, now)
                return None
            self._buckets[channel] = (tokens, now)
            self.refused[channel] = self.refused.get(channel, 0) + 1
            return max(1, math.ceil((1.0 - tokens) / self.per_second))

    def refusals(self) -> int:
        """How many calls were answered 429, all channels together."""
        with self._lock:
            return sum(self.refused.values())
