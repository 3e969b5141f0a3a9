"""An Events API callback is handled once: Slack sends an event again when it did not see the
first delivery acknowledged within 3 seconds (over HTTP with `X-Slack-Retry-Num` and
`X-Slack-Retry-Reason`, in Socket Mode with `retry_attempt`), under the same `event_id`.

`app_home_opened` writes nothing: it republishes the opener's Home tab from the database. So a
repeat this process has seen is acknowledged and dropped (no second publish); a repeat that
reaches another replica republishes the same tab, which is harmless, and a retry of a first
delivery that never arrived anywhere is still served. `function_executed` (the Workflow Builder
step) does write: its repeats are recognised across processes by its `function_execution_id`
in the database (bot/runtime/steps.py), this middleware only spares this process the look-up. The event ids remembered are the
latest `SEEN_LIMIT`, in memory: Slack retries within minutes, three times at most.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from slack_bolt import BoltResponse

log = logging.getLogger("sfox_bot.events")
SEEN_LIMIT = 10_000


class RepeatedEvents:
    def __init__(self, limit: int = SEEN_LIMIT) -> None:
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._limit = limit
        self._lock = threading.Lock()

    def first_time(self, event_id: str) -> bool:
        """True the first time `event_id` is seen (and remembered from then on)."""
        with self._lock:
            if event_id in self._seen:
                return False
            self._seen[event_id] = None
            if len(self._seen) > self._limit:
                self._seen.popitem(last=False)
            return True

    def middleware(self) -> Callable[..., Any]:
        """A Bolt global middleware: an event callback seen before is acknowledged, not handled."""

        def middleware(body: dict[str, Any], next: Callable[[], Any]) -> Any:  # noqa: A002 - Bolt's name
            event_id = body.get("event_id") if body.get("type") == "event_callback" else None
            if isinstance(event_id, str) and event_id and not self.first_time(event_id):
                log.info("repeated event acknowledged, not handled again", extra={"event_id": event_id})
                return BoltResponse(status=200, body="")
            return next()

        return middleware
