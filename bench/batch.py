"""Section 8: one batch of many users, run at sFOX's pace by two replicas sharing one database.

The fake sFOX enforces sFOX's limit (250 calls per sliding 10 s, then 429 with Retry-After) on
every call, lookups included. The batch is asked on replica A and approved on replica B (which
runs it); both share the database, and with it the rate limiter. Checked (a failure exits
non-zero): every user DELETEd exactly once and recorded `succeeded`. Measured: 429s, the DELETE
rate from the first DELETE to the last, the longest gap between the card's progress updates.

Busy (issue 26): the same batch with every core kept busy by another process, one busy loop per
core, started with the command and stopped with the summary: calls then lag their limiter
slots (scheduling, a slow connect), which must not let sFOX count more than its limit.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

from bench import harness as h
from bot.fakes import sfox_limits
from bot.fakes.slack_driver import SlackDriver
from bot.slack.batch_card import BATCH_APPROVE
from bot.store import migrate
from bot.store.db import Store
from tests import postgres

LIMIT = 250
WINDOW = 10.0
HEADERS = [
    "database",
    "load",
    "users",
    "429s",
    "pre-flight s",
    "first→last DELETE s",
    "DELETE/s",
    "% of limit",
    "most calls in any 10 s",
    "longest progress gap s",
    "card updates",
]


@dataclass
class BatchResult:
    backend: str
    load: str
    users: int
    rate_limited: int
    preflight: float
    span: float
    rate: float
    gap: float
    updates: int
    peak: int

    def cells(self) -> list[Any]:
        return [
            self.backend,
            self.load,
            self.users,
            self.rate_limited,
            f"{self.preflight:.1f}",
            f"{self.span:.1f}",
            f"{self.rate:.2f}",
            f"{100 * self.rate / (LIMIT / WINDOW):.0f} %",
            self.peak,
            f"{self.gap:.1f}",
            self.updates,
        ]


# A benchmark measures the batch's pace past sFOX's limit on a machine that runs other work, not
# the ack: a slow first answer there must not end the run.
BENCH_ACK = "the benchmark measures the batch's pace, not the ack time, on a loaded machine"


def run(users: int, rig: h.Rig, on_postgres: bool, busy: bool = False) -> BatchResult:
    """One batch of `users` on PostgreSQL or SQLite; `busy`: every core kept busy meanwhile."""
    if on_postgres:
        with postgres.own_schema(prefix="bench") as url:
            return _batch("PostgreSQL", url, users, rig, busy)
    work = h.workdir("batch-busy" if busy else "batch")
    return _batch("SQLite", f"sqlite:///{work / 'batch.db'}", users, rig, busy)


@contextmanager
def busy_cores(on: bool) -> Iterator[str]:
    """One busy-loop process per core while the block runs (none when not `on`): the load a
    machine shared with other work puts on the bot, its database and the fakes."""
    loops = (
        [
            subprocess.Popen([sys.executable, "-c", "while True: pass"], stdin=subprocess.DEVNULL)
            for _ in range(os.cpu_count() or 1)
        ]
        if on
        else []
    )
    try:
        yield f"{len(loops)} busy loops" if loops else "idle"
    finally:
        for loop in loops:
            loop.kill()
        for loop in loops:
            loop.wait()


def _batch(backend: str, url: str, users: int, rig: h.Rig, busy: bool) -> BatchResult:
    # The busy loops run from the command to the summary only: started earlier, they would also
    # slow the bots' start and the wait for the fake's window, measuring nothing (and, in the
    # test suite's smoke run, take both cores from the other tests for tens of seconds).
    work = h.workdir(f"batch-{backend.lower()}{'-busy' if busy else ''}")
    store = Store.from_url(url)
    migrate.upgrade(store.engine)
    tag = uuid.uuid4().hex[:6]
    ids = [f"batch_{tag}_{i:04d}" for i in range(users)]
    for uid in ids:
        rig.sfox.add_user(uid)
    env = {
        "SFOX_RATE_LIMIT_PER_10S": str(LIMIT),
        "SFOX_BALANCE_CHECK": "off",
        "SFOX_SWEEP_INTERVAL_SECONDS": "5",
    }
    bots = [h.start_bot(f"{work.name}-{i}", rig, url, work, **env) for i in (1, 2)]
    drivers = [
        SlackDriver(b.url, h.SIGNING_SECRET, rig.slack, channel_id=h.CHANNEL, timeout=30, why=BENCH_ACK)
        for b in bots
    ]
    limit, retry_after = rig.sfox.rate_limit, rig.sfox.retry_after
    rig.sfox.rate_limit = (LIMIT, WINDOW)
    rig.sfox.retry_after = 60
    rig.sfox.rate_limited = 0
    cleanup = ExitStack()
    try:
        # The fake sFOX is the rig's, shared by every run: an earlier run's calls must have left
        # its window (this run's database knows nothing of them), as sFOX's would. Its own count,
        # not `requests()`: an earlier section's reset clears that list, not what sFOX counted
        # (section 2's DELETEs, just before, once gave this batch 94 429s).
        h.wait_for(
            lambda: (
                rig.sfox.counted_within(WINDOW + 1) == 0
                and all(r.at < time.time() - WINDOW - 1 for r in rig.sfox.requests())
            ),
            WINDOW + 30,
            "the fake sFOX's window to clear of earlier runs",
            poll_every=0.25,
        )
        earlier = len(rig.slack.cards())  # an earlier run's card says the same words
        load = cleanup.enter_context(busy_cores(busy))
        started = time.monotonic()
        drivers[0].command(h.ALICE, "batch " + ",".join(ids) + " benchmark")
        try:
            card = h.wait_for(
                lambda: next(
                    (
                        m
                        for m in rig.slack.cards()[earlier:]
                        if m.text.startswith("sFOX batch") and f"({users} users)" in m.text
                    ),
                    None,
                ),
                180,
                "the batch card",
            )
        except h.BenchError as exc:  # say what the card, if any, and the thread said instead
            said = [(m.text, [r.text for r in rig.slack.thread(m.ts)]) for m in rig.slack.cards()[earlier:]]
            raise h.BenchError(f"{exc}; {rig.sfox.rate_limited} 429s; cards: {said}"[:4000]) from None
        preflight = time.monotonic() - started
        updates: list[float] = []
        stop = threading.Event()

        def watch() -> None:
            seen = card.updates
            while not stop.is_set():
                if card.updates != seen:
                    seen = card.updates
                    updates.append(time.time())
                time.sleep(0.05)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        batch_id = card.text.split("#", 1)[1].split(" ", 1)[0]
        drivers[1].click(h.BOB, BATCH_APPROVE, batch_id, card.ts)
        h.wait_for(
            lambda: any("finished" in m.text for m in rig.slack.thread(card.ts)), 300, "the batch summary"
        )
        stop.set()
        watcher.join()
        cleanup.close()  # the busy loops stop with the summary
        h.assert_deleted_once(rig.sfox, ids)
        counts = h.status_counts(store, [r.id for r in store.history(limit=None, batch_id=int(batch_id))])
        if counts != {"succeeded": users}:
            raise h.BenchError(f"batch outcomes: {counts}")
        times = sorted(r.at for r in rig.sfox.requests("DELETE") if f"batch_{tag}_" in r.raw_path)
        span = times[-1] - times[0] if len(times) > 1 else 0.0
        rate = (len(times) - 1) / span if span > 0 else float("inf")
        marks = [times[0], *[u for u in updates if times[0] <= u <= times[-1]], times[-1]]
        gap = max((b - a for a, b in zip(marks, marks[1:], strict=False)), default=0.0)
        peak = sfox_limits.most_in_any_window([r.at for r in rig.sfox.requests()], WINDOW)
        return BatchResult(
            backend, load, users, rig.sfox.rate_limited, preflight, span, rate, gap, len(updates), peak
        )
    finally:
        cleanup.close()
        rig.sfox.rate_limit = limit or sfox_limits.OVERALL  # sFOX's own again, for what follows
        rig.sfox.retry_after = retry_after
        for d in drivers:
            d.close()
        for b in bots:
            b.stop()
        store.close()
