"""Prometheus metrics for the people on call (issue 13): `GET /metrics` in the text format.

Counted in this process: clicks by action and result, sFOX calls by route and status with a
latency histogram, Slack Web API calls by method and error (`ok` when none), sweep duration and
last success time, and the ack latency of every Slack request (from Bolt receiving it to the
listener returning, which is when the ack goes out: `process_before_response`).

Read from the database at each scrape, so they agree across replicas and with `sfox-bot history`:
requests by status (`sfox_bot_requests`; every request ever created, by its outcome so far),
pending requests, the outbox backlog (Slack messages owed) and the age of the oldest owed one;
with SFOX_AUDIT_WEBHOOK_URL, the audit stream's lag (events not yet acknowledged, and the age of
the oldest), beside this process's counts of its failed POSTs and acknowledged batches.

With gunicorn's several workers, set `PROMETHEUS_MULTIPROC_DIR` (an empty directory, wiped
before start): each worker then writes its counters there and any worker's scrape adds them up
(prometheus-client's multiprocess mode).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from bot.audit.stream import Failed, Outcome, Sent
from bot.audit.stream_cursor import state_in
from bot.requests.base import ClickResult
from bot.runtime.roles import handover_state
from bot.store.db import Store
from bot.store.schema import outbox, requests

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# sFOX routes, as labels: the path with its ids taken out (a label per user would explode).
SFOX_ROUTES = (
    ("GET", "/v1/enterprise/users/", "GET /v1/enterprise/users/{id}"),
    ("DELETE", "/v1/enterprise/account/", "DELETE /v1/enterprise/account/{id}"),
    ("POST", "/v1/enterprise/user-tokens/", "POST /v1/enterprise/user-tokens/{id}"),
    ("GET", "/v1/user/balance", "GET /v1/user/balance"),
)


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


class Metrics:
    """This process's metrics, registered on a registry of their own (one per Runtime)."""

    def __init__(self, store: Store, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.store = store
        reg = self.registry
        self.clicks = Counter(
            "sfox_bot_clicks", "Button clicks, by action and result", ["action", "result"], registry=reg
        )
        self.sfox_calls = Counter(
            "sfox_bot_sfox_calls",
            "sFOX API calls (each attempt), by route and HTTP status",
            ["route", "status"],
            registry=reg,
        )
        self.sfox_seconds = Histogram(
            "sfox_bot_sfox_call_seconds",
            "sFOX API call latency (each attempt)",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=reg,
        )
        self.slack_calls = Counter(
            "sfox_bot_slack_calls",
            "Slack Web API calls, by method and error (ok: none)",
            ["method", "error"],
            registry=reg,
        )
        self.sweep_seconds = Histogram(
            "sfox_bot_sweep_seconds", "Duration of one sweep", buckets=LATENCY_BUCKETS, registry=reg
        )
        self.sweep_last_success = Gauge(
            "sfox_bot_sweep_last_success_timestamp_seconds",
            "Unix time of the last sweep that finished",
            registry=reg,
            multiprocess_mode="max",
        )
        self.ack_seconds = Histogram(
            "sfox_bot_ack_seconds",
            "Time from receiving a Slack request to its ack",
            buckets=LATENCY_BUCKETS,
            registry=reg,
        )
        self.stream_failures = Counter(
            "sfox_bot_audit_stream_failures", "Audit stream POSTs not acknowledged", registry=reg
        )
        self.stream_batches = Counter(
            "sfox_bot_audit_stream_batches", "Audit stream batches acknowledged", registry=reg
        )
        self.role = Gauge(
            "sfox_bot_role",
            "1 for the tier this process is (all, web or worker: bot/runtime/roles.py)",
            ["role"],
            registry=reg,
            multiprocess_mode="max",
        )
        self.work_taken = Counter(
            "sfox_bot_work_taken", "Passes in which this worker took clicks or commands", registry=reg
        )
        self.database = DatabaseCollector(store, clock)
        reg.register(self.database)

    # -- what the rest of the bot reports ----------------------------------------------------

    def click(self, action: str, result: str) -> None:
        self.clicks.labels(action, result).inc()

    def plays(self, role: str) -> None:
        self.role.labels(role).set(1)

    def took_work(self) -> None:
        self.work_taken.inc()

    def sweep_done(self, seconds: float) -> None:
        self.sweep_seconds.observe(seconds)
        self.sweep_last_success.set(time.time())

    def audit_stream_outcome(self, outcome: Outcome) -> None:
        if isinstance(outcome, Failed):
            self.stream_failures.inc()
        elif isinstance(outcome, Sent):
            self.stream_batches.inc()

    def instrument_slack(self, client: Any) -> None:
        """Count every Web API call of `client` (a slack_sdk WebClient: all its methods go through
        `api_call`)."""
        inner = client.api_call
        counter = self.slack_calls

        def api_call(api_method: str, *args: Any, **kwargs: Any) -> Any:
            try:
                response = inner(api_method, *args, **kwargs)
            except Exception as exc:
                data = getattr(getattr(exc, "response", None), "data", None)
                error = data.get("error") if isinstance(data, dict) else None
                counter.labels(api_method, str(error or type(exc).__name__)[:60]).inc()
                raise
            counter.labels(api_method, "ok").inc()
            return response

        client.api_call = api_call

    def instrument_sfox(self, sfox: Any) -> None:
        """Count and time every HTTP attempt of an SfoxClient (its `_send`)."""
        inner = sfox._send
        calls, seconds = self.sfox_calls, self.sfox_seconds

        def send(method: str, path: str, *args: Any, **kwargs: Any) -> Any:
            route = sfox_route(method, path)
            started = time.monotonic()
            try:
                answer = inner(method, path, *args, **kwargs)
            except Exception as exc:
                seconds.labels(route).observe(time.monotonic() - started)
                calls.labels(route, type(exc).__name__[:40]).inc()
                raise
            seconds.labels(route).observe(time.monotonic() - started)
            calls.labels(route, str(answer.status_code)).inc()
            return answer

        sfox._send = send

    def ack_timer(self) -> Callable[..., Any]:
        """A Bolt global middleware timing each request up to its ack."""
        histogram = self.ack_seconds

        def middleware(next: Callable[[], Any]) -> Any:  # noqa: A002 - Bolt passes it by this name
            started = time.monotonic()
            try:
                return next()
            finally:
                histogram.observe(time.monotonic() - started)

        return middleware

    # -- the scrape ----------------------------------------------------------------------------

    def scrape(self) -> tuple[bytes, str]:
        """The text exposition: this process's metrics, or every worker's in multiprocess mode."""
        if multiprocess_dir():
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            registry.register(self.database)
            return generate_latest(registry), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class DatabaseCollector(Collector):
    """Gauges read from the database at scrape time."""

    def __init__(self, store: Store, clock: Callable[[], datetime]) -> None:
        self.store = store
        self.clock = clock
        self.audit_stream = False  # set when SFOX_AUDIT_WEBHOOK_URL is (bot/runtime/stream.py)

    def collect(self) -> Iterable[GaugeMetricFamily]:
        up = GaugeMetricFamily("sfox_bot_database_up", "1 if the database answered this scrape")
        try:
            with self.store.reader() as conn:
                by_status = dict(
                    conn.execute(select(requests.c.status, func.count()).group_by(requests.c.status)).all()
                )
                backlog, oldest = conn.execute(
                    select(func.count(), func.min(outbox.c.created_at)).where(outbox.c.sent_at.is_(None))
                ).one()
                stream = state_in(conn) if self.audit_stream else None
                handed = handover_state(conn)
        except Exception:
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        from bot.store.schema import STATUSES

        family = GaugeMetricFamily(
            "sfox_bot_requests",
            "Requests ever created, by their status now (the database)",
            labels=["status"],
        )
        for status in STATUSES:
            family.add_metric([status], by_status.get(status, 0))
        yield family
        yield GaugeMetricFamily(
            "sfox_bot_pending_requests", "Requests waiting for approval", value=by_status.get("pending", 0)
        )
        yield GaugeMetricFamily(
            "sfox_bot_outbox_backlog", "Slack messages owed and not yet delivered", value=backlog
        )
        age = 0.0
        if oldest is not None:
            if oldest.tzinfo is None:
                oldest = oldest.replace(tzinfo=UTC)
            age = max(0.0, (self.clock() - oldest).total_seconds())
        yield GaugeMetricFamily(
            "sfox_bot_outbox_oldest_owed_seconds", "Age of the oldest Slack message owed (0: none)", value=age
        )
        yield GaugeMetricFamily(
            "sfox_bot_work_waiting",
            "Clicks and commands acked by the web role that no worker has taken yet",
            value=handed.waiting,
        )
        yield GaugeMetricFamily(
            "sfox_bot_work_oldest_waiting_seconds",
            "Age of the oldest click or command no worker has taken yet (0: none)",
            value=handed.as_dict(self.clock())["oldest_waiting_seconds"] or 0.0,
        )
        yield GaugeMetricFamily(
            "sfox_bot_worker_last_took_timestamp_seconds",
            "Unix time a worker last took a click or command (0: never)",
            value=0.0 if handed.last_taken_at is None else handed.last_taken_at.timestamp(),
        )
        if stream is not None:
            yield GaugeMetricFamily(
                "sfox_bot_audit_stream_lag_events",
                "Audit events not yet acknowledged by SFOX_AUDIT_WEBHOOK_URL",
                value=stream.lag,
            )
            unsent = stream.oldest_unsent_at
            yield GaugeMetricFamily(
                "sfox_bot_audit_stream_oldest_unsent_seconds",
                "Age of the oldest audit event not yet acknowledged by the webhook (0: none)",
                value=0.0 if unsent is None else max(0.0, (self.clock() - unsent).total_seconds()),
            )


def sfox_route(method: str, path: str) -> str:
    for m, prefix, label in SFOX_ROUTES:
        if method == m and path.startswith(prefix):
            return label
    return f"{method} other"


def click_result(result: ClickResult) -> str:
    """A click's result, as a metrics label."""
    if result.execute:
        return "claimed"
    return "answered" if result.ephemeral else "done"
