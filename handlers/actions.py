"""The card's buttons: Approve, Deny, and Retry (offered after a failure that changed nothing)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from bot.blocks import APPROVE, DENY, RETRY
from bot.workflow import ClickResult
from handlers.commands import say_privately

if TYPE_CHECKING:
    from slack_bolt import Ack, App, Respond

    from bot.runtime import Runtime


def register(app: App, runtime: Runtime) -> None:
    workflow = runtime.workflow
    steps: dict[str, Callable[[int, str], ClickResult]] = {
        APPROVE: workflow.approve,
        DENY: workflow.deny,
        RETRY: workflow.retry,
    }

    def on_click(ack: Ack, body: dict[str, Any], action: dict[str, Any], respond: Respond) -> None:
        ack()
        actor = str((body.get("user") or {}).get("id", ""))
        request_id = _request_id(action.get("value"))
        if request_id is None or not actor:
            say_privately(respond, "That button did not carry a valid request; nothing was changed.")
            return
        result = steps[action["action_id"]](request_id, actor)
        if result.ephemeral:
            say_privately(respond, result.ephemeral)
        if result.execute:
            runtime.submit(workflow.execute, request_id)
        runtime.submit(workflow.deliver, request_id)

    for action_id in steps:
        app.action(action_id)(on_click)


def _request_id(value: object) -> int | None:
    if not isinstance(value, str) or not value.isdigit() or len(value) > 12:
        return None
    return int(value)
