"""Deny with a reason: the Deny button (on the card or in the App Home) opens a small modal with an
optional reason, which is the confirm step; submitting it records the Deny like any click (in the
click journal, before the ack) with its reason, which the card and the thread then show.

`views.open` must use the click's `trigger_id` within 3 s, so it gets one quick try (no retries)
before the ack: when it fails (Slack slow or down, a client that cannot show modals, no trigger)
the click is a plain Deny, recorded and handled exactly as before. Opening the modal changes
nothing, so losing it is safe; the submission is what counts.
"""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from bot.policy import reasons, rules
from bot.requests.base import CardRef
from bot.runtime.clicks import HOME, Click
from bot.slack.blocks import DENY, code
from bot.slack.home import HOME_DENY
from bot.store.errors import Busy
from handlers.actions import card_of, click_listener, request_id_of

if TYPE_CHECKING:
    from slack_bolt import Ack, App, BoltContext, Respond

    from bot.runtime.bootstrap import Runtime

CALLBACK_ID = "sfox_deny_reason"
REASON_BLOCK = "reason"
REASON_INPUT = "reason"
log = logging.getLogger("sfox_bot.handlers")


def register(app: App, runtime: Runtime) -> None:
    card_plain = click_listener(runtime)
    home_plain = click_listener(runtime, as_action=DENY, answer_in=HOME)

    def deny_listener(plain: Any, from_home: bool) -> Any:
        def on_deny(
            ack: Ack, body: dict[str, Any], action: dict[str, Any], respond: Respond, context: BoltContext
        ) -> None:
            if _open_modal(runtime, body, action, context, from_home):
                ack()
                return
            plain(ack=ack, body=body, action=action, respond=respond, context=context)

        return on_deny

    app.action(DENY)(deny_listener(card_plain, from_home=False))
    app.action(HOME_DENY)(deny_listener(home_plain, from_home=True))

    @app.view(CALLBACK_ID)
    def on_submit(ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        actor = str((body.get("user") or {}).get("id", ""))
        try:
            meta = json.loads(view.get("private_metadata") or "{}")
            request_id = int(meta["r"])
        except (ValueError, KeyError, TypeError):
            ack(
                response_action="errors",
                errors={REASON_BLOCK: "This form lost its request; nothing was changed."},
            )
            return
        values = ((view.get("state") or {}).get("values") or {}).get(REASON_BLOCK) or {}
        reason = reasons.clean_reason(str((values.get(REASON_INPUT) or {}).get("value") or ""))
        if reasons.reason_refusal(reason) is not None:
            ack(response_action="errors", errors={REASON_BLOCK: reasons.reason_field_error()})
            return
        card, response_url = submitted_from(meta)
        click = Click(DENY, request_id, actor, card, response_url, reason=reason or None)
        journal_submitted(
            runtime,
            ack,
            click,
            meta,
            {REASON_BLOCK: "The bot's database is busy: your Deny was not recorded. Try again."},
        )


def submitted_from(meta: dict[str, Any]) -> tuple[CardRef | None, str | None]:
    """The card and response URL of the click that opened a modal, as its private_metadata
    carries them (the Deny dialog's and the code modal's alike)."""
    card = CardRef(str(meta["c"]), str(meta["t"]), ours=bool(meta.get("o"))) if meta.get("t") else None
    response_url = meta.get("u") if isinstance(meta.get("u"), str) else None
    return card, response_url


def journal_submitted(
    runtime: Runtime, ack: Ack, click: Click, meta: dict[str, Any], not_recorded: dict[str, str]
) -> None:
    """A modal's click recorded before the ack, like any click (`not_recorded`: the form's error
    when the journal cannot take it), then handed to the step pool (the web role: a worker),
    answered where it came from (`Clicks.handle_fresh`)."""
    from_home = bool(meta.get("h"))
    if from_home:
        click = replace(click, answer_in=HOME)
    try:
        click = runtime.clicks.receive(click)
    except Exception as exc:
        if runtime.visibility is not None:
            runtime.visibility.metrics.click(click.action, "not_recorded")
        ack(response_action="errors", errors=not_recorded)
        if not isinstance(exc, Busy):
            raise
        return
    ack()
    if not runtime.clicks.hands_over:  # the web role: a worker handles it (bot/runtime/roles.py)
        runtime.step(runtime.clicks.handle_fresh, click)


def _open_modal(
    runtime: Runtime, body: dict[str, Any], action: dict[str, Any], context: BoltContext, from_home: bool
) -> bool:
    """One quick try at opening the reason modal; False to fall back to a plain Deny (which also
    answers a click that could not deny: not an approver, a request no longer pending)."""
    vis = runtime.visibility
    trigger = body.get("trigger_id")
    request_id = request_id_of(action.get("value"))
    actor = str((body.get("user") or {}).get("id", ""))
    if vis is None or not trigger or request_id is None or not actor:
        return False
    record = runtime.store.get(request_id)
    if record is None or record.status != "pending" or record.expires_at <= runtime.workflow.now():
        return False
    if record.batch_id is not None:
        return False  # a batch's user: its batch's card decides it, and the plain Deny says so
    if rules.decide_refusal(runtime.workflow.policy, actor, rules.Step.DENY, record) is not None:
        return False
    card = card_of(body, context)
    meta = {
        "r": request_id,
        "c": card.channel_id if card else None,
        "t": card.ts if card else None,
        "o": bool(card and card.ours),
        "u": body.get("response_url"),
        "h": from_home,
    }
    verb = "Cancel your request" if rules.is_requester(record, actor) else "Deny the deactivation"
    view = {
        "type": "modal",
        "callback_id": CALLBACK_ID,
        "private_metadata": json.dumps(meta),
        "title": {"type": "plain_text", "text": "Deny request"},
        "submit": {"type": "plain_text", "text": "Deny"},
        "close": {"type": "plain_text", "text": "Back"},
        "blocks": [
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": f"{verb} of {code(record.sfox_user_id)} (request #{record.id})? "
                    "Nothing is sent to sFOX.",
                },
            },
            {
                "type": "input",
                "block_id": REASON_BLOCK,
                "optional": True,
                "label": {"type": "plain_text", "text": "Reason (optional)"},
                "element": {
                    "type": "plain_text_input",
                    "action_id": REASON_INPUT,
                    "multiline": True,
                    "max_length": reasons.MAX_REASON,
                },
            },
        ],
    }
    try:
        vis.modal_client.views_open(trigger_id=trigger, view=view)
    except Exception as exc:
        log.info(
            "deny modal not opened; plain deny", extra={"request_id": request_id, "error": type(exc).__name__}
        )
        return False
    return True
