"""A fake Slack Web API plus a driver that sends correctly signed requests to the bot.

`FakeSlack` is a real HTTP server on 127.0.0.1 that answers the Web API methods the bot uses
(`chat.postMessage`, `chat.update`, `chat.postEphemeral`, `conversations.history`,
`conversations.replies`, `auth.test`,
`usergroups.users.list`, `chat.getPermalink`, `conversations.open` (direct messages: a DM's
channel is `D` + the user id), `views.open` (each modal gets a view id), `views.update` (of an
open modal, by `view_id` or `external_id`; a `hash` that is not the view's latest is
`hash_conflict`) and `views.publish` (kept per user; all three in `bot.fakes.slack_views`),
`apps.connections.open` for Socket Mode with `bot.fakes.socket_mode`),
keeps the messages so a test can read the card as it stands, receives `response_url` posts
(ephemeral answers), and can be told to fail a method (a Slack error, an HTTP status). It keeps
Slack's pace for `chat.postMessage` per channel (`bot.fakes.slack_rate`, on unless
`rate_limited=False`).

It is as strict as Slack: a message sent to a channel that does not exist, or an update naming
the wrong channel or ts, is refused (`channel_not_found`, `message_not_found`;
`bot.fakes.slack_channels` says which channels exist), Block Kit checked with slack_sdk's models
and Slack's limits (`bot.fakes.blockkit`), a trigger_id good once within 3 s and a response_url five times within
30 minutes (`bot.fakes.slack_strict`, every refusal kept in `refusals`), and history and thread
reads paged with cursors, never more than `page_size` messages a page (`bot.fakes.slack_pages`).

Its HTTP side is in `bot.fakes.slack_http`; `bot.fakes.slack_driver.SlackDriver` plays Slack's
side towards the bot.

Testing aids: they never talk to the real Slack.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bot.fakes import blockkit, slack_files, slack_functions, slack_pages, slack_views
from bot.fakes.polling import poll
from bot.fakes.server import FakeHTTPServer
from bot.fakes.slack_channels import Channels
from bot.fakes.slack_http import handler_for
from bot.fakes.slack_rate import ChannelRate
from bot.fakes.slack_strict import Refusal, Strictness

BOT_ID = "B1"
BOT_USER = "UBOT"  # the bot user that auth.test names
APP_ID = "A1"


@dataclass
class Message:
    channel: str
    ts: str
    text: str
    blocks: list[dict[str, Any]] = field(default_factory=list)
    thread_ts: str | None = None
    updates: int = 0
    bot_id: str = BOT_ID  # "" for a person's message (`FakeSlack.say`)
    user: str = BOT_USER


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
        page_size: int = 10,
        clock: Callable[[], float] = time.monotonic,
        rate_limited: bool = True,
        channels: set[str] | None = None,
    ) -> None:
        """`clock_ts`: message timestamps from the wall clock, as Slack's are, so they stay unique
        across runs that share one database (the default counts from a fixed value).
        `page_size`: the most messages a history or thread page holds, whatever `limit` asks.
        `clock`: what trigger and response_url lifetimes are measured with (a test may move it).
        `rate_limited=False`: no per-channel pace on chat.postMessage (benchmarks).
        `channels`: the only channels that exist (default: every id of Slack's shape; DMs once
        opened; `bot.fakes.slack_channels`)."""
        self.token = token
        self.page_size = page_size
        self.clock = clock
        self.strict = Strictness(lambda: self.clock())
        self.clock_ts = clock_ts
        self._last_micros = 0
        self.app_token = app_token
        # Where `apps.connections.open` sends Socket Mode clients (a FakeSocketMode's url).
        self.socket_url: str | None = None
        self.rate = ChannelRate(enabled=rate_limited)
        self.channels = Channels(channels)
        self.messages: list[Message] = []
        self.ephemeral: list[dict[str, Any]] = []
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.faults: list[SlackFault] = []
        self.usergroups = usergroups or {}
        self.views: dict[str, dict[str, Any]] = {}  # views.publish: each user's App Home
        self.opened_views: list[dict[str, Any]] = []  # views.open: the modals opened
        # views.update: each update as given ({"view_id", "view"}); the modal's id is "V<n>".
        self.updated_views: list[dict[str, Any]] = []
        # Batches: files a user "uploaded" (id -> (name, bytes)), files the bot uploaded
        # (id -> {"name", "title", "content", "channel", "thread_ts"}).
        self.user_files: dict[str, tuple[str, bytes]] = {}
        self.uploads: dict[str, dict[str, Any]] = {}
        self.lock = threading.Lock()
        # Custom functions (Workflow Builder steps) and their executions (bot.fakes.slack_functions).
        self.functions = slack_functions.Functions(lambda: self.clock(), token, self.strict.refusals)
        self._ts = itertools.count(1)
        self.interactions = itertools.count(1)  # numbers the drivers' trigger_ids, response_urls
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

    def issue_response_url(self, name: str) -> str:
        """A response_url for an interaction Slack sends now (it lives 30 minutes, 5 posts)."""
        with self.lock:
            self.strict.issue_response_url(name)
        return self.response_url(name)

    def issue_trigger(self, trigger_id: str) -> str:
        """A trigger_id for an interaction Slack sends now (one views.open, within 3 s)."""
        with self.lock:
            self.strict.issue_trigger(trigger_id)
        return trigger_id

    @property
    def refusals(self) -> list[Refusal]:
        """Everything refused so far because Slack would have refused it (not scripted faults)."""
        return self.strict.refusals

    def say(self, channel: str, text: str, user: str = "UPERSON01", thread_ts: str | None = None) -> str:
        """A person's message in `channel` (or in a thread): it is not the bot's."""
        with self.lock:
            ts = self._new_ts()
            self.messages.append(Message(channel, ts, text, [], thread_ts, bot_id="", user=user))
            return ts

    def lost_post(self, channel: str, text: str) -> str:
        """A message of the bot's that it never learnt the ts of (Slack's answer lost on the way):
        what a stale or forged click sits on, since Slack sends a click only from a message it
        holds."""
        with self.lock:
            self.channels.add(channel)
            ts = self._new_ts()
            self.messages.append(Message(channel, ts, text))
            return ts

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
            return [
                m for m in self.messages if m.thread_ts is None and m.bot_id and not m.channel.startswith("D")
            ]

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
        kit = blockkit.refusal(method, args)  # the slowest check, and pure: outside the lock
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
            if method in slack_functions.METHODS:  # the bot token, or the execution's workflow token
                return 200, self.functions.answer(method, args, auth), {}
            if auth != f"Bearer {self.token}":
                return 200, {"ok": False, "error": "invalid_auth"}, {}
            if method == "auth.test":
                return (
                    200,
                    {"ok": True, "user_id": BOT_USER, "team_id": "T1", "bot_id": BOT_ID, "team": "Test"},
                    {},
                )
            refused = self.strict.api_refusal(method, args, kit)
            if refused is not None:
                return 200, refused, {}
            if method == "chat.postMessage":
                channel = self.channels.post_target(str(args.get("channel") or ""))
                if channel is None:
                    return 200, self._refuse(method, "channel_not_found", args.get("channel")), {}
                wait = self.rate.admit(channel)
                if wait is not None:
                    return 429, {"ok": False, "error": "ratelimited"}, {"Retry-After": str(wait)}
                ts = self._new_ts()
                blocks = args.get("blocks") or []
                if isinstance(blocks, str):
                    blocks = json.loads(blocks)
                self.messages.append(
                    Message(channel, ts, args.get("text", ""), blocks, args.get("thread_ts"))
                )
                return 200, {"ok": True, "channel": channel, "ts": ts}, {}
            if method == "chat.update":
                channel = str(args.get("channel") or "")
                if not self.channels.exists(channel):
                    return 200, self._refuse(method, "channel_not_found", channel), {}
                target = next(
                    (
                        m
                        for m in self.messages
                        if m.ts == args.get("ts") and m.channel == channel and m.thread_ts is None
                    ),
                    None,
                )
                if target is None:
                    return 200, self._refuse(method, "message_not_found", f"{channel} {args.get('ts')}"), {}
                blocks = args.get("blocks") or []
                target.blocks = json.loads(blocks) if isinstance(blocks, str) else blocks
                target.text = args.get("text", target.text)
                target.updates += 1
                return 200, {"ok": True, "channel": target.channel, "ts": target.ts}, {}
            if method == "chat.postEphemeral":
                self.ephemeral.append({"user": args.get("user"), "text": args.get("text", "")})
                return 200, {"ok": True, "message_ts": "1.1"}, {}
            if method == "conversations.history":
                return 200, slack_pages.history(self.messages, args, self.page_size), {}
            if method == "conversations.replies":
                return 200, slack_pages.replies(self.messages, args, self.page_size), {}
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
                return 200, {"ok": True, "channel": {"id": self.channels.open_dm(users)}}, {}
            if method in slack_views.METHODS:
                return 200, slack_views.answer(self, method, args), {}
            if method.startswith("files."):
                return 200, slack_files.answer(self, method, args), {}
            if method == "usergroups.users.list":
                users = self.usergroups.get(str(args.get("usergroup")))
                if users is None:
                    return 200, {"ok": False, "error": "no_such_subteam"}, {}
                return 200, {"ok": True, "users": users}, {}
            return 200, {"ok": False, "error": "unknown_method"}, {}

    def _refuse(self, method: str, error: str, detail: object) -> dict[str, Any]:
        """Slack's answer to a call it refuses, kept in `refusals` (the bot's mistake, not a
        scripted fault: the test that made the bot send it fails)."""
        self.strict.refusals.append(Refusal(method, error, str(detail)))
        return {"ok": False, "error": error}

    def handle_response_url(self, name: str, payload: dict[str, Any]) -> None:
        with self.lock:
            self.ephemeral.append({"response_url": name, **payload})

    def response_url_post(self, name: str, payload: dict[str, Any]) -> tuple[int, str]:
        """A post to a response_url: (HTTP status, body) as Slack answers it."""
        with self.lock:
            refused = self.strict.response_url_refusal(name, payload)
        if refused is not None:
            return refused
        self.handle_response_url(name, payload)
        return 200, "ok"
