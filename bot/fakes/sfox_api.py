"""A fake sFOX Connect API: a real HTTP server on 127.0.0.1, for tests, the demo and rehearsals.

It behaves as ../shared/SFOX_API.md describes (200 with no body, 422 while balances are non-zero,
404 for unknown or already deactivated accounts, 401 for a wrong key; user tokens that expire and
the balance read they allow, 401 for a wrong or expired token), keeps sFOX's documented rate
limits unless a test says why not (`bot.fakes.sfox_limits`), and can be told to misbehave: scripted answers (any status, headers, body), delays, answers that never come, and
connections dropped after the deactivation has been applied. It records every request it saw.

This is a testing aid. It never talks to the real sFOX.
"""

from __future__ import annotations

import json
import secrets
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import unquote, urlsplit

from bot.fakes import sfox_limits
from bot.fakes.server import FakeHTTPServer
from bot.fakes.sfox_users import SAMPLE_USERS, currency, drain_if_due, public, user_balances

NONZERO = "Can not disable account with non-zero balances. Please remove all balances and try again."
NOT_FOUND = "The account does not exist to be disabled."
USER_TOKEN_LIFETIME = timedelta(hours=24)


@dataclass
class Fault:
    """One scripted misbehaviour, used by the next matching request.

    status/body/headers: the answer to give instead of the real one;
    delay: seconds to wait before answering;
    apply: perform the real operation first (so a dropped or late answer hides a real effect);
    drop: close the connection without any answer;
    reset: abort the connection with a TCP reset (RST) instead of an answer;
    path: only for requests whose path starts with this (e.g. "/v1/user/balance").
    """

    method: str = "DELETE"
    status: int | None = None
    body: bytes | str | dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    apply: bool = False
    drop: bool = False
    reset: bool = False
    path: str | None = None


@dataclass
class SeenRequest:
    method: str
    raw_path: str
    headers: dict[str, str]
    at: float


class FakeSfox:
    def __init__(
        self,
        api_key: str = "sfox-test-key",
        users: list[dict[str, Any]] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        token_lifetime: timedelta = USER_TOKEN_LIFETIME,
        *,
        limited: bool = True,
        why: str = "",
    ) -> None:
        """`limited=False` (with `why`, the test's reason): none of sFOX's rate limits."""
        self.api_key = api_key
        self.users: dict[str, dict[str, Any]] = {
            u["user_id"]: json.loads(json.dumps(u)) for u in (users or SAMPLE_USERS)
        }
        self.token_lifetime = token_lifetime
        # user token -> (user id, when it stops working); tokens issued, for tests to search for.
        self.tokens: dict[str, tuple[str, float]] = {}
        self.deactivated: set[str] = set()
        self.faults: list[Fault] = []
        self.delay = 0.0
        self.seen: list[SeenRequest] = []
        self.deletes: Counter[str] = Counter()
        self.lock = threading.Lock()
        self.on_request: Callable[[SeenRequest], None] | None = None
        # sFOX's limits (bot.fakes.sfox_limits): every call, and the balance route's own; past
        # either, 429 with Retry-After, counted in `rate_limited`.
        self._overall = sfox_limits.Window(sfox_limits.OVERALL)
        self._balance = sfox_limits.Window(sfox_limits.BALANCE_ROUTE)
        self.unlimited_why: str | None = None
        self.retry_after = 1
        self.rate_limited = 0
        # Each balance read answered: (user id, monotonic time).
        self.balance_reads: list[tuple[str, float]] = []
        if not limited:
            self.unlimited(why)
        self._server = FakeHTTPServer((host, port), _handler_for(self))
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeSfox:
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="fake-sfox", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeSfox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def add_user(self, user_id: str, balance: float = 0, **fields: Any) -> None:
        """A user with one USD `balance` (or `balances=[currency(...), ...]`, and any other field)."""
        with self.lock:
            self.users[user_id] = {
                "user_id": user_id,
                "first_name": "Test",
                "last_name": "User",
                "email": f"{user_id}@example.com",
                "status": "VERIFIED",
                "balances": [currency("usd", balance)],
                **fields,
            }

    def balances_of(self, user_id: str) -> list[dict[str, Any]]:
        with self.lock:
            return user_balances(self.users[user_id])

    def script(self, *faults: Fault) -> None:
        with self.lock:
            self.faults.extend(faults)

    def requests(self, method: str | None = None) -> list[SeenRequest]:
        with self.lock:
            return [r for r in self.seen if method is None or r.method == method]

    # -- behaviour ---------------------------------------------------------------------------

    @property
    def rate_limit(self) -> tuple[int, float] | None:
        """sFOX's limit on every call: (calls, seconds), None once `unlimited`."""
        return self._overall.limit

    @rate_limit.setter
    def rate_limit(self, limit: tuple[int, float]) -> None:
        self._overall.limit = sfox_limits.checked(limit)

    @property
    def balance_limit(self) -> tuple[int, float] | None:
        """The balance route's own limit: (calls, seconds), None once `unlimited`."""
        return self._balance.limit

    @balance_limit.setter
    def balance_limit(self, limit: tuple[int, float]) -> None:
        self._balance.limit = sfox_limits.checked(limit)

    def counted_within(self, seconds: float) -> int:
        """How many calls sFOX's limit on every call counted in the last `seconds` (what a new
        burst would be added to, whatever `requests()` was cleared of meanwhile)."""
        return self._overall.counted_within(seconds)

    def unlimited(self, why: str, *, balance_only: bool = False) -> None:
        """Switch sFOX's limits off (`balance_only`: the balance route's alone), for a test or a
        scene that must exceed them; `why` says why."""
        self.unlimited_why = sfox_limits.reason(why)
        self._balance.limit = None
        if not balance_only:
            self._overall.limit = None

    def over_limit(self, method: str = "", path: str = "") -> bool:
        """Count this call against sFOX's limits; True (it is refused with 429) past one."""
        refused = not self._overall.admit()
        if not refused and method == "GET" and path.rstrip("/") == sfox_limits.BALANCE_PATH:
            refused = not self._balance.admit()
        if refused:
            with self.lock:
                self.rate_limited += 1
        return refused

    def take_fault(self, method: str, path: str = "") -> Fault | None:
        with self.lock:
            for i, fault in enumerate(self.faults):
                if fault.method in (method, "*") and (fault.path is None or path.startswith(fault.path)):
                    return self.faults.pop(i)
        return None

    def answer(self, method: str, path: str, auth: str | None) -> tuple[int, bytes]:
        if method == "GET" and path.rstrip("/") == "/v1/user/balance":
            return self._balance_read(auth)
        if auth != f"Bearer {self.api_key}":
            return 401, _json({"error": "invalid api key"})
        parts = [unquote(p) for p in path.split("/")]
        with self.lock:
            if method == "GET" and path.rstrip("/") == "/v1/enterprise/users":
                visible = [public(u) for uid, u in self.users.items() if uid not in self.deactivated]
                return 200, _json({"data": visible})
            if method == "GET" and len(parts) == 5 and parts[1:4] == ["v1", "enterprise", "users"]:
                user = self.users.get(parts[4])
                if user is None or parts[4] in self.deactivated:
                    return 404, _json({"error": "User not found"})
                return 200, _json({"data": public(user)})
            if method == "POST" and len(parts) == 5 and parts[1:4] == ["v1", "enterprise", "user-tokens"]:
                uid = parts[4]
                if uid not in self.users or uid in self.deactivated:
                    return 404, _json({"error": "User not found"})
                token = "user-" + secrets.token_urlsafe(24)
                self.tokens[token] = (uid, time.monotonic() + self.token_lifetime.total_seconds())
                expires = datetime.now(UTC) + self.token_lifetime
                return 201, _json(
                    {
                        "data": {
                            "token": token,
                            "partner_user_id": uid,
                            "expires": expires.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                        }
                    }
                )
            if method == "DELETE" and len(parts) == 5 and parts[1:4] == ["v1", "enterprise", "account"]:
                uid = parts[4]
                self.deletes[uid] += 1
                user = self.users.get(uid)
                if user is None or uid in self.deactivated:
                    return 404, _json({"error": NOT_FOUND})
                if any(b.get("balance") or b.get("held") for b in user_balances(user)):
                    return 422, _json({"error": NONZERO})
                self.deactivated.add(uid)
                return 200, b""
        return 404, _json({"error": "Not found"})

    def _balance_read(self, auth: str | None) -> tuple[int, bytes]:
        token = auth[len("Bearer ") :] if auth and auth.startswith("Bearer ") else ""
        with self.lock:
            uid, until = self.tokens.get(token, ("", 0.0))
            user = self.users.get(uid)
            if user is None or uid in self.deactivated or time.monotonic() >= until:
                return 401, _json({"error": "invalid token"})
            if user.get("balance_fails"):
                return int(user["balance_fails"]), _json({"error": "try again later"})
            if "drains_after_reads" in user or "drains_after_seconds" in user:
                drain_if_due(user, time.monotonic())
            self.balance_reads.append((uid, time.monotonic()))
            answer = user_balances(user)
            if user.get("funds_after_read"):
                user["balances"] = user.pop("funds_after_read")
                user.pop("balance", None)
            return 200, _json(answer)


