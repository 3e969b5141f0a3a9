"""`/sfox-deactivate mfa`: enrol an authenticator app as the second factor on Approve (issue 18).

The command opens a modal showing a fresh TOTP secret (and its `otpauth://` URI, as text to paste
into the app) and one box for a first code. The secret is never put in a message (messages stay
in history), a log or the database in the clear: the modal carries it sealed in its
private_metadata (bot/mfa/sealing.py), and it is stored sealed once a first code proves the app
has it. A wrong code is the box's error; a good one replaces the modal with a confirmation, so
the secret leaves the screen too. A person enrolled already is refused: only an operator's
`sfox-bot mfa reset` removes an enrolment, so a stolen Slack session cannot swap the factor.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from bot.mfa.stepup import Answer
from bot.policy import rules
from bot.store.errors import Busy

if TYPE_CHECKING:
    from slack_bolt import Ack, App

    from bot.runtime.bootstrap import Runtime

SUBCOMMAND = "mfa"
CALLBACK_ID = "sfox_mfa_enrol"
CODE_BLOCK = "first_code"
CODE_INPUT = "code"
log = logging.getLogger("sfox_bot.handlers")


def is_mfa(text: str) -> bool:
    return (text or "").strip().lower() == SUBCOMMAND


def on_command(runtime: Runtime, ack: Ack, command: dict[str, Any]) -> None:
    user = str(command.get("user_id", ""))
    if runtime.mfa is None:
        ack(
            response_type="ephemeral",
            text="No second factor is asked for here (step-up is off: SFOX_STEP_UP=none), so there is "
            "nothing to set up.",
        )
        return
    refusal = rules.approver_refusal(runtime.workflow.policy.approvers, user, rules.Step.APPROVE)
    if refusal is not None:
        ack(response_type="ephemeral", text=refusal.text)
        return
    fresh = runtime.mfa.new_enrolment(user)
    if isinstance(fresh, Answer):
        ack(response_type="ephemeral", text=fresh.text)
        return
    secret, uri, sealed = fresh
    error = _open_modal(runtime, str(command.get("trigger_id") or ""), secret, uri, sealed)
    if error is None:
        ack()
        return
    ack(
        response_type="ephemeral",
        text=f":warning: I could not open the set-up form (Slack said `{error}`). Nothing was changed; "
        "run `/sfox-deactivate mfa` again.",
    )


def register(app: App, runtime: Runtime) -> None:
    @app.view(CALLBACK_ID)
    def on_submit(ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        actor = str((body.get("user") or {}).get("id", ""))
        if runtime.mfa is None:
            ack(response_action="errors", errors={CODE_BLOCK: "Step-up is off here now; nothing to set up."})
            return
        try:
            sealed = str(json.loads(view.get("private_metadata") or "{}")["s"])
        except (ValueError, KeyError, TypeError):
            ack(
                response_action="errors",
                errors={CODE_BLOCK: "This form lost its key: run the command again."},
            )
            return
        values = ((view.get("state") or {}).get("values") or {}).get(CODE_BLOCK) or {}
        typed = str((values.get(CODE_INPUT) or {}).get("value") or "")
        try:
            answer = runtime.mfa.enrol(actor, sealed, typed)
        except Busy:
            ack(
                response_action="errors",
                errors={CODE_BLOCK: "The bot's database is busy: nothing was saved. Try the next code."},
            )
            return
        if not answer.ok:
            ack(response_action="errors", errors={CODE_BLOCK: answer.text})
            return
        log.info("second factor enrolled", extra={"actor": actor})
        ack(response_action="update", view=_done_view(answer.text))


def _open_modal(runtime: Runtime, trigger: str, secret: str, uri: str, sealed: str) -> str | None:
    """One quick try at opening the set-up form; None when it opened, else Slack's error."""
    vis = runtime.visibility
    if vis is None or not trigger:
        return "no_trigger"
    view = {
        "type": "modal",
        "callback_id": CALLBACK_ID,
        "private_metadata": json.dumps({"s": sealed}),  # sealed: the secret never travels in the clear
        "title": {"type": "plain_text", "text": "Second factor"},
        "submit": {"type": "plain_text", "text": "Set up"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": "With step-up on, *Approve* asks for a code from an authenticator app "
                    "(Google Authenticator, 1Password, Authy…). Add this key to it (time-based, "
                    f"6 digits, every 30 s):\n`{secret}`",
                },
            },
            {"type": "section", "text": {"type": "mrkdwn", "text": f"Or paste this URI:\n`{uri}`"}},
            {
                "type": "context",
                "elements": [
                    {
                        "type": "mrkdwn",
                        "text": "Only you see this form. The key is not kept in any message; once set "
                        "up, only an operator can reset it (`sfox-bot mfa reset`).",
                    }
                ],
            },
            {
                "type": "input",
                "block_id": CODE_BLOCK,
                "label": {"type": "plain_text", "text": "First code from the app"},
                "element": {
                    "type": "plain_text_input",
                    "action_id": CODE_INPUT,
                    "min_length": 6,
                    "max_length": 9,
                },
            },
        ],
    }
    try:
        vis.secret_modal_client.views_open(trigger_id=trigger, view=view)  # its logger writes no body
    except Exception as exc:
        log.info("mfa enrolment modal not opened", extra={"error": type(exc).__name__})
        response = getattr(exc, "response", None)
        error = response.get("error") if response is not None and hasattr(response, "get") else None
        return str(error or type(exc).__name__)[:40]
    return None


def _done_view(text: str) -> dict[str, Any]:
    return {
        "type": "modal",
        "title": {"type": "plain_text", "text": "Second factor"},
        "close": {"type": "plain_text", "text": "Done"},
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": f":white_check_mark: {text}"}}],
    }
