"""The card's buttons: Approve, Deny, and Retry (offered after a failure that changed nothing);
and the DMs' Watch and Stop watching (bot/slack/watch_blocks.py), journalled the same way."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from bot.crashpoints import crash_point
from bot.requests.base import CardRef
from bot.runtime.clicks import HOME, Click
from bot.runtime.journal import not_recorded
from bot.slack.batch_card import BATCH_ACTIONS, BATCH_APPROVE
from bot.slack.blocks import card_block_id
from bot.slack.identity import is_own_message
from bot.slack.watch_blocks import WATCH_ACTIONS
from bot.store.errors import Busy
from handlers.commands import say_privately
from handlers.home import home_answer

if TYPE_CHECKING:
    from slack_bolt import Ack, App, BoltContext, Respond

    from bot.runtime.bootstrap import Runtime


def register(app: App, runtime: Runtime) -> None:
    on_click = click_listener(runtime)
    # Deny is registered by handlers/deny_modal.py: it opens the reason modal, and falls back to
    # this same listener when the modal cannot be opened. Approve (the card's and the batch
    # card's) by handlers/approve_modal.py: this same listener, or the code modal with step-up; so
    # is Retry, an approval too (issue 32). The batch card's buttons (bot/slack/batch_card.py) are
    # journalled the same way.
    for action_id in (*(a for a in BATCH_ACTIONS if a != BATCH_APPROVE), *WATCH_ACTIONS):
        app.action(action_id)(on_click)


def click_listener(
    runtime: Runtime, *, as_action: str | None = None, answer_in: str | None = None
) -> Callable[..., None]:
    """The listener for a button: record the click, ack, then run its step on the step pool (the
    web role: a worker does). `as_action` records it as that card action (an App Home button does
    what the card's does); `answer_in` is where the clicker is answered (HOME: their App Home tab;
    None: privately through the response URL), recorded with the click so that whichever process
    handles it answers there (`Clicks.handle_fresh`)."""

    def on_click(
        ack: Ack, body: dict[str, Any], action: dict[str, Any], respond: Respond, context: BoltContext
    ) -> None:
        actor = str((body.get("user") or {}).get("id", ""))
        request_id = request_id_of(action.get("value"))
        # Only for what is answered before anything is recorded.
        answer = (
            home_answer(runtime)(body, respond)
            if answer_in == HOME
            else (lambda t: say_privately(respond, t))
        )
        if request_id is None or not actor:
            ack()
            answer("That button did not carry a valid request; nothing was changed.")
            return
        click = Click(
            as_action or action["action_id"],
            request_id,
            actor,
            card_of(body, context),
            body.get("response_url"),
            answer_in=answer_in,
        )
        try:
            # Recorded before the ack: a click Slack was told we received is never lost.
            click = runtime.clicks.receive(click)
        except Exception as exc:
            ack()
            if runtime.visibility is not None:
                runtime.visibility.metrics.click(click.action, "not_recorded")
            answer(not_recorded("click", "click again", exc))
            if not isinstance(exc, Busy):
                raise
            return
        ack()
        if not runtime.clicks.hands_over:  # the web role: a worker handles it (bot/runtime/roles.py)
            runtime.step(on_acked, click)

    def on_acked(click: Click) -> None:
        """The click's step, after the ack (on the step pool)."""
        crash_point("click_acked")
        runtime.clicks.handle_fresh(click)

    return on_click


def request_id_of(value: object) -> int | None:
    if not isinstance(value, str) or not value.isdigit() or len(value) > 12:
        return None
    return int(value)


def card_of(body: dict[str, Any], context: BoltContext) -> CardRef | None:
    """The message the clicked button sits on. It may become the card of the request the button
    names only when it is this bot's own message (by the `bot_id` and bot user Bolt's `auth.test`
    gave `context`; bot/slack/identity.py) and the button sits in that request's card block."""
    container = body.get("container") or {}
    message = body.get("message") or {}
    channel = container.get("channel_id") or (body.get("channel") or {}).get("id")
    ts = container.get("message_ts") or message.get("ts")
    if container.get("type") != "message" or container.get("is_ephemeral") or not channel or not ts:
        return None
    action = (body.get("actions") or [{}])[0]
    request_id = request_id_of(action.get("value"))
    ours = (
        request_id is not None
        and action.get("block_id") == card_block_id(request_id)
        and is_own_message(message, context.bot_id, context.bot_user_id, body.get("api_app_id"))
    )
    return CardRef(str(channel), str(ts), ours)
