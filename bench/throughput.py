"""Section 2: many approvals at once. 200 distinct pending requests are approved by 200 clicks sent
at the same moment, with sFOX answering each DELETE after 200 ms; every DELETE must be sent exactly
once, and we time how long until the last outcome is recorded.

The pending requests are seeded through the Store API (as `/sfox-deactivate` would record them),
not through 200 slash commands: those would make 200 sFOX lookups first, and the lookups count
against the same 250-per-10-s limit as the DELETEs.

Concurrency is bounded twice in the bot: the DELETEs run on the job pool (`runtime.JOB_THREADS`
threads, so at most that many are in flight), and every sFOX call first takes a slot from the
database-shared SharedRateLimiter (bot/sfox/pacing.py) (`SFOX_RATE_LIMIT_PER_10S`, default 200 < sFOX's 250), which
makes a job wait, never fail, once the window is full.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from bench import harness as h
from bot.config import Settings
from bot.fakes import sfox_limits
from bot.runtime.bootstrap import JOB_THREADS
from bot.slack.blocks import APPROVE
from bot.store import migrate
from bot.store.db import Store
from bot.store.schema import requests
from tests import postgres

DELAY = 0.2


@dataclass
class ThroughputResult:
    database: str
    requests: int
    wall: float  # first click sent -> last outcome recorded
    first_delete: float  # first click sent -> first DELETE at sFOX
    last_delete: float  # first click sent -> last DELETE at sFOX
    max_in_flight: int
    max_per_10s: int
    ack_p99: float
    rate_limit: int

    def cells(self) -> list[Any]:
        return [
            self.database,
            self.requests,
            f"{self.wall:.2f}",
            f"{self.first_delete * 1000:.0f}",
            f"{self.last_delete:.2f}",
            f"{self.max_in_flight} (pool {JOB_THREADS})",
            f"{self.max_per_10s} (limit {self.rate_limit})",
            h.ms(self.ack_p99),
            f"{self.requests / self.wall:.0f}",
        ]


HEADERS = [
    "database",
    "approvals",
    "wall s (last outcome)",
    "first DELETE ms",
    "last DELETE s",
    "max DELETEs in flight",
    "max sFOX calls / 10 s",
    "ack p99 ms",
    "DELETEs/s",
]


def run(n: int, rig: h.Rig, memory: list[dict[str, Any]], on_postgres: bool = False) -> ThroughputResult:
    """`n` approvals at once, on PostgreSQL or SQLite."""
    if on_postgres:
        with postgres.own_schema(prefix="tp") as url:
            return _run("PostgreSQL", url, n, rig, memory)
    work = h.workdir("throughput")
    return _run("SQLite", f"sqlite:///{work / 'throughput.db'}", n, rig, memory)


def _run(database: str, url: str, n: int, rig: h.Rig, memory: list[dict[str, Any]]) -> ThroughputResult:
    work = h.workdir(f"throughput-{database.lower()}")
    store = Store.from_url(url)
    migrate.upgrade(store.engine)
    # production defaults, incl. the rate limit
    bot = h.start_bot(f"bot-throughput-{database.lower()}", rig, url, work)
    idle = bot.rss_kib()
    driver = rig.driver
    users = [f"tp_{database[0].lower()}{i}" for i in range(n)]
    try:
        h.warm_up(rig, bot)
        seeded = h.seed_pending(store, rig, users)
        bodies = [driver.click_body(h.BOB, APPROVE, str(s.request_id), s.ts)[0] for s in seeded]
        rig.sfox.delay = DELAY
        offset = time.time() - time.perf_counter()
        samples = rig.gen.burst([(bot.url, body) for body in bodies])
        t0 = offset + min(s.started for s in samples)
        ids = [s.request_id for s in seeded]
        h.wait_for(
            # Settled: neither still waiting for its click's step (pending) nor for sFOX (executing).
            lambda: (
                sum(v for k, v in h.status_counts(store, ids).items() if k not in ("pending", "executing"))
                == n
            ),
            60,
            "every approved request to record its DELETE outcome",
        )
        counts = h.status_counts(store, ids)
        if counts.get("succeeded") != n:
            raise h.BenchError(f"not every request succeeded: {counts}")
        h.assert_deleted_once(rig.sfox, users)
        with store.engine.connect() as conn:
            last: datetime = conn.execute(
                select(func.max(requests.c.completed_at)).where(requests.c.id.in_(ids))
            ).scalar_one()
        last_at = last.timestamp()  # UTCDateTime reads back time-zone aware
        arrivals = sorted(r.at for r in rig.sfox.requests("DELETE"))
        memory.append({"server": bot.name, "idle": idle, "loaded": bot.rss_kib()})
        return ThroughputResult(
            database=database,
            requests=n,
            wall=last_at - t0,
            first_delete=arrivals[0] - t0,
            last_delete=arrivals[-1] - t0,
            max_in_flight=sfox_limits.most_in_any_window(arrivals, DELAY),
            max_per_10s=sfox_limits.most_in_any_window(arrivals, 10.0),
            ack_p99=h.percentile([s.seconds for s in samples], 99),
            rate_limit=Settings().sfox_rate_limit_per_10s,
        )
    finally:
        rig.sfox.delay = 0.0
        store.close()
        bot.stop()
        rig.reset()
