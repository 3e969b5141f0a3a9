"""What the sandbox saw: a fake Slack and a fake sFOX that write every call the bot makes into
one journal, in the order it happened, so each scene can be printed as a transcript of what the
bot did in answer to it."""

from __future__ import annotations

import json
import threading
from typing import Any

from bot.fakes.sfox_api import FakeSfox
from bot.fakes.slack_api import FakeSlack
from bot.sandbox.transcript import Entry, Ephemeral, Posted, SfoxCall, SlackRefused, Updated


class RecordingSlack(FakeSlack):
    """The fake Slack, also writing what the bot did into the sandbox's journal, in order."""

    def __init__(self, journal: Journal, token: str) -> None:
        super().__init__(token=token, clock_ts=True)
        self.journal = journal

    def handle_api(
        self, method: str, args: dict[str, Any], auth: str | None
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        status, body, headers = super().handle_api(method, args, auth)
        blocks = args.get("blocks") or []
        if isinstance(blocks, str):
            blocks = json.loads(blocks)
        channel = str(args.get("channel", ""))
        if status == 429:
            pass  # Slack's pace (bot/fakes/slack_rate.py): nothing posted; the bot sends it again later
        elif not body.get("ok"):
            self.journal.add(SlackRefused(method, str(body.get("error") or f"HTTP {status}")))
        elif method == "chat.postMessage":
            thread = args.get("thread_ts")
            self.journal.add(Posted(channel, str(body["ts"]), str(args.get("text", "")), blocks, thread))
        elif method == "chat.update":
            self.journal.add(Updated(channel, str(args.get("ts")), str(args.get("text", "")), blocks))
        return status, body, headers

    def handle_response_url(self, name: str, payload: dict[str, Any]) -> None:
        super().handle_response_url(name, payload)
        self.journal.add(Ephemeral(self.journal.owner_of(name), str(payload.get("text", ""))))


class RecordingSfox(FakeSfox):
    def __init__(self, journal: Journal, api_key: str) -> None:
        super().__init__(api_key=api_key)
        # The sandbox reads balances faster than sFOX's route allows (SFOX_BALANCE_READS_PER_10S
        # is raised for it, bot/sandbox/harness.py): its scenes follow each other without waiting.
        self.unlimited(
            why="the sandbox's scenes read balances without waiting for the route", balance_only=True
        )
        self.journal = journal

    def answer(self, method: str, path: str, auth: str | None) -> tuple[int, bytes]:
        status, body = super().answer(method, path, auth)
        self.journal.add(SfoxCall(method, path, status))
        return status, body


class Journal:
    """Everything observed, in the order it happened; readers take what is new since last time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: list[Entry] = []
        self._read = 0
        self._owners: dict[str, str] = {}

    def add(self, entry: Entry) -> None:
        with self._lock:
            self._entries.append(entry)

    def own(self, response_name: str, user_id: str) -> None:
        with self._lock:
            self._owners[response_name] = user_id

    def owner_of(self, response_name: str) -> str:
        with self._lock:
            return self._owners.get(response_name, "someone")

    def take(self) -> list[Entry]:
        with self._lock:
            new = self._entries[self._read :]
            self._read = len(self._entries)
            return new
