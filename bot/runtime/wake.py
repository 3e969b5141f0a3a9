"""Waking the workers the moment the web role has recorded work for them (issue 26).

The web role writes a click or command to its journal and acks; a worker takes the row
(bot/runtime/journal.py `take_due`). Polling for rows would put the poll interval into the time to
the card, so the web role wakes the workers instead, and the poll only covers a wake-up that got
lost (a worker that was restarting, a dropped datagram).

- PostgreSQL: `NOTIFY sfox_work`, which every worker `LISTEN`s to on a connection of its own; it
  reaches workers on any host, as the database does.
- SQLite: the database is one file on one host, so are its processes: each worker listens on a
  Unix datagram socket in the abstract namespace (no file to clean up) and registers its name in
  a directory beside the database file; the web role sends one byte to each name it finds there.

A wake-up is a hint, never a message that carries work: losing one delays a row by at most the
poll interval, and a repeated one costs one empty take. The web role never waits for it: `wake()`
only sets a flag that a sender thread turns into one NOTIFY or datagram per burst of acks.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import secrets
import select
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from sqlalchemy.engine import Engine

log = logging.getLogger("sfox_bot.wake")

CHANNEL = "sfox_work"
# A lost wake-up delays work by at most this: each worker also looks on its own this often.
POLL_SECONDS = 2.0


class Listener(Protocol):
    def wait(self, timeout: float) -> bool:
        """Block until woken (True) or `timeout` seconds have passed (False)."""
        ...

    def close(self) -> None: ...


class Waker:
    """The web role's side: `wake()` returns at once; a thread sends one wake-up per burst."""

    def __init__(self, send: Callable[[], None], name: str) -> None:
        self._send = send
        self._wanted = threading.Event()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=f"sfox-wake-{name}", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        self._wanted.set()

    def close(self) -> None:
        self._closed = True
        self._wanted.set()
        self._thread.join(timeout=2.0)

    def _run(self) -> None:
        while True:
            self._wanted.wait()
            if self._closed:
                return
            self._wanted.clear()  # wakes asked for while this one is sent make one more
            try:
                self._send()
            except Exception as exc:  # a hint only: the workers' poll finds the work anyway
                log.warning(
                    "workers not woken; they will look on their own", extra={"error": type(exc).__name__}
                )


def waker_for(engine: Engine) -> Waker:
    """How this database's web role wakes its workers."""
    if engine.dialect.name == "postgresql":
        return Waker(_notifier(engine), "notify")
    return Waker(_Datagrams(engine).send, "datagram")


def listener_for(engine: Engine) -> Listener:
    """How a worker of this database is woken."""
    if engine.dialect.name == "postgresql":
        return _PgListener(engine)
    return _Datagrams(engine).listen()


# -- PostgreSQL: LISTEN/NOTIFY -------------------------------------------------------------------


def _notifier(engine: Engine) -> Callable[[], None]:
    def send() -> None:
        with engine.begin() as conn:
            conn.exec_driver_sql(f"NOTIFY {CHANNEL}")

    return send


def _conninfo(engine: Engine) -> str:
    """The engine's database as a libpq address (its password too: never logged)."""
    return engine.url.set(drivername="postgresql").render_as_string(hide_password=False)


class _PgListener:
    """A connection of its own, outside the pool, that only listens."""

    def __init__(self, engine: Engine) -> None:
        import psycopg

        self._conn = psycopg.connect(_conninfo(engine), autocommit=True)
        self._conn.execute(f"LISTEN {CHANNEL}")

    def wait(self, timeout: float) -> bool:
        woken = False
        for _ in self._conn.notifies(timeout=timeout, stop_after=1):
            woken = True
        if woken:  # a burst is one wake-up: drain what else is already here
            for _ in self._conn.notifies(timeout=0):
                pass
        return woken

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._conn.close()


# -- SQLite: datagrams on one host ----------------------------------------------------------------


class _Datagrams:
    """The directory beside the database file where listening workers leave their names."""

    def __init__(self, engine: Engine) -> None:
        database = engine.url.database or ""
        path = Path(database).resolve() if database and database != ":memory:" else None
        self.directory = path.with_name(path.name + ".wake") if path is not None else None
        # Abstract socket names share one namespace per host: the database's path keeps apart
        # the workers of different databases.
        self.prefix = "sfox-wake-" + hashlib.sha256(str(path).encode()).hexdigest()[:16] + "-"

    def _address(self, name: str) -> bytes:
        return b"\0" + (self.prefix + name).encode()

    def send(self) -> None:
        if self.directory is None or not self.directory.is_dir():
            return  # no worker listens (yet): its poll will find the work
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.setblocking(False)
            for entry in os.scandir(self.directory):
                try:
                    sock.sendto(b"!", self._address(entry.name))
                except ConnectionRefusedError:  # its worker is gone
                    with contextlib.suppress(OSError):
                        os.unlink(entry.path)
                except BlockingIOError:  # its queue is full: it has been woken plenty
                    pass

    def listen(self) -> _DatagramListener:
        return _DatagramListener(self)


class _DatagramListener:
    def __init__(self, datagrams: _Datagrams) -> None:
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.setblocking(False)
        name = f"{os.getpid()}-{secrets.token_hex(4)}"
        self._sock.bind(datagrams._address(name))
        self._entry: Path | None = None
        if datagrams.directory is not None:
            datagrams.directory.mkdir(exist_ok=True)
            self._entry = datagrams.directory / name
            self._entry.touch()

    def wait(self, timeout: float) -> bool:
        ready, _, _ = select.select([self._sock], [], [], timeout)
        if not ready:
            return False
        with contextlib.suppress(BlockingIOError):
            while self._sock.recv(16):  # a burst is one wake-up
                pass
        return True

    def close(self) -> None:
        if self._entry is not None:
            with contextlib.suppress(OSError):
                self._entry.unlink()
        self._sock.close()
