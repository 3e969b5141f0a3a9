"""The thread pools that tell when every request received so far has been handled."""

from __future__ import annotations

import threading

from bot.runtime.pools import TrackedPool, wait_all_idle


def test_idle_only_when_the_handed_off_work_is_done_too():
    listeners = TrackedPool(2)
    jobs = TrackedPool(2)
    release = threading.Event()
    handed_off = threading.Event()

    def job() -> None:
        release.wait(10)

    def listener() -> None:
        jobs.submit(job)
        handed_off.set()

    try:
        listeners.submit(listener)
        assert handed_off.wait(10)
        assert listeners.wait_idle(10)
        assert jobs.busy == 1
        assert not wait_all_idle([listeners, jobs], timeout=0.05)
        release.set()
        assert wait_all_idle([listeners, jobs], timeout=10)
        assert listeners.busy == jobs.busy == 0
    finally:
        release.set()
        listeners.shutdown()
        jobs.shutdown()


def test_a_failing_task_still_counts_as_finished():
    pool = TrackedPool(1)
    try:
        future = pool.submit(lambda: 1 / 0)
        assert pool.wait_idle(10)
        assert isinstance(future.exception(), ZeroDivisionError)
    finally:
        pool.shutdown()
