"""Section 6: the audit trail's hash chain.

- Append cost: events/s of `Store.record_event` (one write transaction appending one chained
  event), with one writer and with two writer processes on one database, against the same
  transaction on the schema before the chain (revision 0001: a plain INSERT, no head lock, no
  hash). The difference per append is what the chain adds to every state change.
- `sfox-bot audit verify` on 100 000 and 1 000 000 events: wall time and peak memory (VmHWM) of
  the command as an operator runs it. The fixture is a valid chain bulk-inserted with Core
  executemany after the real migrations, then verified by the command.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from sqlalchemy import insert, update

from bench import harness as h
from bot.audit import chain as audit
from bot.audit import verify as audit_verify
from bot.store import migrate
from bot.store.db import Store
from bot.store.engine import make_engine
from bot.store.records import Event
from bot.store.schema import UTCDateTime, audit_head, events, requests
from tests import postgres

APPEND_HEADERS = [
    "database",
    "schema",
    "writers",
    "events",
    "wall s",
    "events/s",
    "ms per append (wall / events x writers)",
]
VERIFY_HEADERS = [
    "events",
    "fixture build s",
    "verify wall s",
    "verify peak RSS MiB (VmHWM)",
    "export jsonl wall s",
    "export peak RSS MiB",
    "result",
]

_PLAIN_EVENTS = sa.table(  # the events table as revision 0001 made it
    "events",
    sa.column("request_id", sa.Integer),
    sa.column("at", UTCDateTime),
    sa.column("kind", sa.String),
    sa.column("actor", sa.String),
    sa.column("http_status", sa.Integer),
    sa.column("duration_ms", sa.Integer),
    sa.column("detail", sa.Text),
)


@dataclass
class AppendRow:
    backend: str
    schema: str
    writers: int
    events: int
    wall: float

    @property
    def rate(self) -> float:
        return self.events / self.wall

    @property
    def ms_per_append(self) -> float:
        return self.wall / self.events * self.writers * 1000

    def cells(self) -> list[Any]:
        return [
            self.backend,
            self.schema,
            self.writers,
            f"{self.events:,}",
            f"{self.wall:.2f}",
            f"{self.rate:,.0f}",
            f"{self.ms_per_append:.3f}",
        ]


@dataclass
class VerifyRow:
    events: int
    build: float
    wall: float
    peak_rss_kib: int
    export_wall: float
    export_peak_kib: int
    result: str

    def cells(self) -> list[Any]:
        return [
            f"{self.events:,}",
            f"{self.build:.1f}",
            f"{self.wall:.2f}",
            h.mib(self.peak_rss_kib),
            f"{self.export_wall:.2f}",
            h.mib(self.export_peak_kib),
            self.result,
        ]


# -- append cost -----------------------------------------------------------------------------------


def _prepare(url: str, chained: bool) -> int:
    engine = make_engine(url)
    if chained:
        migrate.upgrade(engine)
    else:
        config = migrate.alembic_config(url)
        with engine.begin() as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, "0001")
    now = datetime.now(UTC)
    with engine.begin() as conn:
        request_id = conn.execute(
            insert(requests)
            .values(
                sfox_user_id="client_bench",
                reason="bench",
                requested_by=h.ALICE,
                channel_id=h.CHANNEL,
                status="succeeded",
                required_approvals=1,
                created_at=now,
                expires_at=now,
                attempts=1,
                retryable=False,
            )
            .returning(requests.c.id)
        ).scalar_one()
    engine.dispose()
    return int(request_id)


WARM_UP = 20  # appends per writer before the clock starts (connections, statement caches)


def _append_worker(url: str, chained: bool, request_id: int, n: int, start: Any, done: Any) -> None:
    store = Store.from_url(url)
    plain = insert(_PLAIN_EVENTS)
    detail = '{"attempts": 1}'

    def append() -> None:
        now = datetime.now(UTC)
        if chained:
            store.record_event(request_id, now, Event("sfox_delete", h.BOB, detail, 200, 12))
            return
        with store._write() as conn:  # the same write transaction, without the chain
            conn.execute(
                plain,
                {
                    "request_id": request_id,
                    "at": now,
                    "kind": "sfox_delete",
                    "actor": h.BOB,
                    "http_status": 200,
                    "duration_ms": 12,
                    "detail": detail,
                },
            )

    for _ in range(WARM_UP):
        append()
    start.wait(60)
    began = time.perf_counter()
    for _ in range(n):
        append()
    done.put((began, time.perf_counter()))
    store.close()


def measure_appends(url: str, backend: str, chained: bool, writers: int, n: int) -> AppendRow:
    request_id = _prepare(url, chained)
    ctx = multiprocessing.get_context("spawn")
    start, done = ctx.Barrier(writers + 1), ctx.Queue()
    per = n // writers
    procs = [
        ctx.Process(target=_append_worker, args=(url, chained, request_id, per, start, done))
        for _ in range(writers)
    ]
    for p in procs:
        p.start()
    start.wait(60)
    windows = [done.get(timeout=600) for _ in procs]
    for p in procs:
        p.join(60)
        if p.exitcode != 0:
            raise h.BenchError(f"an append writer failed (exit {p.exitcode})")
    wall = max(end for _, end in windows) - min(began for began, _ in windows)
    if chained:
        engine = make_engine(url)
        report = audit_verify.verify(engine)
        engine.dispose()
        if not report.ok or report.count != (per + WARM_UP) * writers:
            raise h.BenchError(f"after concurrent appends: {report.line()}")
    return AppendRow(backend, "chained" if chained else "before (0001)", writers, per * writers, wall)


def run_appends(n: int, backends: tuple[str, ...], repeats: int = 1) -> list[AppendRow]:
    """Each configuration `repeats` times on a fresh database, alternating chained and not (so
    a noisy neighbour hurts both alike); the best run of each is kept."""
    work = h.workdir("audit-append")
    rows: list[AppendRow] = []
    for backend in backends:
        for writers in (1, 2):
            runs: dict[bool, list[AppendRow]] = {False: [], True: []}
            for attempt in range(repeats):
                for chained in (False, True):
                    if backend == "sqlite":
                        url = f"sqlite:///{work / f'append-{writers}-{int(chained)}-{attempt}.db'}"
                        runs[chained].append(measure_appends(url, "SQLite", chained, writers, n))
                    else:
                        with postgres.own_schema(prefix="bench") as url:
                            runs[chained].append(measure_appends(url, "PostgreSQL", chained, writers, n))
            rows += [min(runs[chained], key=lambda r: r.wall) for chained in (False, True)]
    return rows


# -- verify at scale -------------------------------------------------------------------------------


def seed_chain(path: Path, n: int, batch: int = 20_000) -> str:
    """A migrated SQLite database holding a valid chain of `n` events over n/10 requests."""
    url = f"sqlite:///{path}"
    engine = make_engine(url)
    migrate.upgrade(engine)
    start = datetime(2025, 1, 1, tzinfo=UTC)
    n_requests = max(1, n // 10)
    with engine.begin() as conn:
        for first in range(1, n_requests + 1, batch):
            conn.execute(
                insert(requests),
                [
                    {
                        "id": i,
                        "sfox_user_id": f"client_{i:07d}",
                        "reason": "left the company",
                        "requested_by": h.ALICE,
                        "channel_id": h.CHANNEL,
                        "status": "succeeded",
                        "required_approvals": 1,
                        "created_at": start,
                        "expires_at": start,
                        "attempts": 1,
                        "retryable": False,
                    }
                    for i in range(first, min(first + batch, n_requests + 1))
                ],
            )
        prev = audit.GENESIS
        kinds = ("requested", "card_posted", "approved", "claimed", "sfox_call_started", "sfox_delete")
        rows: list[dict[str, Any]] = []
        for seq in range(1, n + 1):
            kind = kinds[seq % len(kinds)]
            event = {
                "seq": seq,
                "request_id": (seq - 1) // 10 + 1,
                "at": start + timedelta(seconds=seq, microseconds=seq % 1_000_000),
                "kind": kind,
                "actor": h.BOB if kind == "approved" else None,
                "http_status": 200 if kind == "sfox_delete" else None,
                "duration_ms": 87 if kind == "sfox_delete" else None,
                "detail": '{"attempts": 1}' if kind == "sfox_delete" else None,
            }
            digest = audit.link(prev, audit.canonical(event), None)
            event["prev_hash"], event["hash"] = prev, digest
            prev = digest
            rows.append(event)
            if len(rows) >= batch:
                conn.execute(insert(events), rows)
                rows = []
        if rows:
            conn.execute(insert(events), rows)
        conn.execute(update(audit_head).where(audit_head.c.id == 1).values(seq=n, hash=prev))
    engine.dispose()
    return url


def run_command(url: str, work: Path, *args: str) -> tuple[str, float, int]:
    """`sfox-bot audit ARGS` as an operator runs it, output to a file: (the output's last line,
    wall seconds, peak RSS KiB of that process)."""
    peak_path, out_path = work / "audit.peak", work / "audit.out"
    peak_path.unlink(missing_ok=True)
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "SFOX_BENCH_PEAK_FILE": str(peak_path),
        "PYTHONPATH": str(h.ROOT),
    }
    env.pop("SFOX_AUDIT_KEY", None)
    with open(out_path, "wb") as out:
        started = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "bench.peak", "audit", *args],
            stdout=out,
            stderr=subprocess.PIPE,
            env=env,
            cwd=work,
            check=False,
        )
        wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise h.BenchError(f"audit {' '.join(args)} failed: {proc.stderr.decode(errors='replace')}")
    with open(out_path, "rb") as f:
        f.seek(max(0, out_path.stat().st_size - 4096))
        last = f.read().decode(errors="replace").strip().splitlines()[-1]
    out_path.unlink()
    return last, wall, int(peak_path.read_text())


def run_verifies(sizes: tuple[int, ...]) -> list[VerifyRow]:
    work = h.workdir("audit-verify")
    rows = []
    for n in sizes:
        path = work / f"chain-{n}.db"
        began = time.perf_counter()
        url = seed_chain(path, n)
        build = time.perf_counter() - began
        line, wall, peak = run_command(url, work, "verify")
        if not line.startswith(f"audit ok: {n} events"):
            raise h.BenchError(f"audit verify on {n} events said: {line}")
        last, export_wall, export_peak = run_command(url, work, "export")
        if json.loads(last)["seq"] != n:
            raise h.BenchError(f"audit export on {n} events ended with {last[:80]}")
        rows.append(VerifyRow(n, build, wall, peak, export_wall, export_peak, line.split(",")[0]))
        path.unlink()
    return rows
