"""What the audit stream's tests share: a receiver (a real HTTP server on 127.0.0.1, as a SIEM's
endpoint would be) that checks each POST's signature with the bot's own `signature_problem` and can
fail its first attempts or hold one open, a trail of events to stream, and the receiver-side check
of the chain from its copy (the README's)."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from bot.store.db import Store
from bot.store.records import Event
from bot.webhooks.signing import signature_problem

WEBHOOK_SECRET = "stream-webhook-secret-0123456789-SECRET"
GENESIS = "0" * 64


class Receiver:
    """Accepts signed NDJSON batches. `script` says what to do with the first POSTs in order:
    an HTTP status to answer (e.g. 503), "drop" (close the connection without an answer) or
    "hold" (keep it open until `release` is set, then answer 200); after it, 200. A 3xx is
    answered with `Location: location` (a redirect to another receiver)."""

    def __init__(
        self,
        secret: str = WEBHOOK_SECRET,
        script: list[int | str] | None = None,
        location: str | None = None,
    ) -> None:
        self.secret = secret
        self.script = list(script or [])
        self.location = location
        self.lock = threading.Lock()
        self.attempts = 0
        self.problems: list[str] = []  # what a POST got wrong (signature, content type)
        self.batches: list[list[bytes]] = []  # every body received whole, as lines, in arrival order
        self.in_flight = 0
        self.most_in_flight = 0
        self.holding = threading.Event()
        self.release = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                receiver._post(self)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/siem/ingest/T0KEN"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()

    def _post(self, handler: BaseHTTPRequestHandler) -> None:
        body = handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
        with self.lock:
            self.attempts += 1
            action = self.script.pop(0) if self.script else 200
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
            problem = signature_problem(self.secret, handler.headers, body)
            if handler.headers.get("Content-Type") != "application/x-ndjson":
                problem = f"content type {handler.headers.get('Content-Type')}"
            if problem:
                self.problems.append(problem)
        answered = [False]

        def landed() -> None:
            """No longer in flight: counted down before the answer is written, since the sender
            may send its next POST the moment it has read it (counted after, a sender that took
            its turn properly looked like two POSTs at once)."""
            if not answered[0]:
                answered[0] = True
                with self.lock:
                    self.in_flight -= 1

        try:
            if problem:
                landed()
                self._answer(handler, 401)
                return
            if action == "drop":
                landed()
                handler.close_connection = True
                handler.connection.shutdown(socket.SHUT_RDWR)
                return
            if action != "hold" and not 200 <= int(action) < 300:
                redirect = 300 <= int(action) < 400 and self.location is not None
                landed()
                self._answer(handler, int(action), {"Location": self.location} if redirect else {})
                return
            with self.lock:
                self.batches.append(body.splitlines())
            if action == "hold":
                self.holding.set()
                self.release.wait(30)
                action = 200
            landed()
            self._answer(handler, int(action))
        except OSError:
            pass  # the sender is gone (killed): what it sent was received all the same
        finally:
            landed()

    @staticmethod
    def _answer(handler: BaseHTTPRequestHandler, status: int, headers: dict[str, Any] | None = None) -> None:
        handler.send_response(status)
        for name, value in (headers or {}).items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    def lines(self) -> list[bytes]:
        """Every line received, in arrival order (duplicates included)."""
        with self.lock:
            return [line for batch in self.batches for line in batch]

    def seqs(self) -> list[int]:
        return [json.loads(line)["seq"] for line in self.lines()]


def assert_in_order_none_missing(seqs: list[int], last: int) -> None:
    """At least once, in order: a seq may come again, but never before every seq ahead of it."""
    highest = 0
    for seq in seqs:
        assert seq <= highest + 1, f"seq {highest + 1} to {seq - 1} skipped: {seqs}"
        highest = max(highest, seq)
    assert highest == last and set(seqs) == set(range(1, last + 1))


def verify_received(lines: list[bytes], key: str | None, start: tuple[int, str] = (0, GENESIS)) -> int:
    """The receiver's check, from its copy (first copy of each seq): each `hash` recomputed from
    `prev_hash` and the event as the chain encodes it, as the README says. The last seq."""
    seq, prev = start
    for raw in lines:
        line = json.loads(raw)
        if line["seq"] <= seq:
            continue  # a duplicate (at least once)
        assert line["seq"] == seq + 1, f"seq {seq + 1} missing"
        assert line["prev_hash"] == prev, f"seq {line['seq']} does not link to seq {seq}"
        body = json.dumps(line["event"], sort_keys=True, separators=(",", ":")).encode()
        assert raw[raw.index(b'"event":') + 8 : -1] == body  # the bytes as hashed, verbatim
        message = prev.encode() + body
        digest = hmac.new(key.encode(), message, hashlib.sha256) if key else hashlib.sha256(message)
        assert digest.hexdigest() == line["hash"], f"seq {line['seq']}: hash does not match"
        seq, prev = line["seq"], line["hash"]
    return seq


def append_events(store: Store, count: int, start: datetime | None = None) -> None:
    """`count` events about people (no request), as the chain appends them, one transaction each."""
    at = start or datetime(2026, 12, 3, 9, 0, 0, 123456, tzinfo=UTC)
    for i in range(count):
        with store.transaction() as conn:
            store.append_event(
                conn,
                None,
                at + timedelta(milliseconds=i),
                Event("mfa_enrolled", "UALICE01", {"n": i, "note": "caf\u00e9 \u2713"}),
            )
