"""Section 4: `sfox-bot history` on a large table: wall time and peak memory of the command as an
operator runs it (a subprocess), on 10 000 and on 100 000 recorded requests.

The tables are filled fast with bulk inserts through SQLAlchemy Core (bot/store/schema.py), after the
Alembic migrations created them, so the schema and indexes are exactly the production ones.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import event, insert

from bench import harness as h
from bot.store import migrate
from bot.store.engine import make_engine
from bot.store.schema import approvals, requests

ADMINS = [f"UADMIN{i:03d}" for i in range(20)]
RARE_USER = "client_rare"  # three requests spread over the table: the worst case for a scan
BUSY_ADMIN = ADMINS[7]  # requested one request in 20
STATUSES = ("succeeded", "succeeded", "succeeded", "denied", "expired", "failed")


@dataclass
class HistoryRow:
    rows: int
    case: str
    printed: int
    wall: float
    peak_rss_kib: int

    def cells(self) -> list[Any]:
        return [
            f"{self.rows:,}",
            self.case,
            self.printed,
            f"{self.wall * 1000:.0f}",
            h.mib(self.peak_rss_kib),
        ]


HEADERS = ["rows", "command", "printed", "wall ms", "peak RSS MiB (VmHWM)"]

CASES: list[tuple[str, list[str]]] = [
    ("history --limit 50", ["--limit", "50"]),
    (f"history --user {RARE_USER}", ["--user", RARE_USER]),
    (f"history --user {BUSY_ADMIN}", ["--user", BUSY_ADMIN]),
    ("history --limit 0 (all, JSON)", ["--limit", "0"]),
]


def seed(path: Path, n: int) -> str:
    url = f"sqlite:///{path}"
    engine = make_engine(url)
    migrate.upgrade(engine)
    start = datetime(2025, 1, 1, tzinfo=UTC)
    rare = {0, n // 2, n - 1}
    batch: list[dict[str, Any]] = []
    votes: list[dict[str, Any]] = []
    with engine.begin() as conn:
        for i in range(1, n + 1):
            status = STATUSES[i % len(STATUSES)]
            created = start + timedelta(minutes=i)
            batch.append(
                {
                    "id": i,
                    "sfox_user_id": RARE_USER if i - 1 in rare else f"client_{i:06d}",
                    "reason": "left the company",
                    "requested_by": ADMINS[i % len(ADMINS)],
                    "channel_id": h.CHANNEL,
                    "message_ts": f"{1700000000 + i}.000100",
                    "status": status,
                    "required_approvals": 1,
                    "target_name": "Test User",
                    "target_email": f"client_{i}@example.com",
                    "target_status": "VERIFIED",
                    "created_at": created,
                    "expires_at": created + timedelta(hours=1),
                    "decided_at": created + timedelta(minutes=5),
                    "claimed_at": created + timedelta(minutes=5)
                    if status in ("succeeded", "failed")
                    else None,
                    "completed_at": created + timedelta(minutes=6),
                    "denied_by": ADMINS[(i + 1) % len(ADMINS)] if status == "denied" else None,
                    "http_status": {"succeeded": 200, "failed": 422}.get(status),
                    "error": "Can not disable account with non-zero balances."
                    if status == "failed"
                    else None,
                    "attempts": 1 if status in ("succeeded", "failed") else 0,
                    "retryable": False,
                }
            )
            if status in ("succeeded", "failed"):
                votes.append(
                    {"request_id": i, "approver": ADMINS[(i + 3) % len(ADMINS)], "created_at": created}
                )
            if len(batch) >= 5000:
                conn.execute(insert(requests), batch)
                conn.execute(insert(approvals), votes)
                batch, votes = [], []
        if batch:
            conn.execute(insert(requests), batch)
        if votes:
            conn.execute(insert(approvals), votes)
    engine.dispose()
    return url


def query_plans(url: str, user: str) -> list[str]:
    """EXPLAIN QUERY PLAN of the statements `Store.history(user=...)` really runs (captured from
    the engine), so the plan shown is the one of the code, not of a copy of its query."""
    from bot.store.db import Store

    store = Store.from_url(url)
    seen: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, _ctx: Any, _many: bool) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "FROM requests" in statement:
            seen.append((statement, parameters))

    event.listen(store.engine, "before_cursor_execute", capture)
    try:
        list(store.history(limit=50, user=user))
        event.remove(store.engine, "before_cursor_execute", capture)
        plans = []
        with store.engine.connect() as conn:
            for statement, parameters in seen:
                rows = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)
                plans.append("; ".join(row[3] for row in rows))
        return plans
    finally:
        store.close()


def run_history(url: str, args: list[str], work: Path) -> tuple[int, float, int]:
    """Run `sfox-bot history --format json ARGS` as an operator would (output to a file);
    returns (requests printed, wall seconds, peak RSS KiB of that process, see bench/peak.py)."""
    out_path, peak_path = work / "history.json", work / "history.peak"
    peak_path.unlink(missing_ok=True)
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "SFOX_BENCH_PEAK_FILE": str(peak_path),
        "PYTHONPATH": str(h.ROOT),
    }
    with open(out_path, "wb") as out:
        started = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "bench.peak", "history", "--format", "json", *args],
            stdout=out,
            stderr=subprocess.PIPE,
            env=env,
            cwd=work,
            check=False,
        )
        wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise h.BenchError(f"history {args} failed: {proc.stderr.decode(errors='replace')}")
    with open(out_path, "rb") as f:
        printed = len(json.load(f))
    return printed, wall, int(peak_path.read_text())


def run(sizes: tuple[int, ...], repeats: int) -> tuple[list[HistoryRow], dict[int, list[str]]]:
    work = h.workdir("history")
    rows: list[HistoryRow] = []
    plans: dict[int, list[str]] = {}
    for n in sizes:
        url = seed(work / f"history-{n}.db", n)
        plans[n] = query_plans(url, RARE_USER)
        for label, args in CASES:
            runs = [run_history(url, args, work) for _ in range(repeats)]
            printed = runs[0][0]
            expected = {"--limit 0": n, f"--user {RARE_USER}": 3, f"--user {BUSY_ADMIN}": 50}
            for key, count in expected.items():
                if key in label and printed != count:
                    raise h.BenchError(f"{label} printed {printed} requests, expected {count}")
            if label.endswith("--limit 50") and printed != 50:
                raise h.BenchError(f"{label} printed {printed} requests, expected 50")
            rows.append(HistoryRow(n, label, printed, min(r[1] for r in runs), max(r[2] for r in runs)))
    return rows, plans
