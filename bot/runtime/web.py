"""The HTTP face of the bot: `POST /slack/events` for Bolt, `GET /healthz`, `GET /readyz`,
`GET /metrics` (Prometheus) and the intake API under `/api/v1/` (bot/intake/http.py). Socket Mode
serves all but the first (`make_ops_app`) on METRICS_PORT."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterable
from typing import Any

from slack_bolt.adapter.wsgi import SlackRequestHandler

from bot.intake import http as intake_http
from bot.runtime import guard
from bot.runtime.bootstrap import Runtime
from bot.runtime.roles import WEB, handover_state
from bot.store import migrate

MAX_BODY_BYTES = 256 * 1024
log = logging.getLogger("sfox_bot.web")


def make_ops_app(runtime: Runtime) -> Callable[..., Iterable[bytes]]:
    """`/healthz`, `/readyz` and `/metrics` only: what Socket Mode serves on METRICS_PORT."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        answer = _ops(runtime, environ, start_response)
        return (
            answer if answer is not None else _json(start_response, "404 Not Found", {"error": "not found"})
        )

    return app


def _ops(
    runtime: Runtime, environ: dict[str, Any], start_response: Callable[..., Any]
) -> Iterable[bytes] | None:
    path = environ.get("PATH_INFO", "")
    if path.startswith(intake_http.PREFIX):  # the intake API (issue 20), on both ports
        return intake_http.serve(runtime.intake, environ, start_response)
    if environ.get("REQUEST_METHOD", "GET") not in ("GET", "HEAD"):
        return None
    if path == "/healthz":
        return _json(start_response, "200 OK", {"status": "ok"})
    if path == "/readyz":
        return _ready(runtime, start_response)
    if path == "/metrics" and runtime.visibility is not None:
        data, content_type = runtime.visibility.metrics.scrape()
        start_response("200 OK", [("Content-Type", content_type), ("Content-Length", str(len(data)))])
        return [data]
    return None


def make_wsgi_app(runtime: Runtime) -> Callable[..., Iterable[bytes]]:
    slack = SlackRequestHandler(runtime.app, path="/slack/events")

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "GET")
        ops = _ops(runtime, environ, start_response)
        if ops is not None:
            return ops
        if path == "/slack/events":
            if method != "POST":
                return _json(start_response, "405 Method Not Allowed", {"error": "POST only"})
            try:
                length = int(environ.get("CONTENT_LENGTH") or 0)
            except ValueError:
                length = -1
            if length < 0 or length > MAX_BODY_BYTES:
                return _json(start_response, "413 Payload Too Large", {"error": "body too large"})
            return _to_bolt(slack, runtime, environ, start_response, length)
        return _json(start_response, "404 Not Found", {"error": "not found"})

    return app


def _to_bolt(
    slack: SlackRequestHandler,
    runtime: Runtime,
    environ: dict[str, Any],
    start_response: Callable[..., Any],
    length: int,
) -> Iterable[bytes]:
    """Refuse forged, stale or malformed requests before Bolt sees them (see bot.runtime.guard)."""
    body = environ["wsgi.input"].read(length) if length else b""
    headers = {
        "x-slack-request-timestamp": environ.get("HTTP_X_SLACK_REQUEST_TIMESTAMP", ""),
        "x-slack-signature": environ.get("HTTP_X_SLACK_SIGNATURE", ""),
    }
    content_type = (environ.get("CONTENT_TYPE") or "").split(";")[0].strip() or None
    rejection = guard.check_signature(runtime.settings.slack_signing_secret or "", body, headers)
    rejection = rejection or guard.check_shape(body, content_type)
    if rejection is not None:
        log.warning("slack request refused", extra={"reason": rejection.reason})
        return _json(start_response, rejection.status, {"error": rejection.reason})
    environ = dict(environ)
    rewritten = guard.bolt_safe_form(body)
    if rewritten is not None:
        body = rewritten
        environ["HTTP_X_SLACK_SIGNATURE"] = guard.sign(
            runtime.settings.slack_signing_secret or "", headers["x-slack-request-timestamp"], body
        )
    environ.update({"wsgi.input": io.BytesIO(body), "CONTENT_LENGTH": str(len(body))})
    try:
        return slack(environ, start_response)
    except Exception as exc:  # a signed payload Bolt cannot digest: refuse it, log without a trace
        log.warning("slack request not understood", extra={"error": type(exc).__name__})
        return _json(start_response, "400 Bad Request", {"error": "malformed Slack request"})


def _ready(runtime: Runtime, start_response: Callable[..., Any]) -> Iterable[bytes]:
    try:
        runtime.store.ping()
        at_head = migrate.is_at_head(runtime.store.engine)
    except Exception as exc:
        return _json(
            start_response,
            "503 Service Unavailable",
            {"status": "database unreachable", "error": type(exc).__name__},
        )
    if not at_head:
        return _json(start_response, "503 Service Unavailable", {"status": "migrations not at head"})
    body: dict[str, Any] = {"status": "ready", "role": runtime.role}
    if runtime.role == WEB:  # acks piling up with no worker to take them show here
        try:
            with runtime.store.reader() as conn:
                body["workers"] = handover_state(conn).as_dict(runtime.workflow.now())
        except Exception as exc:
            body["workers"] = {"error": type(exc).__name__}
    return _json(start_response, "200 OK", body)


def _json(start_response: Callable[..., Any], status: str, body: dict[str, Any]) -> Iterable[bytes]:
    data = json.dumps(body).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]
