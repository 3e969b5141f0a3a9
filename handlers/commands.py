"""`/sfox-deactivate <sfox_user_id> [reason]`."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from bot.crashpoints import crash_point
from bot.requests.base import Command
from bot.slack import subcommands
from bot.slack.blocks import code
from handlers.batch import is_batch
from handlers.batch import on_command as on_batch_command

if TYPE_CHECKING:
    from slack_bolt import Ack, App, Respond

    from bot.runtime.bootstrap import Runtime

COMMAND = "/sfox-deactivate"
log = logging.getLogger("sfox_bot.handlers")


def register(app: App, runtime: Runtime) -> None:
    workflow = runtime.workflow

    @app.command(COMMAND)
    def on_command(ack: Ack, command: dict[str, Any], respond: Respond, client: Any) -> None:
        user, text = str(command.get("user_id", "")), str(command.get("text", ""))
        if is_batch(text):  # `/sfox-deactivate batch …` (handlers/batch.py)
            on_batch_command(runtime, ack, command, respond, client)
            return
        if runtime.visibility is not None:  # help, status, list (bot/slack/subcommands.py)
            answer = subcommands.dispatch(runtime.visibility.subcommands, user, text)
            if answer is not None:
                ack(response_type="ephemeral", text=answer)
                return
        checked = workflow.check_command(user, str(command.get("channel_id", "")), text)
        if isinstance(checked, str):
            ack(response_type="ephemeral", text=checked)
            return
        ack(response_type="ephemeral", text=f"Looking up {code(checked.sfox_user_id)} on sFOX…")
        runtime.submit(_open_request, runtime, checked, respond)


def _open_request(runtime: Runtime, cmd: Command, respond: Respond) -> None:
    """Runs after the ack: the sFOX lookup and the card post may take seconds."""
    crash_point("command_acked")
    outcome = runtime.workflow.open_request(cmd)
    if isinstance(outcome, str):
        say_privately(respond, outcome)
        runtime.workflow.deliver()  # e.g. a blocked request's DM to the requester (bot/slack/dms.py)


def say_privately(respond: Respond, text: str) -> None:
    try:
        respond(text=text, response_type="ephemeral", replace_original=False)
    except Exception as exc:  # the person misses a hint, but nothing recorded is affected
        log.warning("ephemeral answer not delivered", extra={"error": type(exc).__name__})
