"""Section 3: 100 approvers click Approve on the same request at the same moment, half of them
through one bot process and half through another, both on one database (SQLite file, then
PostgreSQL). Exactly one DELETE may reach sFOX; everyone else must be told, privately, that the
request is already being handled. We time each loser's answer from the click until its
response_url post arrives at the fake Slack.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

from bench import harness as h
from bot.slack.blocks import APPROVE
from bot.store import migrate
from bot.store.db import Store
from tests import postgres


@dataclass
class ContentionResult:
    backend: str
    clicks: int
    deletes: int
    answered: int  # losers that got an ephemeral answer
    silent: int  # losers whose approval raced the winner's claim: the card tells them, no ephemeral
    loser_p50: float
    loser_p99: float
    ack_p99: float

    def cells(self) -> list[Any]:
        return [
            self.backend,
            self.clicks,
            self.deletes,
            f"{self.answered}/{self.clicks - 1}",
            self.silent,
            h.ms(self.loser_p50),
            h.ms(self.loser_p99),
            h.ms(self.ack_p99),
        ]


HEADERS = [
    "database",
    "clicks (2 processes)",
    "DELETEs",
    "losers answered",
    "losers silent",
    "loser answer p50 ms",
    "loser answer p99 ms",
    "ack p99 ms",
]


def run(
    clicks: int, rig: h.Rig, memory: list[dict[str, Any]], backends: tuple[str, ...]
) -> list[ContentionResult]:
    out = []
    for backend in backends:
        if backend == "sqlite":
            work = h.workdir("contention")
            out.append(_one("SQLite", f"sqlite:///{work / 'contention.db'}", clicks, rig, memory, work))
        else:  # run.py ran it only if PostgreSQL is reachable (or failed the run if required)
            work = h.workdir("contention-pg")
            with postgres.own_schema(prefix="bench") as url:
                out.append(_one("PostgreSQL", url, clicks, rig, memory, work))
    return out


def _one(
    backend: str, url: str, clicks: int, rig: h.Rig, memory: list[dict[str, Any]], work: Any
) -> ContentionResult:
    approvers = [f"UAPPR{i:04d}" for i in range(clicks)]
    store = Store.from_url(url)
    migrate.upgrade(store.engine)
    (target,) = h.seed_pending(store, rig, [f"contended_{uuid.uuid4().hex[:8]}"])
    env = {"SFOX_APPROVERS": ",".join([h.ALICE, *approvers])}
    bots = [h.start_bot(f"bot-{backend.lower()}-{i}", rig, url, work, **env) for i in (1, 2)]
    driver = rig.driver
    try:
        for bot in bots:
            h.warm_up(rig, bot)
        named = [driver.click_body(a, APPROVE, str(target.request_id), target.ts) for a in approvers]
        samples = rig.gen.burst([(bots[i % 2].url, body) for i, (body, _) in enumerate(named)])
        h.wait_for(
            lambda: (r := store.get(target.request_id)) is not None and r.status == "succeeded",
            60,
            "the contended request to be deactivated",
        )
        answers = _collect_answers(rig.slack, [name for _, name in named], clicks - 1)
        deletes = rig.sfox.deletes[target.sfox_user_id]
        if deletes != 1:
            raise h.BenchError(f"{backend}: {deletes} DELETEs for one request approved {clicks} times")
        record = store.get(target.request_id)
        assert record is not None
        latencies = [
            answers[name] - sample.started
            for (_, name), sample in zip(named, samples, strict=True)
            if name in answers
        ]
        for bot in bots:
            memory.append({"server": bot.name, "idle": None, "loaded": bot.rss_kib()})
        return ContentionResult(
            backend=backend,
            clicks=clicks,
            deletes=deletes,
            answered=len(latencies),
            silent=clicks - 1 - len(latencies),
            loser_p50=h.percentile(latencies, 50),
            loser_p99=h.percentile(latencies, 99),
            ack_p99=h.percentile([s.seconds for s in samples], 99),
        )
    finally:
        for bot in bots:
            bot.stop()
        store.close()
        rig.reset()


def _collect_answers(slack: h.BenchSlack, names: list[str], expected: int) -> dict[str, float]:
    """First response_url arrival per click; waits until `expected` arrived or none came for 3 s."""
    wanted = set(names)
    deadline = time.monotonic() + 30
    last_count, quiet_since = -1, time.monotonic()
    while time.monotonic() < deadline:
        with slack.lock:
            got = {n: v[0][0] for n, v in slack.arrivals.items() if n in wanted}
        if len(got) >= expected:
            return got
        if len(got) != last_count:
            last_count, quiet_since = len(got), time.monotonic()
        elif time.monotonic() - quiet_since > 3:
            return got
        time.sleep(0.05)
    return got
