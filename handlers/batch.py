"""`/sfox-deactivate batch …`: inline (`batch id,id,… [reason]`) or, with no ids, a form (modal)
with a box for ids, an optional CSV or text file and a reason. Thin: parse, ack, hand over to
bot.batch. The batch card's buttons are registered with the other buttons (handlers/actions.py)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from bot.batch import BatchAsk

if TYPE_CHECKING:
    from slack_bolt import Ack, App, Respond

    from bot.runtime import Runtime

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
        from handlers.batch_modal import open_modal

        open_modal(runtime, client, str(command.get("trigger_id", "")), channel, respond)
        return
    checked = batches.check_inline(requester, channel, rest)
    if isinstance(checked, str):
        ack(response_type="ephemeral", text=checked)
        return
    ack(response_type="ephemeral", text=f"Checking {len(checked.ids)} users on sFOX…")
    runtime.submit(start, runtime, checked, respond)


def start(runtime: Runtime, ask: BatchAsk, respond: Any) -> None:
    """After the ack: pre-flight and the card may take a while. The progress line replaces the
    ack (a response URL takes 5 messages: at most 3 progress lines, then the answer)."""
    assert runtime.batches is not None
    sent = [0]

    def progress(text: str) -> None:
        if sent[0] < 3:
            sent[0] += 1
            _say(respond, text, replace=True)

    try:
        answer = runtime.batches.open_batch(ask, progress)
    except Exception:
        log.exception("batch pre-flight failed")
        answer = (
            ":warning: The batch could not be prepared (the bot hit an error; see its log). "
            "If no card appeared in the channel, nothing was recorded: try again."
        )
    _say(respond, answer, replace=False)


def _say(respond: Any, text: str, *, replace: bool) -> None:
    try:
        respond(text=text, response_type="ephemeral", replace_original=replace)
    except Exception as exc:  # the person misses a hint; nothing recorded is affected
        log.warning("ephemeral answer not delivered", extra={"error": type(exc).__name__})


def register(app: App, runtime: Runtime) -> None:
    from handlers.batch_modal import register as register_modal

    register_modal(app, runtime)
