"""Racing threads whose every result is seen: the one way the tests run code concurrently.

A thread that raises only prints a traceback (pytest turns it into a warning, pyproject turns that
into an error, but only for the test it lands in, and not for what a thread *returns*), and a
thread joined with a timeout that is still running is silently forgotten. A race test built on
bare threads so passes when half its threads died before they raced. `run_concurrently` hands
back every thread's result, so the test can assert each one, and fails the test when a thread
raised or did not finish."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")

_NOTHING = object()


def run_concurrently(fns: Sequence[Callable[[], T]], timeout: float = 120.0) -> list[T]:
    """Run each of `fns` in a thread of its own, all released at once by a barrier, and return
    their results in the order of `fns`. The first exception any thread raised is raised here
    (the others are noted on it); a thread still running after `timeout` seconds fails the test."""
    if not fns:
        raise ValueError("run_concurrently needs at least one function")
    barrier = threading.Barrier(len(fns))
    results: list[object] = [_NOTHING] * len(fns)
    errors: list[tuple[int, BaseException]] = []
    lock = threading.Lock()

    def run(i: int, fn: Callable[[], T]) -> None:
        try:
            barrier.wait(timeout)
            results[i] = fn()
        except BaseException as exc:  # re-raised in the test's thread below
            with lock:
                errors.append((i, exc))

    threads = [
        threading.Thread(target=run, args=(i, fn), name=f"concurrent-{i}", daemon=True)
        for i, fn in enumerate(fns)
    ]
    for t in threads:
        t.start()
    deadline = time.monotonic() + timeout
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    alive = [t.name for t in threads if t.is_alive()]
    with lock:
        raised = list(errors)
    if raised:
        first_index, first = raised[0]
        first.add_note(f"raised in thread concurrent-{first_index} of {len(fns)}")
        for i, exc in raised[1:]:
            first.add_note(f"thread concurrent-{i} also raised {exc!r}")
        if alive:
            first.add_note(f"still running after {timeout} s: {alive}")
        raise first
    if alive:
        raise AssertionError(f"{len(alive)} of {len(fns)} threads still running after {timeout} s: {alive}")
    assert all(r is not _NOTHING for r in results)
    return results  # type: ignore[return-value]
