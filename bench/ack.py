"""Section 1: how fast Slack gets its ack, for `/sfox-deactivate` and for an Approve click.

For each database and sFOX delay a fresh `sfox-bot run` (a web process and its workers) serves
a closed loop of 1, 10 and 50 clients, each request on a new connection, its connect timed with
it (Slack promises no keep-alive; issue 26 measured so); the bare Bolt baseline serves the same
traffic right before, while the bot is paused (SIGSTOP) so its background work cannot slow the
baseline down. Every command
names a distinct sFOX user and every click approves a distinct pending request, so the bot does
its full work behind each ack: lookups, cards, claims, DELETEs, thread replies.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select

from bench import harness as h
from bench.loadgen import LoadGenerator, Sample
from bot.slack.blocks import APPROVE
from bot.store.db import Store
from bot.store.schema import requests
from tests import postgres

# The fake sFOX has no limit; the bot's own limiter is set to the most sFOX allows (250/10 s), so
# the backlog drains at 25 calls/s after each block. The acks never wait for it.
RATE_LIMIT = "250"


@dataclass
class AckConfig:
    samples: dict[int, int]  # clients -> timed requests per case
    delays: tuple[float, ...]
    drain_timeout: float = 240.0


FULL = AckConfig(samples={1: 150, 10: 400, 50: 1000}, delays=(0.0, 0.5), drain_timeout=360.0)
QUICK = AckConfig(samples={1: 20, 10: 40}, delays=(0.0,), drain_timeout=60.0)


@dataclass
class AckRow:
    database: str
    kind: str
    delay: float
    clients: int
    ours: list[float]
    bare: list[float]
    ours_wall: float
    bare_wall: float
    errors: int

    def cells(self) -> list[Any]:
        o = [h.percentile(self.ours, p) for p in (50, 95, 99)]
        b = [h.percentile(self.bare, p) for p in (50, 95, 99)]
        return [
            self.database,
            self.kind,
            f"{self.delay * 1000:.0f}",
            self.clients,
            len(self.ours),
            *[h.ms(v) for v in o],
            *[h.ms(v) for v in b],
            f"{o[0] / b[0]:.2f}",
            f"{o[2] / b[2]:.2f}",
            f"{len(self.ours) / self.ours_wall:.0f}",
        ]


HEADERS = [
    "database",
    "request",
    "sFOX ms",
    "clients",
    "n",
    "ours p50",
    "ours p95",
    "ours p99",
    "bare p50",
    "bare p95",
    "bare p99",
    "ratio p50",
    "ratio p99",
    "ours req/s",
]


@dataclass
class AckResult:
    rows: list[AckRow] = field(default_factory=list)
    drains: list[str] = field(default_factory=list)


def run(cfg: AckConfig, rig: h.Rig, memory: list[dict[str, Any]], backends: Sequence[str]) -> AckResult:
    result = AckResult()
    work = h.workdir("ack")
    bare = h.start_bare(rig, work)
    try:
        for backend in backends:
            for delay in cfg.delays:
                rig.sfox.delay = delay
                name = f"bot-ack-{backend}-{int(delay * 1000)}ms"
                if backend == "postgres":
                    with postgres.own_schema(prefix="ack") as url:
                        _one(cfg, "PostgreSQL", delay, rig, bare, url, name, work, memory, result)
                else:
                    url = f"sqlite:///{work / f'ack-{int(delay * 1000)}.db'}"
                    _one(cfg, "SQLite", delay, rig, bare, url, name, work, memory, result)
        memory.append({"server": "bare bolt", "idle": None, "loaded": bare.rss_kib()})
    finally:
        rig.sfox.delay = 0.0
        bare.stop()
    return result


def _one(
    cfg: AckConfig,
    database: str,
    delay: float,
    rig: h.Rig,
    bare: h.Server,
    url: str,
    name: str,
    work: Path,
    memory: list[dict[str, Any]],
    result: AckResult,
) -> None:
    # No balance read (section 7 measures it): it is paced at 4 per 10 s, so under this load
    # nearly every card would wait 3 s for a slot and the drain would measure that.
    bot = h.start_bot(name, rig, url, work, SFOX_RATE_LIMIT_PER_10S=RATE_LIMIT, SFOX_BALANCE_CHECK="off")
    idle = bot.rss_kib()
    store = Store.from_url(url)
    try:
        _block(cfg, database, delay, rig, bot, bare, store, rig.driver, result)
        memory.append({"server": bot.name, "idle": idle, "loaded": bot.rss_kib()})
    finally:
        store.close()
        bot.stop()
        rig.reset()


def _block(
    cfg: AckConfig,
    database: str,
    delay: float,
    rig: h.Rig,
    bot: h.Server,
    bare: h.Server,
    store: Store,
    driver: Any,
    result: AckResult,
) -> None:
    tag = f"{database[0].lower()}{int(delay * 1000)}"
    command_users: list[str] = []
    answers: dict[str, str] = {}  # command user -> the name of its response_url
    click_users: list[str] = []
    click_ids: list[int] = []
    for kind in ("command", "approve"):
        for clients, n in cfg.samples.items():
            per = max(1, n // clients)
            total = per * clients + clients  # + one untimed warm-up per client
            if kind == "command":
                users = [f"ack_{tag}_c{clients}_{i}" for i in range(total)]
                for uid in users:
                    rig.sfox.add_user(uid)
                command_users += users
                built = [driver.command_body(h.ALICE, f"{uid} benchmark") for uid in users]
                answers.update({uid: b[1] for uid, b in zip(users, built, strict=True)})
                ours = [b[0] for b in built]
            else:
                users = [f"ack_{tag}_a{clients}_{i}" for i in range(total)]
                seeded = h.seed_pending(store, rig, users)
                click_users += users
                click_ids += [s.request_id for s in seeded]
                ours = [driver.click_body(h.BOB, APPROVE, str(s.request_id), s.ts)[0] for s in seeded]
            bare_bodies = (
                [driver.command_body(h.ALICE, f"bare_{i} benchmark")[0] for i in range(total)]
                if kind == "command"
                else [driver.click_body(h.BOB, APPROVE, str(10**9 + i), "1.1")[0] for i in range(total)]
            )
            bot.pause()
            try:
                bare_samples, bare_wall = _measure(rig.gen, bare.url, bare_bodies, clients, per)
            finally:
                bot.resume()
            ours_samples, ours_wall = _measure(rig.gen, bot.url, ours, clients, per)
            errors = sum(1 for s in ours_samples + bare_samples if s.status != 200)
            result.rows.append(
                AckRow(
                    database,
                    kind,
                    delay,
                    clients,
                    [s.seconds for s in ours_samples],
                    [s.seconds for s in bare_samples],
                    ours_wall,
                    bare_wall,
                    errors,
                )
            )
            if errors:
                raise h.BenchError(f"{errors} ack(s) were not HTTP 200 ({kind}, {clients} clients)")
    _drain(cfg, database, delay, rig, store, answers, click_users, click_ids, result)


def _measure(
    gen: LoadGenerator, url: str, bodies: list[bytes], clients: int, per: int
) -> tuple[list[Sample], float]:
    warmup = bodies[:clients]
    rest = bodies[clients:]
    per_client = [rest[i * per : (i + 1) * per] for i in range(clients)]
    samples = gen.closed_loop(url, per_client, warmup, fresh=True)
    wall = max(s.started + s.seconds for s in samples) - min(s.started for s in samples)
    return samples, wall


def _drain(
    cfg: AckConfig,
    database: str,
    delay: float,
    rig: h.Rig,
    store: Store,
    answers: dict[str, str],
    click_users: list[str],
    click_ids: list[int],
    result: AckResult,
) -> None:
    """Wait until the bot has finished everything behind the acks, then check it did it once."""
    started = time.monotonic()
    command_users = list(answers)

    def carded() -> set[str]:
        with store.engine.connect() as conn:
            return set(
                conn.execute(
                    select(requests.c.sfox_user_id).where(
                        requests.c.sfox_user_id.in_(command_users), requests.c.message_ts.is_not(None)
                    )
                ).scalars()
            )

    try:
        h.wait_for(
            lambda: (
                h.status_counts(store, click_ids).get("succeeded", 0) == len(click_ids)
                and len(carded()) == len(command_users)
            ),
            cfg.drain_timeout,
            "the bot to finish the lookups and DELETEs behind the acks",
            poll_every=0.5,
        )
    except h.BenchError as exc:
        # Say what the commands without a card were told (their response_url posts).
        missing = sorted(set(command_users) - carded())
        told = {uid: [t for _, t in rig.slack.arrivals.get(answers[uid], [])] for uid in missing[:10]}
        raise h.BenchError(f"{exc}; {len(missing)} command(s) got no card, told: {told}") from None
    h.assert_deleted_once(rig.sfox, click_users)
    lookups = sum(1 for r in rig.sfox.requests("GET"))
    result.drains.append(
        f"{database}, sFOX {delay * 1000:.0f} ms: {len(command_users)} commands → {len(command_users)} cards "
        f"({lookups} lookups), {len(click_users)} approvals → {len(click_users)} DELETEs, each exactly "
        f"once; backlog drained {time.monotonic() - started:.0f} s after the last ack"
    )
