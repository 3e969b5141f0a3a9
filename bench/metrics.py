"""`GET /metrics` cost: the time of one scrape (the database gauges are read at each scrape) on
1 000, 10 000 and 100 000 recorded requests with 1 000 owed Slack messages, and the time the
instrumentation adds to a Slack Web API call. Prints figures; asserts nothing.

    .venv/bin/python -m bench.metrics
"""

from __future__ import annotations

import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert

from bot.runtime.metrics import Metrics
from bot.store import migrate
from bot.store.db import Store
from bot.store.schema import outbox, requests

STATUSES = ("succeeded", "succeeded", "denied", "expired", "failed", "blocked")


def fill(store: Store, count: int) -> None:
    now = datetime.now(UTC)
    rows = [
        {
            "sfox_user_id": f"client_{i}",
            "reason": "",
            "requested_by": "UADMIN001",
            "channel_id": "C0123TEST",
            "status": STATUSES[i % len(STATUSES)],
            "required_approvals": 1,
            "created_at": now - timedelta(minutes=i),
            "expires_at": now - timedelta(minutes=i) + timedelta(hours=1),
            "attempts": 0,
            "retryable": False,
        }
        for i in range(count)
    ]
    with store.engine.begin() as conn:
        for start in range(0, count, 5000):
            conn.execute(insert(requests), rows[start : start + 5000])
        conn.execute(
            insert(outbox),
            [{"request_id": 1 + i, "kind": "reply", "text": "x", "created_at": now} for i in range(1000)],
        )


def scrape_ms(metrics: Metrics, runs: int = 20) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        metrics.scrape()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def main() -> None:
    print("| requests | scrape (median of 20) |")
    print("|---:|---:|")
    for count in (1_000, 10_000, 100_000):
        with tempfile.TemporaryDirectory() as tmp:
            store = Store.from_url(f"sqlite:///{Path(tmp) / 'bench.db'}")
            migrate.upgrade(store.engine)
            fill(store, count)
            print(f"| {count:,} | {scrape_ms(Metrics(store)):.1f} ms |")
            store.close()

    class Client:
        def api_call(self, method: str, **kwargs: object) -> dict:
            return {"ok": True}

    with tempfile.TemporaryDirectory() as tmp:
        metrics = Metrics(Store.from_url(f"sqlite:///{Path(tmp) / 'x.db'}"))
        bare, counted = Client(), Client()
        metrics.instrument_slack(counted)
        n = 100_000
        started = time.perf_counter()
        for _ in range(n):
            bare.api_call("chat.postMessage")
        base = time.perf_counter() - started
        started = time.perf_counter()
        for _ in range(n):
            counted.api_call("chat.postMessage")
        extra = (time.perf_counter() - started - base) / n * 1e6
        print(f"\nInstrumentation added to one Slack Web API call: {extra:.2f} µs")


if __name__ == "__main__":
    main()
