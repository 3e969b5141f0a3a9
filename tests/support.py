"""Helpers for the issue-2 end-to-end tests: holding a fake sFOX call open, reading what the bot
said (ack bodies, response_url posts, every fake Slack call) and dumping the database."""

from __future__ import annotations

import json
import socket
import threading
from typing import Any

import httpx
from sqlalchemy import select

from bot.fakes.polling import poll
from bot.fakes.sfox_api import FakeSfox, SeenRequest
from bot.store.db import Store
from bot.store.schema import metadata
from tests.conftest import Bot


class Gate:
    """Holds every `method` request to the fake sFOX until `open()`: the test then knows the call
    is in flight (`arrived`) and cannot have been answered yet. `close()` holds the next ones
    again (those let through go on). Use as a context manager so a failing test never leaves the
    bot waiting on a held call."""

    def __init__(self, sfox: FakeSfox, method: str = "DELETE", hold_seconds: float = 30.0) -> None:
        self.sfox = sfox
        self.method = method
        self.hold_seconds = hold_seconds
        self.arrived = threading.Event()
        self.released = threading.Event()
        self.on_arrival: Any = None
        self.holding = 0  # calls held right now
        self._count = threading.Condition()

    def _hook(self, seen: SeenRequest) -> None:
        if seen.method != self.method:
            return
        if self.on_arrival is not None:
            self.on_arrival(seen)
        self.arrived.set()
        with self._count:
            self.holding += 1
            self._count.notify_all()
        try:
            self.released.wait(self.hold_seconds)
        finally:
            with self._count:
                self.holding -= 1
                self._count.notify_all()

    def wait_arrived(self, timeout: float = 10.0) -> None:
        assert self.arrived.wait(timeout), f"the bot never sent its {self.method} to sFOX"

    def wait_holding(self, n: int = 1, timeout: float = 10.0) -> None:
        with self._count:
            held = self._count.wait_for(lambda: self.holding >= n, timeout)
        assert held, f"fewer than {n} {self.method} calls to sFOX held after {timeout} s"

    def open(self) -> None:
        self.released.set()

    def close(self) -> None:
        self.released.clear()

    def __enter__(self) -> Gate:
        self.sfox.on_request = self._hook
        return self

    def __exit__(self, *exc: object) -> None:
        self.released.set()
        self.sfox.on_request = None


def ack_text(response: httpx.Response) -> str:
    """The ephemeral answer Slack shows for a slash command acked with a text."""
    assert response.status_code == 200, response.text
    body = response.json()
    assert body.get("response_type") == "ephemeral", body
    return str(body["text"])


def later_ephemerals(bot: Bot, response: httpx.Response, timeout: float = 10.0) -> list[str]:
    """Texts the bot posted to this request's response_url (answers sent after the ack)."""
    return bot.driver.ephemeral_for(response.extensions["response_name"], timeout)


def slack_posts(bot: Bot, method: str | None = None) -> list[dict[str, Any]]:
    """Arguments of every Web API call the bot made (optionally of one method)."""
    with bot.slack.lock:
        return [args for name, args in bot.slack.calls if method is None or name == method]


def everything_sent_to_slack(bot: Bot) -> str:
    """Every byte of text the bot sent to Slack: Web API calls and response_url posts."""
    with bot.slack.lock:
        calls = [{"method": name, **args} for name, args in bot.slack.calls]
        ephemerals = list(bot.slack.ephemeral)
    return json.dumps({"calls": calls, "ephemeral": ephemerals}, ensure_ascii=False, default=str)


def dump_database(store: Store) -> str:
    """Every row of every table, as text, to search for things that must never be stored."""
    out: list[str] = []
    with store.engine.connect() as conn:
        for table in metadata.sorted_tables:
            for row in conn.execute(select(table)):
                out.append(f"{table.name}: {tuple(row)!r}")
    return "\n".join(out)


# Bound and never listening, kept for the test process's life: the port cannot be handed to a
# server another test starts meanwhile (a closed port freed at once was, now and then, and the
# "unreachable" sFOX answered as some other test's fake).
_HELD_CLOSED: list[socket.socket] = []


def closed_port_url() -> str:
    """An http URL on 127.0.0.1 where nothing listens (connections are refused)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    _HELD_CLOSED.append(s)
    return f"http://127.0.0.1:{s.getsockname()[1]}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def event_kinds(bot: Bot, request_id: int) -> list[str]:
    return [e.kind for e in bot.store.events_for(request_id)]


def drain(bot: Bot) -> None:
    """Wait until every click and command the bot has acked is fully processed, and every job
    they queued (sFOX calls, Slack messages) has finished, the owed Slack messages that Slack's
    pace held back included (the delivery loop sends them when due). The bot takes no new work
    afterwards."""
    bot.runtime.app.listener_runner.listener_executor.shutdown(wait=True)
    bot.runtime.jobs.shutdown(wait=True)
    if not poll(lambda: not bot.store.unsent_notices(bot.runtime.workflow.now()), 30):
        raise AssertionError("owed Slack messages still unsent after 30 s")
