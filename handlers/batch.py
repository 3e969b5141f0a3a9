"""`/sfox-deactivate batch …`: inline (`batch id,id,… [reason]`) or, with no ids, a form (modal,
bot/slack/batch_form.py) and its `view_submission`. Thin: parse, ack, hand over to bot/batches. The batch card's buttons are registered with the other buttons (handlers/actions.py)."""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from bot.batches.asking import ids_from_csv, split_ids
from bot.policy import reasons
from bot.slack.batch_form import CALLBACK_ID, form, read_file
from bot.slack.ids import SLACK_CHANNEL_ID

if TYPE_CHECKING:
    from slack_bolt import Ack, App, Respond

    from bot.runtime.bootstrap import Runtime

log = logging.getLogger("sfox_bot.handlers")
WORD = "batch"


def is_batch(text: str) -> bool:
    first = (text or "").split(None, 1)
    return bool(first) and first[0].lower() == WORD


def on_command(runtime: Runtime, ack: Ack, command: dict[str, Any], respond: Respond, client: Any) -> None:
    assert runtime.batches is not None
    batches = runtime.batches
    requester = str(command.get("user_id", ""))
    channel = str(command.get("channel_id", ""))
    rest = (str(command.get("text", "")).split(None, 1) + [""])[1]
    if not rest.strip():
        refusal = batches.refusal(requester, channel)
        if refusal:
            ack(response_type="ephemeral", text=refusal)
            return
        ack()
        open_modal(runtime, client, str(command.get("trigger_id", "")), channel, respond)
        return
    checked = batches.check_inline(requester, channel, rest)
    if isinstance(checked, str):
        ack(response_type="ephemeral", text=checked)
        return
    # Recorded before the ack, like a single request (bot/runtime/commands.py).
    accepted = runtime.commands.accept(checked, command.get("response_url"))
    if isinstance(accepted, str):
        ack(response_type="ephemeral", text=accepted)  # not recorded: it changed nothing
        return
    ack(response_type="ephemeral", text=f"Checking {len(checked.ids)} users on sFOX…")
    # Pre-flight and the card may take a while: after the ack, with progress lines.
    runtime.commands.carry_out_later(accepted)


def register(app: App, runtime: Runtime) -> None:
    _register_form(app, runtime)


def open_modal(runtime: Runtime, client: Any, trigger_id: str, channel_id: str, respond: Any) -> None:
    # The trigger expires 3 s after the command: the modal client's short timeout, not Bolt's 10 s.
    if runtime.visibility is not None:
        client = runtime.visibility.modal_client
    try:
        client.views_open(trigger_id=trigger_id, view=form(channel_id))
    except Exception as exc:
        log.warning("batch form not opened", extra={"error": type(exc).__name__})
        respond(
            text=":warning: I could not open the batch form; use `/sfox-deactivate batch id1,id2,… [reason]`.",
            response_type="ephemeral",
        )


def _register_form(app: App, runtime: Runtime) -> None:
    @app.view(CALLBACK_ID)
    def on_submit(ack: Ack, body: dict[str, Any], view: dict[str, Any], client: Any) -> None:
        assert runtime.batches is not None
        user = str((body.get("user") or {}).get("id", ""))
        try:
            channel = str(json.loads(view.get("private_metadata") or "{}").get("channel", ""))
        except ValueError:
            channel = ""
        if not SLACK_CHANNEL_ID.match(channel):
            ack(
                response_action="errors", errors={"ids": "This form lost its channel; run the command again."}
            )
            return
        values = (view.get("state") or {}).get("values") or {}
        text = str(((values.get("ids") or {}).get("value") or {}).get("value") or "")
        reason = str(((values.get("reason") or {}).get("value") or {}).get("value") or "")
        files = ((values.get("file") or {}).get("value") or {}).get("files") or []
        tokens = split_ids(text)
        if files:
            content = read_file(
                client, files[0], runtime.settings.slack_api_url, runtime.settings.slack_bot_token or ""
            )
            if isinstance(content, tuple):
                ack(response_action="errors", errors={"file": content[0]})
                return
            tokens += ids_from_csv(content)
        if not reason.strip():
            ack(response_action="errors", errors={"reason": reasons.reason_required_field_error()})
            return
        checked = runtime.batches.check(user, channel, tokens, reason)
        if isinstance(checked, str):
            ack(response_action="errors", errors={"ids": _plain(checked)[:150]})
            return
        # Recorded before the ack; a form has no response URL: it is answered in its channel.
        accepted = runtime.commands.accept(checked, None)
        if isinstance(accepted, str):
            ack(response_action="errors", errors={"ids": _plain(accepted)[:150]})  # the form stays open
            return
        ack()
        client.chat_postEphemeral(
            channel=channel, user=user, text=f"Checking {len(checked.ids)} users on sFOX…"
        )
        runtime.commands.carry_out_later(accepted)


def _plain(text: str) -> str:
    return text.replace("`", "").replace(":warning: ", "").replace(":no_entry: ", "")
