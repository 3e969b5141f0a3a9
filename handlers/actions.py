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
        runtime.step(on_acked, steps[action["action_id"]], _request_id(action.get("value")), actor, respond)

    def on_acked(
        step: Callable[[int, str], ClickResult], request_id: int | None, actor: str, respond: Respond
    ) -> None:
        """The click's database step, after the ack (on the step pool)."""
        if request_id is None or not actor:
            say_privately(respond, "That button did not carry a valid request; nothing was changed.")
            return
        result = step(request_id, actor)
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
