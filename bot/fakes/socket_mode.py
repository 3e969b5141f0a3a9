"""A fake Slack Socket Mode endpoint: a real WebSocket server on 127.0.0.1, for tests and rehearsals.

Slack's side of Socket Mode is: the app calls `apps.connections.open` (answered by FakeSlack with
this server's `url`), opens a WebSocket to it, then receives envelopes
`{"envelope_id", "type", "payload", "accepts_response_payload"}` and must acknowledge each one
with `{"envelope_id", "payload"?}` within 3 s. This server speaks just enough RFC 6455 for that
(handshake, text frames, ping/pong, close), so the bot's real Socket Mode adapter is exercised.

This is a testing aid. It never talks to the real Slack.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import itertools
import json
import socket
import struct
import threading
import time
from typing import Any

_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_TEXT, _CLOSE, _PING, _PONG = 0x1, 0x8, 0x9, 0xA


class FakeSocketMode:
    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._listener = socket.create_server((host, port))
        self._conns: list[socket.socket] = []
        self._send_lock = threading.Lock()
        self.acks: dict[str, dict[str, Any]] = {}
        self.connections = 0
        self._cond = threading.Condition()
        self._ids = itertools.count(1)
        self._stopped = False

    @property
    def url(self) -> str:
        host, port = self._listener.getsockname()[:2]
        return f"ws://{host}:{port}/link"

    def start(self) -> FakeSocketMode:
        threading.Thread(target=self._accept_loop, name="fake-socket-mode", daemon=True).start()
        return self

    def stop(self) -> None:
        self._stopped = True
        self._listener.close()
        with self._send_lock:
            for conn in self._conns:
                _close_quietly(conn)

    def __enter__(self) -> FakeSocketMode:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- Slack's side -------------------------------------------------------------------------

    def wait_connected(self, timeout: float = 10.0) -> None:
        with self._cond:
            if not self._cond.wait_for(lambda: self._conns, timeout):
                raise TimeoutError("the bot did not open a Socket Mode connection")

    def send(self, kind: str, payload: dict[str, Any]) -> str:
        """Deliver one envelope (`slash_commands`, `interactive`, `events_api`); returns its id."""
        envelope_id = f"env-{next(self._ids)}"
        message = {
            "envelope_id": envelope_id,
            "type": kind,
            "payload": payload,
            "accepts_response_payload": kind != "events_api",
        }
        with self._send_lock:
            if not self._conns:
                raise ConnectionError("no Socket Mode connection is open")
            self._conns[-1].sendall(_frame(_TEXT, json.dumps(message).encode()))
        return envelope_id

    def wait_ack(self, envelope_id: str, timeout: float = 10.0) -> dict[str, Any]:
        """The acknowledgement the app sent for an envelope (its `payload`, `{}` when bare)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while envelope_id not in self.acks:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no acknowledgement for {envelope_id}")
                self._cond.wait(left)
            return self.acks[envelope_id]

    def request(self, kind: str, payload: dict[str, Any], timeout: float = 10.0) -> dict[str, Any]:
        return self.wait_ack(self.send(kind, payload), timeout)

    # -- the WebSocket server -----------------------------------------------------------------

    def _accept_loop(self) -> None:
        while not self._stopped:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            if not _handshake(conn):
                return
            with self._cond:
                self._conns.append(conn)
                self.connections += 1
                self._cond.notify_all()
            reader = conn.makefile("rb")
            while True:
                opcode, data = _read_frame(reader)
                if opcode == _TEXT:
                    self._on_text(data)
                elif opcode == _PING:
                    with self._send_lock:
                        conn.sendall(_frame(_PONG, data))
                elif opcode == _CLOSE:
                    with self._send_lock:
                        conn.sendall(_frame(_CLOSE, data[:2]))
                    return
        except (OSError, ValueError, EOFError):
            return
        finally:
            with self._cond:
                if conn in self._conns:
                    self._conns.remove(conn)
            _close_quietly(conn)

    def _on_text(self, data: bytes) -> None:
        message = json.loads(data)
        if isinstance(message, dict) and "envelope_id" in message:
            with self._cond:
                self.acks[str(message["envelope_id"])] = message.get("payload") or {}
                self._cond.notify_all()


def _handshake(conn: socket.socket) -> bool:
    raw = b""
    while b"\r\n\r\n" not in raw:
        chunk = conn.recv(4096)
        if not chunk:
            return False
        raw += chunk
    headers = {}
    for line in raw.split(b"\r\n")[1:]:
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    key = headers.get("sec-websocket-key")
    if not key or headers.get("upgrade", "").lower() != "websocket":
        conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        return False
    accept = base64.b64encode(hashlib.sha1((key + _GUID).encode()).digest()).decode()  # noqa: S324
    conn.sendall(
        (
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Accept: {accept}\r\n\r\n"
        ).encode()
    )
    return True


def _frame(opcode: int, data: bytes) -> bytes:
    """A server frame: final, unmasked."""
    head = bytes([0x80 | opcode])
    if len(data) < 126:
        head += bytes([len(data)])
    elif len(data) < 1 << 16:
        head += bytes([126]) + struct.pack("!H", len(data))
    else:
        head += bytes([127]) + struct.pack("!Q", len(data))
    return head + data


def _read_frame(reader: Any) -> tuple[int, bytes]:
    """One client frame (clients always mask); fragments are not used by Slack's SDKs here."""
    first, second = _exactly(reader, 2)
    opcode = first & 0x0F
    length = second & 0x7F
    if length == 126:
        (length,) = struct.unpack("!H", _exactly(reader, 2))
    elif length == 127:
        (length,) = struct.unpack("!Q", _exactly(reader, 8))
    mask = _exactly(reader, 4) if second & 0x80 else b"\0\0\0\0"
    data = _exactly(reader, length)
    return opcode, bytes(b ^ mask[i % 4] for i, b in enumerate(data))


def _exactly(reader: Any, n: int) -> bytes:
    data = reader.read(n)
    if len(data) < n:
        raise EOFError("connection closed")
    return data


def _close_quietly(conn: socket.socket) -> None:
    with contextlib.suppress(OSError):
        conn.shutdown(socket.SHUT_RDWR)
    conn.close()