def _handler_for(fake: FakeSfox) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out in two writes: with Nagle's algorithm the body waited for the
        # client's delayed ACK, adding about 40 ms to every call on a kept-alive connection.
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
            pass

        def do_GET(self) -> None:
            self._handle("GET")

        def do_DELETE(self) -> None:
            self._handle("DELETE")

        def do_POST(self) -> None:
            self._handle("POST")

        def _handle(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            seen = SeenRequest(
                method, self.path, {k.lower(): v for k, v in self.headers.items()}, time.time()
            )
            with fake.lock:
                fake.seen.append(seen)
            if fake.on_request:
                fake.on_request(seen)
            path = urlsplit(self.path).path
            if fake.over_limit(method, path):
                self._send(
                    429, _json({"error": "rate limit exceeded"}), {"Retry-After": str(fake.retry_after)}
                )
                return
            fault = fake.take_fault(method, path)
            if fake.delay:
                time.sleep(fake.delay)
            if fault and fault.apply:
                fake.answer(method, path, self.headers.get("Authorization"))
            if fault and fault.delay:
                time.sleep(fault.delay)
            if fault and fault.reset:
                self.close_connection = True
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.connection.close()
                return
            if fault and fault.drop:
                self.close_connection = True
                self.connection.close()
                return
            if fault and fault.status is not None:
                body = fault.body
                if isinstance(body, dict):
                    body = _json(body)
                elif isinstance(body, str):
                    body = body.encode()
                self._send(fault.status, body or b"", fault.headers)
                return
            status, body = fake.answer(method, path, self.headers.get("Authorization"))
            self._send(status, body, {})

        def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
            try:
                self.send_response(status)
                if body and not any(k.lower() == "content-type" for k in headers):
                    self.send_header("Content-Type", "application/json")
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass

    return Handler


def _json(data: Any) -> bytes:
    return json.dumps(data).encode()


def main() -> None:
    """`python -m bot.fakes.sfox_api [port]`: run the fake for a rehearsal against a local bot."""
    import sys

    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8765
    fake = FakeSfox(port=port).start()
    print(f"fake sFOX API on {fake.url} (key: {fake.api_key}); users: {', '.join(fake.users)}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        fake.stop()


if __name__ == "__main__":
    main()
