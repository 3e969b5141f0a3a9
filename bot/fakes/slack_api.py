"""A fake Slack Web API plus a driver that sends correctly signed requests to the bot.

`FakeSlack` is a real HTTP server on 127.0.0.1 that answers the Web API methods the bot uses
(`chat.postMessage`, `chat.update`, `chat.postEphemeral`, `conversations.history`,
`conversations.replies`, `auth.test`,
`usergroups.users.list`, `chat.getPermalink`, `conversations.open` (direct messages: a DM's
channel is `D` + the user id), `views.open` and `views.publish` (kept per user),
`apps.connections.open` for Socket Mode with `bot.fakes.socket_mode`),
keeps the messages so a test can read the card as it stands, receives `response_url` posts
(ephemeral answers), and can be told to fail a method (a Slack error, an HTTP status). It keeps
Slack's pace for `chat.postMessage` per channel (`bot.fakes.slack_rate`, on unless
`rate_limited=False`).

Its HTTP side is in `bot.fakes.slack_http`; `bot.fakes.slack_driver.SlackDriver` plays Slack's
side towards the bot.

Testing aids: they never talk to the real Slack.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from bot.fakes.polling import poll
from bot.fakes.server import FakeHTTPServer
from bot.fakes.slack_http import handler_for
from bot.fakes.slack_rate import ChannelRate

BOT_ID = "B1"
APP_ID = "A1"


@dataclass
class Message:
    channel: str
    ts: str
    text: str
    blocks: list[dict[str, Any]] = field(default_factory=list)
    thread_ts: str | None = None
    updates: int = 0
    bot_id: str = BOT_ID  # every message here was posted with the bot's token


@dataclass
class SlackFault:
    method: str
    error: str | None = "internal_error"
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    times: int = 1


class FakeSlack:
    def __init__(
        self,
        token: str = "xoxb-test-token",
        host: str = "127.0.0.1",
        port: int = 0,
        usergroups: dict[str, list[str]] | None = None,
        clock_ts: bool = False,
        app_token: str = "xapp-test-token",
        rate_limited: bool = True,
    ) -> None:
        """`clock_ts`: message timestamps from the wall clock, as Slack's are, so they stay unique
        across runs that share one database (the default counts from a fixed value).
        `rate_limited=False`: no per-channel pace on chat.postMessage (benchmarks)."""
        self.token = token
        self.clock_ts = clock_ts
        self._last_micros = 0
        self.app_token = app_token
        # Where `apps.connections.open` sends Socket Mode clients (a FakeSocketMode's url).
        self.socket_url: str | None = None
        self.rate = ChannelRate(enabled=rate_limited)
        self.messages: list[Message] = []
        self.ephemeral: list[dict[str, Any]] = []
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.faults: list[SlackFault] = []
        self.usergroups = usergroups or {}
        self.views: dict[str, dict[str, Any]] = {}  # views.publish: each user's App Home
        self.opened_views: list[dict[str, Any]] = []  # views.open: the modals opened
        # Batches: files a user "uploaded" (id -> (name, bytes)), files the bot uploaded
        # (id -> {"name", "title", "content", "channel", "thread_ts"}).
        self.user_files: dict[str, tuple[str, bytes]] = {}
        self.uploads: dict[str, dict[str, Any]] = {}
        self.lock = threading.Lock()
        self._ts = itertools.count(1)
        self._server = FakeHTTPServer((host, port), handler_for(self))
        self._server.daemon_threads = True

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def api_url(self) -> str:
        return self.url + "/api/"

    def response_url(self, name: str = "r") -> str:
        return f"{self.url}/response/{name}"

    def start(self) -> FakeSlack:
        threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="fake-slack", daemon=True
        ).start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeSlack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def fail(
        self,
        method: str,
        error: str | None = "internal_error",
        status: int = 200,
        times: int = 1,
        headers: dict[str, str] | None = None,
    ) -> None:
        with self.lock:
            self.faults.append(SlackFault(method, error, status, headers or {}, times))

    # -- reading what the bot did -------------------------------------------------------------

    def cards(self) -> list[Message]:
        with self.lock:
            return [m for m in self.messages if m.thread_ts is None and not m.channel.startswith("D")]

    def dms(self, user_id: str) -> list[Message]:
        """The direct messages the bot sent `user_id` (its DM channel is `D` + the user id)."""
        with self.lock:
            return [m for m in self.messages if m.channel == "D" + user_id]

    def home(self, user_id: str) -> dict[str, Any] | None:
        """The App Home view last published for `user_id`."""
        with self.lock:
            return self.views.get(user_id)

    def thread(self, ts: str) -> list[Message]:
        with self.lock:
            return [m for m in self.messages if m.thread_ts == ts]

    def message(self, ts: str) -> Message | None:
        with self.lock:
            return next((m for m in self.messages if m.ts == ts and m.thread_ts is None), None)

    def wait_for(self, predicate: Any, timeout: float = 10.0) -> Any:
        """Poll until `predicate()` returns something truthy; return it (or raise TimeoutError)."""
        value = poll(predicate, timeout)
        if not value:
            raise TimeoutError("the fake Slack did not see what was expected")
        return value

    # -- behaviour ----------------------------------------------------------------------------

    def _take_fault(self, method: str) -> SlackFault | None:
        for fault in self.faults:
            if fault.method == method and fault.times > 0:
                fault.times -= 1
                return fault
        return None

    def _new_ts(self) -> str:
        n = next(self._ts)
        if not self.clock_ts:
            return f"{1700000000 + n}.000100"
        self._last_micros = max(time.time_ns() // 1000, self._last_micros + 1)
        return f"{self._last_micros // 1_000_000}.{self._last_micros % 1_000_000:06d}"

    def handle_api(
        self, method: str, args: dict[str, Any], auth: str | None
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        with self.lock:
            self.calls.append((method, args))
            fault = self._take_fault(method)
            if fault is not None:
                body = {"ok": False, "error": fault.error} if fault.error else {}
                return fault.status, body, fault.headers
            if method == "apps.connections.open":
                if auth != f"Bearer {self.app_token}":
                    return 200, {"ok": False, "error": "invalid_auth"}, {}
                if self.socket_url is None:
                    return 200, {"ok": False, "error": "socket_mode_not_enabled"}, {}
                return 200, {"ok": True, "url": self.socket_url}, {}
            if auth != f"Bearer {self.token}":
                return 200, {"ok": False, "error": "invalid_auth"}, {}
            if method == "auth.test":
                return (
                    200,
                    {"ok": True, "user_id": "UBOT", "team_id": "T1", "bot_id": BOT_ID, "team": "Test"},
                    {},
                )
            if method == "chat.postMessage":
                wait = self.rate.admit(str(args.get("channel", "")))
                if wait is not None:
                    return 429, {"ok": False, "error": "ratelimited"}, {"Retry-After": str(wait)}
                ts = self._new_ts()
                blocks = args.get("blocks") or []
                if isinstance(blocks, str):
                    blocks = json.loads(blocks)
                self.messages.append(
                    Message(args.get("channel", ""), ts, args.get("text", ""), blocks, args.get("thread_ts"))
                )
                return 200, {"ok": True, "channel": args.get("channel"), "ts": ts}, {}
            if method == "chat.update":
                target = next(
                    (m for m in self.messages if m.ts == args.get("ts") and m.thread_ts is None), None
                )
                if target is None:
                    return 200, {"ok": False, "error": "message_not_found"}, {}
                blocks = args.get("blocks") or []
                target.blocks = json.loads(blocks) if isinstance(blocks, str) else blocks
                target.text = args.get("text", target.text)
                target.updates += 1
                return 200, {"ok": True, "channel": target.channel, "ts": target.ts}, {}
            if method == "chat.postEphemeral":
                self.ephemeral.append({"user": args.get("user"), "text": args.get("text", "")})
                return 200, {"ok": True, "message_ts": "1.1"}, {}
            if method == "conversations.history":
                return 200, self._history(args), {}
            if method == "conversations.replies":
                parent = args.get("ts")
                found = [
                    m
                    for m in self.messages
                    if m.channel == args.get("channel") and parent in (m.ts, m.thread_ts)
                ]
                if not any(m.ts == parent for m in found):
                    return 200, {"ok": False, "error": "thread_not_found"}, {}
                listed = [
                    {"type": "message", "ts": m.ts, "thread_ts": parent, "text": m.text, "bot_id": m.bot_id}
                    for m in found
                ]
                return 200, {"ok": True, "messages": listed, "has_more": False}, {}
            if method == "chat.getPermalink":
                found = next(
                    (
                        m
                        for m in self.messages
                        if m.ts == args.get("message_ts") and m.channel == args.get("channel")
                    ),
                    None,
                )
                if found is None:
                    return 200, {"ok": False, "error": "message_not_found"}, {}
                link = f"https://test.slack.com/archives/{found.channel}/p{found.ts.replace('.', '')}"
                return 200, {"ok": True, "channel": found.channel, "permalink": link}, {}
            if method == "conversations.open":
                users = str(args.get("users") or "")
                if not users or "," in users:
                    return 200, {"ok": False, "error": "user_not_found"}, {}
                return 200, {"ok": True, "channel": {"id": "D" + users}}, {}
            if method in ("views.open", "views.publish"):
                view = args.get("view") or {}
                if isinstance(view, str):
                    view = json.loads(view)
                if method == "views.open":
                    if not args.get("trigger_id"):
                        return 200, {"ok": False, "error": "invalid_trigger_id"}, {}
                    self.opened_views.append({"trigger_id": args.get("trigger_id"), "view": view})
                else:
                    self.views[str(args.get("user_id"))] = view
                return (
                    200,
                    {"ok": True, "view": {"id": f"V{len(self.opened_views) + len(self.views)}", **view}},
                    {},
                )
            if method == "files.info":
                found = self.user_files.get(str(args.get("file")))
                if found is None:
                    return 200, {"ok": False, "error": "file_not_found"}, {}
                name, data = found
                url = f"{self.url}/files/{args.get('file')}/{name}"
                return (
                    200,
                    {
                        "ok": True,
                        "file": {
                            "id": args.get("file"),
                            "name": name,
                            "size": len(data),
                            "url_private": url,
                            "url_private_download": url,
                        },
                    },
                    {},
                )
            if method == "files.getUploadURLExternal":
                file_id = f"F{len(self.uploads) + 1:05d}"
                self.uploads[file_id] = {"name": args.get("filename"), "content": None}
                return 200, {"ok": True, "file_id": file_id, "upload_url": f"{self.url}/upload/{file_id}"}, {}
            if method == "files.completeUploadExternal":
                files = args.get("files")
                files = json.loads(files) if isinstance(files, str) else files or []
                for f in files:
                    entry = self.uploads.get(f.get("id"))
                    if entry is None or entry["content"] is None:
                        return 200, {"ok": False, "error": "file_not_found"}, {}
                    entry.update(
                        title=f.get("title"), channel=args.get("channel_id"), thread_ts=args.get("thread_ts")
                    )
                return 200, {"ok": True, "files": [{"id": f.get("id")} for f in files]}, {}
            if method == "usergroups.users.list":
                users = self.usergroups.get(str(args.get("usergroup")))
                if users is None:
                    return 200, {"ok": False, "error": "no_such_subteam"}, {}
                return 200, {"ok": True, "users": users}, {}
            return 200, {"ok": False, "error": "unknown_method"}, {}

    def _history(self, args: dict[str, Any]) -> dict[str, Any]:
        """The channel's top-level messages between `oldest` and `latest`, newest first."""
        oldest = float(args.get("oldest") or 0)
        latest = float(args.get("latest") or "inf")
        limit = int(args.get("limit") or 100)
        found = [
            m
            for m in reversed(self.messages)
            if m.channel == args.get("channel") and m.thread_ts is None and oldest <= float(m.ts) <= latest
        ]
        return {
            "ok": True,
            "messages": [
                {"type": "message", "ts": m.ts, "text": m.text, "blocks": m.blocks, "bot_id": m.bot_id}
                for m in found[:limit]
            ],
            "has_more": len(found) > limit,
        }

    def handle_response_url(self, name: str, payload: dict[str, Any]) -> None:
        with self.lock:
            self.ephemeral.append({"response_url": name, **payload})
