"""The two tiers (issue 26): a web role that only answers Slack, workers that do the work.

Every background job competes for the GIL with the requests Slack waits on, so the process that
acks does nothing after the ack. `ALL` is the one process of before (the tests' bot, `SFOX_WORKERS=0`):
it records, acks and carries out. `WEB` records each click and command in its journal as handed
over (due at once to any worker, bot/runtime/journal.py), acks, and wakes the workers
(bot/runtime/wake.py); it runs no sweep and no loop. `WORKER` answers no request: it takes the
journals' rows the moment it is woken (`TakeLoop`), and runs the sweep and every loop of work that
falls due (owed messages, schedules, watches, the audit stream, callbacks) exactly as before.

A row a worker took and never finished (it died) runs out of its lease and is taken again by any
worker's next pass, which tells the person the bot restarted meanwhile: the journals' rule for a
dead process, unchanged.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import Connection, func, select

from bot.runtime.wake import POLL_SECONDS, Listener, listener_for, waker_for
from bot.store.schema import clicks, commands

if TYPE_CHECKING:
    from bot.runtime.bootstrap import Runtime

log = logging.getLogger("sfox_bot.roles")

ALL, WEB, WORKER = "all", "web", "worker"
ROLES = (ALL, WEB, WORKER)


def hand_over(runtime: Runtime) -> None:
    """Make `runtime` the web role: its journals record work for the workers and wake them."""
    waker = waker_for(runtime.store.engine)
    runtime.waker = waker
    runtime.clicks.journal.wake = waker.wake
    runtime.commands.journal.wake = waker.wake


class TakeLoop:
    """A worker's thread: woken by the web role (or every POLL_SECONDS), it takes the clicks and
    commands nobody holds and starts them on the step and job pools."""

    def __init__(self, runtime: Runtime, poll_seconds: float = POLL_SECONDS) -> None:
        self.runtime = runtime
        self.poll_seconds = poll_seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._listener: Listener | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="sfox-take", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def last_pass(self) -> None:
        """At shutdown: take what was acked meanwhile (the supervisor stops the web tier first, so
        this is the last of it), to be finished before the pools close."""
        try:
            self.take()
        except Exception:
            log.exception("last take failed; the rows wait for the next worker")

    def take(self, woken: bool = True) -> int:
        """One pass: what it took. A refused Workflow step's completeError is owed at once too."""
        runtime = self.runtime
        took = runtime.clicks.replay() + runtime.commands.resume()
        if woken and runtime.custom_steps is not None:
            took += runtime.custom_steps.complete_refused()
        if took and runtime.visibility is not None:
            runtime.visibility.metrics.took_work()
        return took

    def _run(self) -> None:
        woken = True  # look at once: work may have waited while no worker ran
        while not self._stop.is_set():
            try:
                self.take(woken)
            except Exception:
                log.exception("taking work failed; will try again")
            if self.runtime.clicks.capped:  # clicks may be left: take more as soon as there is room
                self.runtime.clicks.wait_for_room(self.poll_seconds)
                woken = True
                continue
            woken = self._wait()

    def _wait(self) -> bool:
        try:
            if self._listener is None:
                self._listener = listener_for(self.runtime.store.engine)
                log.info("worker listening for work")
            return self._listener.wait(self.poll_seconds)
        except Exception as exc:  # the database restarting: poll until it listens again
            log.warning("not listening for work; polling", extra={"error": type(exc).__name__})
            if self._listener is not None:
                self._listener.close()
                self._listener = None
            self._stop.wait(self.poll_seconds)
            return False
        finally:
            if self._stop.is_set() and self._listener is not None:
                self._listener.close()
                self._listener = None


@dataclass(frozen=True)
class Handover:
    """What the web role sees of its workers, from the journals alone (any replica agrees)."""

    waiting: int  # clicks and commands acked and handed over, which no worker has taken yet
    oldest_waiting_at: datetime | None
    last_taken_at: datetime | None  # when a worker last took a click or command

    def as_dict(self, now: datetime) -> dict[str, object]:
        def age(at: datetime | None) -> float | None:
            return None if at is None else round(max(0.0, (now - at).total_seconds()), 3)

        return {
            "waiting": self.waiting,
            "oldest_waiting_seconds": age(self.oldest_waiting_at),
            "last_taken_at": None if self.last_taken_at is None else self.last_taken_at.isoformat(),
            "last_taken_seconds_ago": age(self.last_taken_at),
        }


def handover_state(conn: Connection) -> Handover:
    """Read from both journals in one look (two small aggregates each)."""
    waiting, firsts, lasts = 0, [], []
    for table in (clicks, commands):
        untaken = table.c.done_at.is_(None) & (table.c.holds == 0)
        count, first = conn.execute(select(func.count(), func.min(table.c.received_at)).where(untaken)).one()
        # Alone in its statement, so the taken_at index answers it without reading the journal.
        last = conn.execute(select(func.max(table.c.taken_at))).scalar_one()
        waiting += int(count)
        firsts += [first] if first is not None else []
        lasts += [last] if last is not None else []
    return Handover(waiting, min(firsts, default=None), max(lasts, default=None))
