"""The HTTP face of the bot: `POST /slack/events` for Bolt, `GET /healthz` and `GET /readyz`."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from slack_bolt.adapter.wsgi import SlackRequestHandler

from bot import migrate
from bot.runtime import Runtime

MAX_BODY_BYTES = 256 * 1024


def make_wsgi_app(runtime: Runtime) -> Callable[..., Iterable[bytes]]:
    slack = SlackRequestHandler(runtime.app, path="/slack/events")

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "GET")
        if path == "/healthz" and method in ("GET", "HEAD"):
            return _json(start_response, "200 OK", {"status": "ok"})
        if path == "/readyz" and method in ("GET", "HEAD"):
            return _ready(runtime, start_response)
        if path == "/slack/events":
            if method != "POST":
                return _json(start_response, "405 Method Not Allowed", {"error": "POST only"})
            try:
                length = int(environ.get("CONTENT_LENGTH") or 0)
            except ValueError:
                length = -1
            if length < 0 or length > MAX_BODY_BYTES:
                return _json(start_response, "413 Payload Too Large", {"error": "body too large"})
            return slack(environ, start_response)
        return _json(start_response, "404 Not Found", {"error": "not found"})

    return app


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
    return _json(start_response, "200 OK", {"status": "ready"})


def _json(start_response: Callable[..., Any], status: str, body: dict[str, Any]) -> Iterable[bytes]:
    data = json.dumps(body).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]
