"""tests/threads.py, the race helper every concurrency test uses: it must fail when a thread
raised or hung, or a race test is only as good as its luck."""

from __future__ import annotations

import threading

import pytest

from tests.threads import run_concurrently


def test_every_result_comes_back_in_order_and_the_threads_really_ran_at_once():
    together = threading.Barrier(5)  # passes only if all five are inside their function at once

    def racer(i: int):
        return lambda: (together.wait(10), i * i)[1]

    assert run_concurrently([racer(i) for i in range(5)], timeout=20) == [0, 1, 4, 9, 16]


def test_a_thread_that_raises_fails_the_caller_and_the_others_are_noted():
    def boom(i: int):
        def fn() -> int:
            if i in (1, 4):
                raise RuntimeError(f"boom {i}")
            return i

        return fn

    with pytest.raises(RuntimeError, match=r"boom [14]") as raised:
        run_concurrently([boom(i) for i in range(8)], timeout=20)
    notes = "\n".join(getattr(raised.value, "__notes__", []))
    assert "of 8" in notes and "also raised RuntimeError('boom" in notes


def test_a_thread_still_running_at_the_timeout_fails_the_caller():
    release = threading.Event()
    try:
        with pytest.raises(AssertionError, match=r"1 of 2 threads still running after 0.5 s"):
            run_concurrently([lambda: 1, lambda: release.wait(30)], timeout=0.5)
    finally:
        release.set()


def test_nothing_to_run_is_a_mistake():
    with pytest.raises(ValueError):
        run_concurrently([])
