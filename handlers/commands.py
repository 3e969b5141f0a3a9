"""`/sfox-deactivate <sfox_user_id> [reason]`."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from bot.slack import subcommands
from bot.slack.blocks import code
from handlers.batch import is_batch
from handlers.batch import on_command as on_batch_command
from handlers.mfa_enrol import is_mfa
from handlers.mfa_enrol import on_command as on_mfa_command

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
        if is_mfa(text):  # `/sfox-deactivate mfa`: enrol a second factor (handlers/mfa_enrol.py)
            on_mfa_command(runtime, ack, command)
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
        # Recorded before the ack (bot/runtime/commands.py): a command Slack was told we received
        # is carried out even if this process dies first.
        accepted = runtime.commands.accept(checked, command.get("response_url"))
        if isinstance(accepted, str):
            ack(response_type="ephemeral", text=accepted)  # not recorded: it changed nothing
            return
        ack(response_type="ephemeral", text=f"Looking up {code(checked.sfox_user_id)} on sFOX…")
        # The sFOX lookup, the balance read and the card may take seconds: after the ack.
        runtime.commands.carry_out_later(accepted)


def say_privately(respond: Respond, text: str) -> None:
    try:
        respond(text=text, response_type="ephemeral", replace_original=False)
    except Exception as exc:  # the person misses a hint, but nothing recorded is affected
        log.warning("ephemeral answer not delivered", extra={"error": type(exc).__name__})
