"""The Workflow Builder step `deactivate_sfox_account` (a Bolt custom step): hand the event to
bot/runtime/steps.py before the ack, which Bolt sends when this returns."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bot.slack.steps import CALLBACK_ID

if TYPE_CHECKING:
    from slack_bolt import App

    from bot.runtime.bootstrap import Runtime


def register(app: App, runtime: Runtime) -> None:
    steps = runtime.custom_steps
    if steps is None:
        return

    # Bolt's `complete` and `fail` are not used: they carry the workflow token, which expires
    # long before an approval does (bot/slack/steps.py); the outbox completes the step.
    @app.function(CALLBACK_ID)
    def on_step(event: dict[str, Any]) -> None:
        steps.receive(event)
