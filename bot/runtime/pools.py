"""A thread pool that knows when it is idle.

Slack gets its answer as soon as a listener acks, while the listener and the jobs it hands off
keep working. Whoever needs to know that a click has been fully handled (the console and the demo
print what happened; an orderly shutdown) waits for the pools to drain instead of guessing with
sleeps.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any


class TrackedPool(ThreadPoolExecutor):
    def __init__(self, max_workers: int, thread_name_prefix: str = "") -> None:
        super().__init__(max_workers, thread_name_prefix=thread_name_prefix)
        self._busy = 0
        self._changed = threading.Condition()

    @property
    def busy(self) -> int:
        """Tasks submitted and not finished yet (queued or running)."""
        with self._changed:
            return self._busy

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        with self._changed:
            self._busy += 1
        try:
            return super().submit(self._run, fn, args, kwargs)
        except BaseException:
            self._finished()
            raise

    def wait_idle(self, timeout: float) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: self._busy == 0, timeout)

    def _run(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        try:
            return fn(*args, **kwargs)
        finally:
            self._finished()

    def _finished(self) -> None:
        with self._changed:
            self._busy -= 1
            if self._busy == 0:
                self._changed.notify_all()


def wait_all_idle(pools: Iterable[TrackedPool], timeout: float) -> bool:
    """Wait until every pool is idle at once. Pass the pools in the order work flows through them
    (a task may submit to a later pool before it finishes, never to an earlier one)."""
    pools = list(pools)
    deadline = time.monotonic() + timeout
    while True:
        for pool in pools:
            if not pool.wait_idle(max(0.0, deadline - time.monotonic())):
                return False
        if all(pool.busy == 0 for pool in pools):
            return True
