"""Thin Slack listeners: parse the payload, ack, hand the step to the workflow, answer."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from slack_bolt import App

    from bot.runtime.bootstrap import Runtime


def register(app: App, runtime: Runtime) -> None:
    from handlers import actions, approve_modal, batch, commands, deny_modal, home, mfa_enrol, step

    commands.register(app, runtime)
    actions.register(app, runtime)
    approve_modal.register(app, runtime)
    deny_modal.register(app, runtime)
    mfa_enrol.register(app, runtime)
    home.register(app, runtime)
    batch.register(app, runtime)
    step.register(app, runtime)
