"""The card's buttons: Approve, Deny, and Retry (offered after a failure that changed nothing)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bot.batch_slack import BATCH_ACTIONS
from bot.blocks import APPROVE, DENY, RETRY
from bot.clicks import Click
from bot.crashpoints import crash_point
from bot.store import Busy
from bot.workflow import CardRef
from handlers.commands import say_privately

if TYPE_CHECKING:
    from slack_bolt import Ack, App, Respond

    from bot.runtime import Runtime


def register(app: App, runtime: Runtime) -> None:
    def on_click(ack: Ack, body: dict[str, Any], action: dict[str, Any], respond: Respond) -> None:
        actor = str((body.get("user") or {}).get("id", ""))
        request_id = _request_id(action.get("value"))
        if request_id is None or not actor:
            ack()
            say_privately(respond, "That button did not carry a valid request; nothing was changed.")
            return
        click = Click(action["action_id"], request_id, actor, _card_of(body), body.get("response_url"))
        try:
            # Recorded before the ack: a click Slack was told we received is never lost.
            click = runtime.clicks.receive(click)
        except Exception as exc:
            ack()
            busy = "busy" if isinstance(exc, Busy) else "unable to record clicks right now"
            say_privately(
                respond,
                f":warning: The bot's database is {busy}: your click was *not* recorded and "
                "changed nothing. Please click again in a moment.",
            )
            if not isinstance(exc, Busy):
                raise
            return
        ack()
        runtime.step(on_acked, click, respond)

    def on_acked(click: Click, respond: Respond) -> None:
        """The click's step, after the ack (on the step pool)."""
        crash_point("click_acked")
        runtime.clicks.handle(click, lambda text: say_privately(respond, text))

    for action_id in (APPROVE, DENY, RETRY, *BATCH_ACTIONS):
        app.action(action_id)(on_click)


def _request_id(value: object) -> int | None:
    if not isinstance(value, str) or not value.isdigit() or len(value) > 12:
        return None
    return int(value)


def _card_of(body: dict[str, Any]) -> CardRef | None:
    """The message the clicked button sits on. It is this bot's own when Slack says the app that
    posted it is the app receiving the click (Slack routes a button only to its own app)."""
    container = body.get("container") or {}
    message = body.get("message") or {}
    channel = container.get("channel_id") or (body.get("channel") or {}).get("id")
    ts = container.get("message_ts") or message.get("ts")
    if container.get("type") != "message" or container.get("is_ephemeral") or not channel or not ts:
        return None
    app_id = body.get("api_app_id")
    ours = bool(message.get("bot_id")) and bool(app_id) and message.get("app_id") == app_id
    return CardRef(str(channel), str(ts), ours)
