"""What the fake Slack refuses, as Slack does, besides Block Kit (bot/fakes/blockkit.py):

- a `trigger_id` is good for one `views.open`, within 3 seconds of the interaction that carried it:
  an id Slack never issued is `invalid_trigger_id`, one used before `exchanged_trigger_id`, one
  presented after 3 s `expired_trigger_id` (the errors views.open documents);
- a `response_url` takes at most 5 posts within 30 minutes of the interaction: a sixth post, or
  one after 30 minutes, gets HTTP 404 with `used_url` or `expired_url` as its body;
- the bot's ack (its HTTP answer) is read as Slack reads it: a message checked as a message, a
  view_submission's `errors` naming only input blocks of that view, its `update` or `push` view
  checked as views.update and views.push check one, and no other `response_action` than those
  and `clear`.

Every refusal is kept (`Strictness.refusals`), so a test can assert that the bot never sent
anything Slack would have refused. The clock is the fake's, so a test can move it on instead of
sleeping through the 3 seconds.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from bot.fakes import blockkit

TRIGGER_SECONDS = 3.0
RESPONSE_URL_POSTS = 5
RESPONSE_URL_SECONDS = 30 * 60.0


@dataclass(frozen=True)
class Refusal:
    """Something the fake refused: the Web API method (or `response_url:<name>`), Slack's error
    and what Slack would have said about it."""

    where: str
    error: str
    detail: str = ""


@dataclass
class Strictness:
    clock: Callable[[], float]
    refusals: list[Refusal] = field(default_factory=list)
    triggers: dict[str, float] = field(default_factory=dict)  # issued at
    exchanged: set[str] = field(default_factory=set)
    response_urls: dict[str, list[float]] = field(default_factory=dict)  # [issued at, post times…]

    def issue_trigger(self, trigger_id: str) -> None:
        self.triggers[trigger_id] = self.clock()

    def issue_response_url(self, name: str) -> None:
        self.response_urls[name] = [self.clock()]

    def api_refusal(
        self, method: str, args: dict[str, Any], kit: dict[str, Any] | None
    ) -> dict[str, Any] | None:
        """Slack's answer when it would refuse this call (`kit`: what `blockkit.refusal` said of
        it), else None; a views.open that is taken uses up its trigger."""
        body = None
        trigger = str(args.get("trigger_id") or "")
        if method == "views.open":
            error = self._trigger_error(trigger)
            body = {"ok": False, "error": error} if error else None
        body = body or kit
        if body is not None:
            messages = (body.get("response_metadata") or {}).get("messages") or []
            self.refusals.append(Refusal(method, body["error"], " ".join(messages)))
        elif method == "views.open":
            self.exchanged.add(trigger)
        return body

    def response_url_refusal(self, name: str, payload: dict[str, Any]) -> tuple[int, str] | None:
        """(HTTP status, body) when Slack would refuse this post to a response_url, else None
        (and the post counts against the URL's five)."""
        now = self.clock()
        posts = self.response_urls.setdefault(name, [now])  # unknown to the driver: from now
        error = None
        if now - posts[0] > RESPONSE_URL_SECONDS:
            status, error = 404, "expired_url"
        elif len(posts) > RESPONSE_URL_POSTS:
            status, error = 404, "used_url"
        else:
            body = blockkit.message_refusal(payload)
            if body is not None:
                status, error = 400, str(body["error"])
        if error is not None:
            self.refusals.append(Refusal(f"response_url:{name}", error))
            return status, error
        posts.append(now)
        return None

    def ack_refusal(self, sent: bytes, answer: bytes) -> None:
        """The bot's HTTP answer to what Slack sent (its ack), checked as Slack reads it: a
        message (`text`, `blocks`) for a command or a click; for a view_submission, `errors`
        naming input blocks of the submitted view. Anything else (an empty ack, the challenge)
        carries nothing to check."""
        try:
            body = json.loads(answer or b"{}")
        except ValueError:
            return
        if not isinstance(body, dict):
            return
        action = body.get("response_action")
        if action in ("update", "push"):
            refused = blockkit.view_refusal(body.get("view"), "modal")
            if refused is not None:
                messages = (refused.get("response_metadata") or {}).get("messages") or []
                self.refusals.append(Refusal(f"ack:{action}", str(refused["error"]), " ".join(messages)))
        elif action is not None and action not in ("errors", "clear"):
            self.refusals.append(Refusal("ack:view_submission", "invalid_response_action", str(action)))
        elif action == "errors":
            payload = json.loads(dict(parse_qsl(sent.decode("utf-8", "replace"))).get("payload") or "{}")
            view = payload.get("view") or {}
            inputs = {b.get("block_id") for b in view.get("blocks") or [] if b.get("type") == "input"}
            errors = body.get("errors")
            if not isinstance(errors, dict) or not errors or not set(errors) <= inputs:
                self.refusals.append(Refusal("ack:view_submission", "invalid_errors", f"{errors!r}"))
        elif "text" in body or "blocks" in body:
            refused = blockkit.message_refusal(body)
            if refused is not None:
                self.refusals.append(Refusal("ack", str(refused["error"])))

    def _trigger_error(self, trigger: str) -> str | None:
        issued = self.triggers.get(trigger)
        if issued is None:
            return "invalid_trigger_id"
        if trigger in self.exchanged:
            return "exchanged_trigger_id"
        if self.clock() - issued > TRIGGER_SECONDS:
            return "expired_trigger_id"
        return None
