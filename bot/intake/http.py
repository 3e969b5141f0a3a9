"""The intake API's HTTP face: routes, the body's size, the signature (v2 over the method, the
path and query, the Idempotency-Key and the body: bot/webhooks/signing.py), spent once across
replicas (bot/intake/replay.py), then the rules (bot/intake/api.py). Served on the HTTP port by bot/runtime/web.py's app, and on
METRICS_PORT in Socket Mode (its ops app). Without SFOX_INTAKE_SECRET the API is off: 404."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from bot.intake.api import Answer
from bot.intake.openapi import document
from bot.webhooks import signing

if TYPE_CHECKING:
    from bot.intake.wiring import Intake

PREFIX = "/api/v1/"
REQUESTS = "/api/v1/requests"
OPENAPI = "/api/v1/openapi.json"
_ONE = re.compile(r"^/api/v1/requests/([1-9][0-9]{0,17})\Z")
MAX_BODY_BYTES = 64 * 1024
log = logging.getLogger("sfox_bot.intake.http")


def serve(
    intake: Intake | None, environ: dict[str, Any], start_response: Callable[..., Any]
) -> Iterable[bytes]:
    """Answer a request under /api/v1/."""
    answer = _route(intake, environ)
    data = json.dumps(answer.body).encode()
    headers = [("Content-Type", "application/json"), ("Content-Length", str(len(data)))]
    if answer.status == 405:
        headers.append(("Allow", "POST" if environ.get("PATH_INFO") == REQUESTS else "GET"))
    start_response(_STATUS_LINES[answer.status], headers)
    return [data]


def _route(intake: Intake | None, environ: dict[str, Any]) -> Answer:
    path = environ.get("PATH_INFO", "")
    method = environ.get("REQUEST_METHOD", "GET")
    if intake is None:
        return Answer(404, {"error": "not found (the intake API is off: SFOX_INTAKE_SECRET is not set)"})
    one = _ONE.match(path)
    if path == OPENAPI:
        return Answer(200, document()) if method == "GET" else Answer(405, {"error": "GET only"})
    if path != REQUESTS and one is None:
        return Answer(404, {"error": "not found"})
    if method != ("POST" if one is None else "GET"):
        return Answer(405, {"error": ("POST" if one is None else "GET") + " only"})
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = -1
    if length < 0 or length > MAX_BODY_BYTES:
        return Answer(413, {"error": f"body: at most {MAX_BODY_BYTES} bytes"})
    body = environ["wsgi.input"].read(length) if length else b""
    key = environ.get("HTTP_IDEMPOTENCY_KEY") if one is None else None
    refused = _unsigned(intake, environ, (method, signed_target(environ), key or ""), body)
    if refused is not None:
        return refused
    if one is not None:
        return intake.api.get(int(one.group(1)))
    return intake.api.submit(key, body)


def signed_target(environ: dict[str, Any]) -> str:
    """The path a request's signature covers: as received, with `?` and the raw query string when
    there is one (so a GET's query cannot be swapped either)."""
    query = environ.get("QUERY_STRING") or ""
    return environ.get("PATH_INFO", "") + (f"?{query}" if query else "")


def _unsigned(
    intake: Intake, environ: dict[str, Any], request: tuple[str, str, str], body: bytes
) -> Answer | None:
    """401 unless the request is signed v2 by the secret and its signature was never used before
    (across replicas: bot/intake/replay.py); 503 when that cannot be recorded; else None."""
    headers = signing.from_environ(environ)
    problem = signing.request_signature_problem(intake.secret, headers, request, body)
    if problem is None:
        try:
            fresh = intake.seen.first_use(
                headers[signing.SIGNATURE_HEADER], int(headers[signing.TIMESTAMP_HEADER])
            )
        except Exception:
            log.exception("intake signature not recorded")
            return Answer(
                503, {"error": "not recorded (database unavailable); sign it again and send it again"}
            )
        if fresh:
            return None
        problem = (
            f"{signing.SIGNATURE_HEADER}: already used (a signed request is accepted once; "
            "to send it again, sign it again with a new timestamp)"
        )
    log.warning("intake request refused", extra={"reason": problem})
    return Answer(401, {"error": problem})


_STATUS_LINES = {
    200: "200 OK",
    202: "202 Accepted",
    400: "400 Bad Request",
    401: "401 Unauthorized",
    404: "404 Not Found",
    405: "405 Method Not Allowed",
    409: "409 Conflict",
    413: "413 Payload Too Large",
    422: "422 Unprocessable Entity",
    503: "503 Service Unavailable",
}
# Every status the API answers, for its OpenAPI document's test.
STATUSES = frozenset(_STATUS_LINES)
