"""Slack's side towards the bot: slash commands, button clicks, view submissions and Events API
callbacks, signed with the signing secret exactly as Slack signs them (v0 HMAC-SHA256 over
`v0:timestamp:body`) and sent to the bot's `/slack/events`. A testing aid.

Each payload is built field for field from Slack's documented examples (the slash command
request, `block_actions` from a message and from the App Home, `view_submission`, the
`app_home_opened` event callback, `url_verification`), with only the fields Slack documents as
always there: a clicked message carries no `app_id`, a Home click no `response_url` and no
`channel`. What Slack would fill from the surface, the driver takes from the fake: the clicked
message and its button as the fake holds them, the Home tab as last published. Each trigger_id
and response_url is issued by the fake, which then holds the bot to their lifetimes.

It waits for the bot's answer as long as Slack does, `ACK_SECONDS` (3 s), and no longer: past it
a request raises `NotAcknowledged` (for a command or an interaction Slack shows the person an
error and sends nothing again). An Events API callback that is not acknowledged in time, or is
answered with a status other than 2xx, is sent again as Slack re-sends it: the same event, at
most `EVENT_RETRIES` times, with `X-Slack-Retry-Num` (1, 2, 3) and `X-Slack-Retry-Reason`
(`http_timeout`, `http_error`); an error answer with `X-Slack-No-Retry: 1` is not re-sent. Slack
spaces its retries (at once, a minute, five minutes); the driver sends them at once, and lists
every delivery in `deliveries`. A test that must wait longer than Slack would says why
(`SlackDriver(..., timeout=10, why="...")`)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx

from bot.fakes.slack_api import FakeSlack
from bot.fakes.slack_payloads import (
    APP_ID,
    clicked_action,
    clicked_message,
    event_callback,
    sign,
    view_as_slack_holds_it,
)
from bot.sfox.client import tls_context

ACK_SECONDS = 3.0  # how long Slack waits for the bot's HTTP answer (its ack)
EVENT_RETRIES = 3  # how many times Slack sends an event again that was not acknowledged


class NotAcknowledged(Exception):
    """Slack stopped waiting: the bot did not answer within `seconds` (`attempts` deliveries of
    the same request, more than one only for an event Slack re-sent)."""

    def __init__(self, seconds: float, attempts: int = 1) -> None:
        super().__init__(f"the bot did not answer within {seconds:g} s ({attempts} attempt(s))")
        self.seconds = seconds
        self.attempts = attempts


@dataclass(frozen=True)
class Delivery:
    """One delivery of an event callback: `retry_num` 0 for the first (no retry headers), the
    `reason` sent with a retry, and what came of it (the HTTP status, or `http_timeout`)."""

    event_id: str
    retry_num: int
    reason: str | None
    outcome: int | str


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
        timeout: float = ACK_SECONDS,
        why: str = "",
    ) -> None:
        """`timeout`: how long a request waits for the bot's answer; longer than Slack's
        `ACK_SECONDS` only with `why`, the reason this test may wait longer than Slack would."""
        if timeout > ACK_SECONDS and not why.strip():
            raise ValueError(
                f"Slack waits {ACK_SECONDS:g} s for an ack: say why this driver waits {timeout:g} s"
            )
        self.timeout = timeout
        self.deliveries: list[Delivery] = []
        self.bot_url = bot_url.rstrip("/")
        self.secret = signing_secret
        self.slack = slack
        self.team_id = team_id
        self.channel_id = channel_id
        self.http = httpx.Client(timeout=timeout, verify=tls_context())  # one CA load per process
        # Numbered by the fake, not per driver: several drivers (bots) on one fake Slack never
        # send the same trigger_id or response_url, as Slack never issues one twice.
        self._n = slack.interactions

    def close(self) -> None:
        self.http.close()

    def post(
        self,
        body: bytes,
        content_type: str,
        *,
        timestamp: str | None = None,
        signature: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        ts = timestamp or str(int(time.time()))
        sent = {
            "Content-Type": content_type,
            "X-Slack-Request-Timestamp": ts,
            "X-Slack-Signature": signature or sign(self.secret, ts, body),
            **(headers or {}),
        }
        started = time.monotonic()
        try:
            response = self.http.post(f"{self.bot_url}/slack/events", content=body, headers=sent)
        except httpx.TimeoutException:
            raise NotAcknowledged(self.timeout) from None
        if time.monotonic() - started > self.timeout:  # each phase within it, the whole not
            raise NotAcknowledged(self.timeout)
        if response.status_code == 200 and "json" in response.headers.get("content-type", ""):
            with self.slack.lock:
                self.slack.strict.ack_refusal(body, response.content)
        return response

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
            "response_url": self.slack.issue_response_url(f"cmd{n}"),
            "trigger_id": self.slack.issue_trigger(f"trigger.{n}"),
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
            "trigger_id": self.slack.issue_trigger(f"trigger.{n}"),
            "channel": {"id": channel_id or self.channel_id, "name": "ops"},
            "message": (message := clicked_message(self.slack, self.team_id, message_ts or "1.1")),
            "response_url": self.slack.issue_response_url(f"click{n}"),
            "actions": [clicked_action(message["blocks"], action_id, value, f"sfox_request_{value}")],
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
        code: str | None = None,
    ) -> httpx.Response:
        """Click a card's button. A Deny opens the bot's reason modal, an Approve with step-up its
        code modal: with `confirm` (the default) the driver submits it at once, with `reason` or
        `code` typed (or none), as a person would; `confirm=False` leaves it open (see
        `modal_for`)."""
        body, name = self.click_body(user_id, action_id, value, message_ts)
        response = self.post(body, "application/x-www-form-urlencoded")
        response.extensions["response_name"] = name
        modal = self.modal_for(name)
        if modal is not None and confirm:
            submitted = self.submit_view(user_id, modal, {"reason": reason or "", "code": code or ""})
            response.extensions["submitted"] = submitted
        return response

    def modal_for(self, response_name: str) -> dict[str, Any] | None:
        """The modal the bot opened in answer to the click or command named `response_name`, if
        any (as it stands: a views.update changes it)."""
        trigger = "trigger." + response_name.removeprefix("click").removeprefix("cmd")
        with self.slack.lock:
            return next((v["view"] for v in self.slack.opened_views if v["trigger_id"] == trigger), None)

    def home_opened(
        self, user_id: str, *, event_id: str | None = None, retry: int = 0, reason: str = "http_timeout"
    ) -> httpx.Response:
        """The Events API's `app_home_opened` for `user_id`, as an event callback. `event_id` names
        the event (a fresh one by default); `retry` > 0 sends it as Slack re-sends an event it did
        not see acknowledged in time, with `X-Slack-Retry-Num` and `X-Slack-Retry-Reason`."""
        event: dict[str, Any] = {
            "type": "app_home_opened",
            "user": user_id,
            "channel": "D" + user_id,
            "tab": "home",
            "event_ts": f"{time.time():.6f}",
        }
        with self.slack.lock:  # the event names the app's DM with the user: it exists
            self.slack.channels.add(event["channel"])
        published = self.slack.home(user_id)
        if published is not None:  # Slack adds the Home view the user last saw
            event["view"] = view_as_slack_holds_it(self.team_id, published, "VHOME")
        payload = event_callback(self.team_id, event, event_id or f"Ev{next(self._n):08d}")
        return self.send_event(payload, retry=retry, reason=reason)

    def function_executed(
        self,
        callback_id: str,
        inputs: dict[str, Any],
        *,
        ran_by: str | None = None,
        execution_id: str | None = None,
        event_id: str | None = None,
        retry: int = 0,
    ) -> httpx.Response:
        """A workflow runs the app's step `callback_id` (declared in `slack.functions`): the
        Events API's `function_executed`, field for field as Slack's example, with a new
        execution and its workflow token (`bot_access_token`). `ran_by`: the person who ran the
        workflow, handed to the step's interactivity input by Slack (None: an execution that
        carries none). `execution_id` and `event_id` send an earlier one again (its interactivity
        as before); `retry` > 0 as Slack re-sends it (`X-Slack-Retry-Num`)."""
        with self.slack.lock:
            execution, event = self.slack.functions.executed_event(callback_id, inputs, execution_id, ran_by)
        payload = event_callback(self.team_id, event, event_id or f"Ev{next(self._n):08d}")
        response = self.send_event(payload, retry=retry)
        response.extensions["execution_id"] = execution.id
        return response

    def send_event(
        self, payload: dict[str, Any], *, retry: int = 0, reason: str = "http_timeout"
    ) -> httpx.Response:
        """Deliver an event callback as Slack does, re-sending it while it is not acknowledged
        (see the module's docstring). `retry` > 0 starts as a retry Slack sends for `reason`
        (the first delivery lost on the way). The answer to the last delivery is returned;
        NotAcknowledged if none came in time."""
        body = json.dumps(payload).encode()
        event_id = str(payload["event_id"])
        sent_reason: str | None = reason if retry else None
        attempts = 0
        while True:
            attempts += 1
            headers = (
                {"X-Slack-Retry-Num": str(retry), "X-Slack-Retry-Reason": str(sent_reason)} if retry else None
            )
            try:
                response = self.post(body, "application/json", headers=headers)
            except NotAcknowledged:
                self.deliveries.append(Delivery(event_id, retry, sent_reason, "http_timeout"))
                if retry >= EVENT_RETRIES:
                    raise NotAcknowledged(self.timeout, attempts) from None
                retry, sent_reason = retry + 1, "http_timeout"
                continue
            self.deliveries.append(Delivery(event_id, retry, sent_reason, response.status_code))
            acknowledged = 200 <= response.status_code < 300
            if acknowledged or response.headers.get("X-Slack-No-Retry") == "1" or retry >= EVENT_RETRIES:
                response.extensions["event_id"] = event_id
                return response
            retry, sent_reason = retry + 1, "http_error"

    def url_verification(self, challenge: str) -> httpx.Response:
        """What Slack sends when the Events request URL is saved: the app must echo `challenge`."""
        payload = {"token": "legacy-unused", "challenge": challenge, "type": "url_verification"}
        return self.post(json.dumps(payload).encode(), "application/json")

    def home_click(self, user_id: str, action_id: str, value: str) -> httpx.Response:
        """A button click in `user_id`'s App Home: its container is the Home view (as last
        published), and Slack sends neither a `response_url` nor a `channel` with it."""
        n = next(self._n)
        view = view_as_slack_holds_it(
            self.team_id, self.slack.home(user_id) or {"type": "home", "blocks": []}, "VHOME"
        )
        payload = {
            "type": "block_actions",
            "user": {"id": user_id, "username": user_id.lower(), "team_id": self.team_id},
            "api_app_id": APP_ID,
            "token": "legacy-unused",
            "container": {"type": "view", "view_id": view["id"]},
            "trigger_id": self.slack.issue_trigger(f"trigger.{n}"),
            "team": {"id": self.team_id, "domain": "test"},
            "view": view,
            "actions": [clicked_action(view["blocks"], action_id, value, f"sfox_home_{value}")],
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
            "view": {**view_as_slack_holds_it(self.team_id, view, "VMODAL"), "state": {"values": values}},
            "api_app_id": APP_ID,
            "token": "legacy-unused",
            "trigger_id": self.slack.issue_trigger(f"trigger.{next(self._n)}"),
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
