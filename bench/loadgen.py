"""The load generator: signed Slack requests sent from a process of their own.

It runs apart from the fakes (which answer the bot's Slack and sFOX calls in the benchmark process)
so that neither slows the other down through a shared GIL, and it is one asyncio loop with one
persistent HTTP/1.1 connection per simulated client, so sending costs little CPU on a 2-core
machine. Each sample is the wall time from just before the request is written until the
whole response has been read; `started` is `time.perf_counter()` (CLOCK_MONOTONIC, the same clock
in every process), so it can be compared with times taken in the benchmark process.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bot.fakes.slack_driver import sign

EVENTS = "/slack/events"
TIMEOUT = 60.0


@dataclass(frozen=True)
class Sample:
    started: float  # perf_counter when the request was sent
    seconds: float  # wall time until the whole response was read
    status: int


class LoadGenerator:
    """A long-lived helper process (`python -m bench.loadgen`), started once and reused by every
    section; jobs and samples travel as JSON lines over its stdin and stdout (the bodies are
    url-encoded, so ASCII)."""

    def __init__(self, signing_secret: str) -> None:
        self.secret = signing_secret
        root = Path(__file__).resolve().parent.parent
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")])),
        }
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "bench.loadgen"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            cwd=root,
        )

    @property
    def pid(self) -> int:
        return self._proc.pid

    def close(self) -> None:
        if self._proc.stdin:
            self._proc.stdin.close()
        self._proc.wait(timeout=30)

    def closed_loop(
        self,
        url: str,
        per_client: Sequence[Sequence[bytes]],
        warmup: Sequence[bytes] = (),
        fresh: bool = False,
    ) -> list[Sample]:
        """Each client sends its bodies back to back on its own connection; all start together,
        after each sent one untimed warm-up body (which opens its connection). `fresh`: a new
        connection for every body instead, its connect timed with it, as Slack, which promises
        no keep-alive, may send each request."""
        return self._call(
            "closed_loop",
            url,
            [[b.decode() for b in bodies] for bodies in per_client],
            [b.decode() for b in warmup],
            fresh,
        )

    def burst(self, targets: Sequence[tuple[str, bytes]]) -> list[Sample]:
        """One request per (url, body), each on a connection opened beforehand, all sent at once."""
        return self._call("burst", [(url, body.decode()) for url, body in targets])

    def _call(self, name: str, *args: Any) -> list[Sample]:
        assert self._proc.stdin and self._proc.stdout
        self._proc.stdin.write(json.dumps([name, self.secret, args]).encode() + b"\n")
        self._proc.stdin.flush()
        line = self._proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the load generator exited ({self._proc.poll()})")
        ok, value = json.loads(line)
        if not ok:
            raise RuntimeError(f"load generator failed: {value}")
        return [Sample(*v) for v in value]


class Connection:
    """One persistent HTTP/1.1 connection, written by hand: the bodies are tiny and every
    response carries Content-Length, and at ~1.5 ms of CPU per request an httpx client would
    make the load generator, not the bot, the busiest process on a 2-core machine."""

    def __init__(self, url: str, secret: str) -> None:
        parts = urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.secret = secret
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(OSError):
                await self.writer.wait_closed()
            self.writer = None

    async def request(self, method: str, path: str, body: bytes = b"", fresh: bool = False) -> Sample:
        """One request and its answer; `fresh`: on a new connection, opened (and timed) first
        and closed after."""
        if fresh:
            await self.close()
        connecting = time.perf_counter()
        if self.writer is None:
            await self.open()
        assert self.reader is not None and self.writer is not None
        head = f"{method} {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nContent-Length: {len(body)}\r\n"
        if body:
            ts = str(int(time.time()))
            head += (
                "Content-Type: application/x-www-form-urlencoded\r\n"
                f"X-Slack-Request-Timestamp: {ts}\r\nX-Slack-Signature: {sign(self.secret, ts, body)}\r\n"
            )
        data = head.encode() + b"\r\n" + body
        started = connecting if fresh else time.perf_counter()
        self.writer.write(data)
        status_line = await asyncio.wait_for(self.reader.readline(), TIMEOUT)
        length, close = None, False
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
            elif name.strip().lower() == "connection" and value.strip().lower() == "close":
                close = True
        if length is None:
            raise RuntimeError(f"response without Content-Length: {status_line!r}")
        await self.reader.readexactly(length)
        seconds = time.perf_counter() - started
        if close or fresh:
            await self.close()
        return Sample(started, seconds, int(status_line.split()[1]))


def _closed_loop(
    secret: str, url: str, per_client: Sequence[Sequence[str]], warmup: Sequence[str], fresh: bool = False
) -> list[Sample]:
    async def main() -> list[Sample]:
        conns = [Connection(url, secret) for _ in per_client]
        try:
            await asyncio.gather(*(c.open() for c in conns))
            await asyncio.gather(
                *(c.request("POST", EVENTS, b.encode()) for c, b in zip(conns, warmup, strict=False))
            )

            async def one(conn: Connection, bodies: Sequence[str]) -> list[Sample]:
                return [await conn.request("POST", EVENTS, body.encode(), fresh) for body in bodies]

            results = await asyncio.gather(
                *(one(c, bodies) for c, bodies in zip(conns, per_client, strict=True))
            )
            return [s for r in results for s in r]
        finally:
            await asyncio.gather(*(c.close() for c in conns))

    return asyncio.run(main())


def _burst(secret: str, targets: Sequence[tuple[str, str]]) -> list[Sample]:
    async def main() -> list[Sample]:
        conns = [Connection(url, secret) for url, _ in targets]
        try:
            await asyncio.gather(*(c.open() for c in conns))
            await asyncio.gather(*(c.request("GET", "/healthz") for c in conns))
            return list(
                await asyncio.gather(
                    *(
                        c.request("POST", EVENTS, body.encode())
                        for c, (_, body) in zip(conns, targets, strict=True)
                    )
                )
            )
        finally:
            await asyncio.gather(*(c.close() for c in conns))

    return asyncio.run(main())


def main() -> None:
    """Serve jobs from stdin until it closes (samples or an error, pickled to stdout)."""
    jobs: dict[str, Callable[..., list[Sample]]] = {"closed_loop": _closed_loop, "burst": _burst}
    for line in sys.stdin.buffer:
        name, secret, args = json.loads(line)
        try:
            samples = jobs[name](secret, *args)
            reply: list[Any] = [True, [[s.started, s.seconds, s.status] for s in samples]]
        except Exception:
            reply = [False, traceback.format_exc()]
        sys.stdout.buffer.write(json.dumps(reply).encode() + b"\n")
        sys.stdout.buffer.flush()


if __name__ == "__main__":
    main()
