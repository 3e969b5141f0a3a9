"""Issue 13: `GET /metrics` (Prometheus text). After the demo's scene, the counters agree with the
history the bot recorded; Socket Mode serves the same endpoints on its own port."""

from __future__ import annotations

import io
from collections import Counter

import httpx
from prometheus_client.parser import text_string_to_metric_families

from bot.fakes.local import serve_wsgi, url_of
from bot.runtime.web import make_ops_app
from bot.sandbox.demo import Scene
from bot.sandbox.harness import Sandbox
from bot.store.schema import STATUSES
from tests.conftest import ALICE, BOB
from tests.helpers import open_request, wait_status


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = httpx.get(url + "/metrics", timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def total(samples: dict, name: str, **labels: str) -> float:
    return sum(
        v
        for (n, ls), v in samples.items()
        if n == name and all(dict(ls).get(k) == x for k, x in labels.items())
    )


def test_a_scrape_after_the_demo_matches_the_history(tmp_path):
    with Sandbox(tmp_path / "demo.db") as sandbox:
        assert Scene(sandbox, io.StringIO(), fresh=True).play() == 0
        sandbox.runtime.sweep()
        assert sandbox.driver is not None
        samples = scrape(sandbox.driver.bot_url)
        history = list(sandbox.store.history(limit=None))
        with sandbox.slack.lock:
            dms = [m for m in sandbox.slack.messages if m.channel.startswith("D")]
        events = [e for r in history for e in sandbox.store.events_for(r.id)]

    by_status = Counter(r.status for r in history)
    for status in STATUSES:  # the issue-19 ones (watching, scheduled, cancelled) included
        assert value(samples, "sfox_bot_requests", status=status) == by_status.get(status, 0), status
    assert value(samples, "sfox_bot_pending_requests") == by_status.get("pending", 0) == 0
    assert value(samples, "sfox_bot_outbox_backlog") == 0
    assert value(samples, "sfox_bot_outbox_oldest_owed_seconds") == 0
    # every DELETE the trail records, with its status, and nothing else
    deletes = Counter(str(e.http_status) for e in events if e.kind == "sfox_delete")
    route = "DELETE /v1/enterprise/account/{id}"
    # client_1, the batch's three, client_late, the watched client_leaving, the scheduled client_contract
    assert deletes == {"200": 6, "422": 1}
    for status, count in deletes.items():
        assert value(samples, "sfox_bot_sfox_calls_total", route=route, status=status) == count
    assert total(samples, "sfox_bot_sfox_calls_total", route=route) == sum(deletes.values())
    assert value(samples, "sfox_bot_sfox_call_seconds_count", route=route) == sum(deletes.values())
    # clicks: each claim in the trail is one click that won it; the refused ones were answered
    # (a batch's users: one batch click; a request for later is claimed at its time, by no click)
    singles = {r.id for r in history if r.batch_id is None and r.run_at is None}
    claims = sum(1 for e in events if e.kind == "claimed" and e.request_id in singles)
    assert value(samples, "sfox_bot_clicks_total", action="sfox_approve", result="claimed") == claims == 3
    # alice's own, mallory's, and bob's that scheduled client_contract
    assert value(samples, "sfox_bot_clicks_total", action="sfox_approve", result="answered") == 3
    assert value(samples, "sfox_bot_clicks_total", action="sfox_deny", result="done") == 1
    # one DM per final outcome (and a watch's two), one reminder
    finals = sum(
        1
        for r in history
        if r.batch_id is None and r.status in ("succeeded", "failed", "denied", "expired", "blocked")
    )  # a batch's users get no DM each: the batch card and its summary tell
    watch_dms = 2  # the watch's own: started (with Stop watching), cleared (with the card's link)
    assert len(dms) == finals + watch_dms
    # each requester's DM channel opened once (bot/slack/dms.py), not once per DM
    opened = value(samples, "sfox_bot_slack_calls_total", method="conversations.open", error="ok")
    assert opened == len({m.channel for m in dms}) < len(dms)
    assert sum(1 for e in events if e.kind == "reminded") == 1
    assert value(samples, "sfox_bot_slack_calls_total", method="views.open", error="ok") == 1
    assert value(samples, "sfox_bot_sweep_last_success_timestamp_seconds") > 0
    assert value(samples, "sfox_bot_sweep_seconds_count") >= 2
    assert value(samples, "sfox_bot_ack_seconds_count") >= 10
    assert value(samples, "sfox_bot_database_up") == 1


def test_slack_errors_are_counted_by_method_and_error(bot, fake_slack):
    record, card = open_request(bot, ALICE, "client_1")
    fake_slack.fail("chat.update", "message_not_found")
    bot.driver.click(BOB, "sfox_approve", str(record.id), card.ts)
    wait_status(bot, record.id, "succeeded")
    bot.runtime.wait_idle()
    samples = scrape(bot.url)
    assert value(samples, "sfox_bot_slack_calls_total", method="chat.update", error="message_not_found") == 1
    assert (
        value(samples, "sfox_bot_sfox_calls_total", route="GET /v1/enterprise/users/{id}", status="200") == 1
    )


def test_socket_mode_serves_health_readiness_and_metrics_on_its_own_port(bot):
    server = serve_wsgi(make_ops_app(bot.runtime))
    try:
        url = url_of(server)
        assert httpx.get(url + "/healthz").json() == {"status": "ok"}
        assert httpx.get(url + "/readyz").json() == {"status": "ready", "role": "all"}
        assert "sfox_bot_requests" in httpx.get(url + "/metrics").text
        assert httpx.post(url + "/slack/events", content=b"{}").status_code == 404  # ops only
    finally:
        server.shutdown()
        server.server_close()


def test_multiprocess_mode_adds_up_every_worker(tmp_path):
    """With PROMETHEUS_MULTIPROC_DIR (gunicorn with several workers), a scrape in one process
    reports what every process counted."""
    import os
    import subprocess
    import sys

    script = """
import sys
from bot.runtime.metrics import Metrics
from bot.store.db import Store
from bot.store import migrate
store = Store.from_url(sys.argv[1])
migrate.upgrade(store.engine)
metrics = Metrics(store)
metrics.click("sfox_approve", "claimed")
if sys.argv[2] == "scrape":
    sys.stdout.write(metrics.scrape()[0].decode())
"""
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prom")}
    (tmp_path / "prom").mkdir()
    url = f"sqlite:///{tmp_path / 'bot.db'}"
    for mode in ("count", "count", "scrape"):
        done = subprocess.run(
            [sys.executable, "-c", script, url, mode], env=env, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
    assert 'sfox_bot_clicks_total{action="sfox_approve",result="claimed"} 3.0' in done.stdout
    assert "sfox_bot_requests" in done.stdout  # the database's gauges too
