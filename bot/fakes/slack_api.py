"""A fake Slack Web API plus a driver that sends correctly signed requests to the bot.

`FakeSlack` is a real HTTP server on 127.0.0.1 that answers the Web API methods the bot uses
(`chat.postMessage`, `chat.update`, `chat.postEphemeral`, `conversations.history`,
`conversations.replies`, `auth.test`,
`usergroups.users.list`, `chat.getPermalink`, `conversations.open` (direct messages: a DM's
channel is `D` + the user id), `views.open` and `views.publish` (kept per user),
`apps.connections.open` for Socket Mode with `bot.fakes.socket_mode`),
keeps the messages so a test can read the card as it stands, receives `response_url` posts
(ephemeral answers), and can be told to fail a method (a Slack error, an HTTP status).

`SlackDriver` plays Slack's side towards the bot: slash commands and button clicks, signed with
the signing secret exactly as Slack signs them (v0 HMAC-SHA256 over `v0:timestamp:body`).

Testing aids: they never talk to the real Slack.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlencode

import httpx

from bot.fakes.polling import poll
from bot.fakes.server import FakeHTTPServer

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
    ) -> None:
        """`clock_ts`: message timestamps from the wall clock, as Slack's are, so they stay unique
        across runs that share one database (the default counts from a fixed value)."""
        self.token = token
        self.clock_ts = clock_ts
        self._last_micros = 0
        self.app_token = app_token
        # Where `apps.connections.open` sends Socket Mode clients (a FakeSocketMode's url).
        self.socket_url: str | None = None
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
        self._server = FakeHTTPServer((host, port), _handler_for(self))
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


def _handler_for(fake: FakeSlack) -> type[BaseHTTPRequestHandler]:
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
                fake.handle_response_url(self.path[len("/response/") :], payload)
                self._send(200, b"ok", {"Content-Type": "text/plain"})
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


# -- Slack's side towards the bot -----------------------------------------------------------------


def sign(secret: str, timestamp: str, body: bytes) -> str:
    base = b"v0:" + timestamp.encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


class SlackDriver:
    """Sends signed slash commands and button clicks to the bot's `/slack/events`."""

    def __init__(
        self,
        bot_url: str,
        signing_secret: str,
        slack: FakeSlack,
        *,
        team_id: str = "T1",
        channel_id: str = "C0123TEST",
        timeout: float = 10.0,
    ) -> None:
        self.bot_url = bot_url.rstrip("/")
        self.secret = signing_secret
        self.slack = slack
        self.team_id = team_id
        self.channel_id = channel_id
        self.http = httpx.Client(timeout=timeout)
        self._n = itertools.count(1)

    def close(self) -> None:
        self.http.close()

    def post(
        self, body: bytes, content_type: str, *, timestamp: str | None = None, signature: str | None = None
    ) -> httpx.Response:
        ts = timestamp or str(int(time.time()))
        headers = {
            "Content-Type": content_type,
            "X-Slack-Request-Timestamp": ts,
            "X-Slack-Signature": signature or sign(self.secret, ts, body),
        }
        return self.http.post(f"{self.bot_url}/slack/events", content=body, headers=headers)

    def command_body(self, user_id: str, text: str, channel_id: str | None = None) -> tuple[bytes, str]:
        n = next(self._n)
        form = {
            "token": "legacy-unused",
            "team_id": self.team_id,
            "team_domain": "test",
            "channel_id": channel_id or self.channel_id,
            "channel_name": "ops",
            "user_id": user_id,
            "user_name": user_id.lower(),
            "command": "/sfox-deactivate",
            "text": text,
            "api_app_id": APP_ID,
            "response_url": self.slack.response_url(f"cmd{n}"),
            "trigger_id": f"trigger.{n}",
        }
        return urlencode(form).encode(), f"cmd{n}"

    def command(self, user_id: str, text: str, channel_id: str | None = None) -> httpx.Response:
        body, name = self.command_body(user_id, text, channel_id)
        response = self.post(body, "application/x-www-form-urlencoded")
        response.extensions["response_name"] = name
        return response

    def click_body(
        self,
        user_id: str,
        action_id: str,
        value: str,
        message_ts: str | None = None,
        channel_id: str | None = None,
    ) -> tuple[bytes, str]:
        n = next(self._n)
        payload = {
            "type": "block_actions",
            "team": {"id": self.team_id, "domain": "test"},
            "user": {"id": user_id, "username": user_id.lower(), "team_id": self.team_id},
            "api_app_id": APP_ID,
            "token": "legacy-unused",
            "container": {
                "type": "message",
                "message_ts": message_ts or "1.1",
                "channel_id": channel_id or self.channel_id,
                "is_ephemeral": False,
            },
            "trigger_id": f"trigger.{n}",
            "channel": {"id": channel_id or self.channel_id, "name": "ops"},
            "message": {
                "ts": message_ts or "1.1",
                "type": "message",
                "bot_id": BOT_ID,
                "app_id": APP_ID,
            },
            "response_url": self.slack.response_url(f"click{n}"),
            "actions": [
                {
                    "action_id": action_id,
                    "block_id": f"sfox_request_{value}",
                    "value": value,
                    "type": "button",
                    "action_ts": str(time.time()),
                }
            ],
        }
        return urlencode({"payload": json.dumps(payload)}).encode(), f"click{n}"

    def click(
        self,
        user_id: str,
        action_id: str,
        value: str,
        message_ts: str | None = None,
        *,
        reason: str | None = None,
        confirm: bool = True,
    ) -> httpx.Response:
        """Click a card's button. A Deny opens the bot's reason modal: with `confirm` (the
        default) the driver submits it at once, with `reason` typed (or none), as a person
        would; `confirm=False` leaves it open (see `modal_for`)."""
        body, name = self.click_body(user_id, action_id, value, message_ts)
        response = self.post(body, "application/x-www-form-urlencoded")
        response.extensions["response_name"] = name
        modal = self.modal_for(name)
        if modal is not None and confirm:
            submitted = self.submit_view(user_id, modal, {"reason": reason or ""})
            response.extensions["submitted"] = submitted
        return response

    def modal_for(self, response_name: str) -> dict[str, Any] | None:
        """The modal the bot opened in answer to the click named `response_name`, if any."""
        trigger = "trigger." + response_name.removeprefix("click")
        with self.slack.lock:
            return next((v["view"] for v in self.slack.opened_views if v["trigger_id"] == trigger), None)

    def home_opened(self, user_id: str) -> httpx.Response:
        """The Events API's `app_home_opened` for `user_id` (a JSON event callback)."""
        payload = {
            "token": "legacy-unused",
            "team_id": self.team_id,
            "api_app_id": APP_ID,
            "type": "event_callback",
            "event_id": f"Ev{next(self._n)}",
            "event_time": int(time.time()),
            "event": {
                "type": "app_home_opened",
                "user": user_id,
                "channel": "D" + user_id,
                "tab": "home",
                "event_ts": str(time.time()),
            },
        }
        return self.post(json.dumps(payload).encode(), "application/json")

    def home_click(self, user_id: str, action_id: str, value: str) -> httpx.Response:
        """A button click in `user_id`'s App Home (its container is the Home view, not a message)."""
        n = next(self._n)
        payload = {
            "type": "block_actions",
            "team": {"id": self.team_id, "domain": "test"},
            "user": {"id": user_id, "username": user_id.lower(), "team_id": self.team_id},
            "api_app_id": APP_ID,
            "token": "legacy-unused",
            "container": {"type": "view", "view_id": "VHOME"},
            "trigger_id": f"trigger.{n}",
            "view": {"id": "VHOME", "type": "home", "callback_id": "", "private_metadata": ""},
            "actions": [
                {
                    "action_id": action_id,
                    "block_id": f"sfox_home_{value}",
                    "value": value,
                    "type": "button",
                    "action_ts": str(time.time()),
                }
            ],
        }
        return self.post(
            urlencode({"payload": json.dumps(payload)}).encode(), "application/x-www-form-urlencoded"
        )

    def submit_view(self, user_id: str, view: dict[str, Any], values: dict[str, str]) -> httpx.Response:
        """Submit a modal the bot opened (`view`, as given to views.open), with `values` typed
        into its inputs (block id → text; each block's one input)."""
        state: dict[str, Any] = {}
        for block in view.get("blocks") or []:
            if block.get("type") == "input":
                element = block["element"]
                typed = values.get(block["block_id"])
                state[block["block_id"]] = {
                    element["action_id"]: {"type": element["type"], "value": typed if typed else None}
                }
        return self.view_submission(user_id, view, state)

    def view_submission(self, user_id: str, view: dict[str, Any], values: dict[str, Any]) -> httpx.Response:
        """Submit a form the bot opened (`view` as it was opened) with `values` as
        `{block_id: {action_id: {...}}}`, signed like every request from Slack."""
        payload = {
            "type": "view_submission",
            "team": {"id": self.team_id, "domain": "test"},
            "user": {"id": user_id, "username": user_id.lower(), "team_id": self.team_id},
            "api_app_id": APP_ID,
            "token": "legacy-unused",
            "trigger_id": f"trigger.{next(self._n)}",
            "view": {
                "id": "VMODAL",
                "type": "modal",
                "callback_id": view.get("callback_id"),
                "private_metadata": view.get("private_metadata", ""),
                "state": {"values": values},
                "blocks": view.get("blocks", []),
            },
        }
        return self.post(
            urlencode({"payload": json.dumps(payload)}).encode(), "application/x-www-form-urlencoded"
        )

    def ephemeral_for(self, name: str, timeout: float = 10.0) -> list[str]:
        """Texts posted to the response_url of the request named `name`, waiting for at least one."""
        return self.slack.wait_for(
            lambda: [e.get("text", "") for e in list(self.slack.ephemeral) if e.get("response_url") == name],
            timeout,
        )
