"""The fake Slack's HTTP side: the Web API under `/api/`, `response_url` posts under `/response/`,
file uploads under `/upload/` and the files a test shared under `/files/`."""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

if TYPE_CHECKING:
    from bot.fakes.slack_api import FakeSlack


def handler_for(fake: FakeSlack) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
            pass

        def do_GET(self) -> None:
            parts = self.path.split("/")
            if len(parts) >= 3 and parts[1] == "files":
                if self.headers.get("Authorization") != f"Bearer {fake.token}":
                    self._send(403, b"forbidden", {"Content-Type": "text/plain"})
                    return
                found = fake.user_files.get(parts[2])
                if found is not None:
                    self._send(200, found[1], {"Content-Type": "text/csv"})
                    return
            self._send(404, b"not found", {"Content-Type": "text/plain"})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            if len(raw) < length:
                # The sender died mid-request (a crash-point test kills the bot): Slack would not
                # act on a request that never arrived whole, and neither does the fake.
                self.close_connection = True
                return
            if self.path.startswith("/upload/"):
                with fake.lock:
                    entry = fake.uploads.get(self.path[len("/upload/") :])
                    if entry is not None:
                        entry["content"] = raw
                self._send(200 if entry is not None else 404, b"OK", {"Content-Type": "text/plain"})
                return
            if self.path.startswith("/response/"):
                try:
                    payload = json.loads(raw or b"{}")
                except ValueError:
                    payload = {"raw": raw.decode("utf-8", "replace")}
                status, answer = fake.response_url_post(self.path[len("/response/") :], payload)
                self._send(status, answer.encode(), {"Content-Type": "text/plain"})
                return
            if not self.path.startswith("/api/"):
                self._send(404, b"not found", {"Content-Type": "text/plain"})
                return
            method = self.path[len("/api/") :].split("?")[0]
            ctype = self.headers.get("Content-Type", "")
            if "json" in ctype:
                args = json.loads(raw or b"{}")
            else:
                args = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
            status, body, headers = fake.handle_api(method, args, self.headers.get("Authorization"))
            self._send(
                status,
                json.dumps(body).encode() if body else b"",
                {"Content-Type": "application/json", **headers},
            )

        def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Handler
