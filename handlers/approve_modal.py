"""Approve with a second factor (issue 18): with step-up on, every Approve button (the card's, the
App Home's, the batch card's) and the card's Retry (issue 32: a Retry sends the DELETE again, so it
is an approval too) opens a modal with one box, the 6-digit code from the approver's
authenticator. The code is checked before the ack (bot/mfa/stepup.py: a wrong, reused or locked
out code is that box's error and changes nothing); a good one is journalled with the click, marked
`step_up`, and the approval then runs the very path of a plain click (bot/runtime/clicks.py →
bot/requests/deciding.py or bot/batches/deciding.py), where the policy refuses any approval that
did not come with a code (`step_up_refusal`, bot/policy/step_up.py).

The modal is the only way in: when it cannot be opened (Slack slow or down, a spent trigger) the
click is refused visibly and nothing is counted. A click the normal path would refuse anyway (not
an approver, the requester, a request no longer pending, already approved) is handed to it
unchanged, so its refusal is said in one place; a person not enrolled is told how to enrol.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from bot.mfa.stepup import FACTOR, Verdict
from bot.policy import rules
from bot.policy.step_up import enrol_hint
from bot.runtime.clicks import HOME, Click
from bot.slack.batch_card import BATCH_APPROVE
from bot.slack.blocks import APPROVE, RETRY, code
from bot.slack.calls import slack_failure
from bot.slack.home import HOME_APPROVE
from bot.store.errors import Busy
from handlers.actions import card_of, click_listener, request_id_of
from handlers.commands import say_privately
from handlers.deny_modal import journal_submitted, submitted_from
from handlers.home import home_answer

if TYPE_CHECKING:
    from slack_bolt import Ack, App, BoltContext, Respond

    from bot.runtime.bootstrap import Runtime

CALLBACK_ID = "sfox_approve_code"
CODE_BLOCK = "code"
CODE_INPUT = "code"
log = logging.getLogger("sfox_bot.handlers")


def register(app: App, runtime: Runtime) -> None:
    card_plain = click_listener(runtime)
    home_plain = click_listener(runtime, as_action=APPROVE, answer_in=HOME)

    # Listened for either way: a code modal opened before a restart with step-up off is answered.
    @app.view(CALLBACK_ID)
    def on_submit(ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        _on_submit(runtime, ack, body, view)

    if runtime.workflow.policy.step_up == "none":
        for action_id, plain in (
            (APPROVE, card_plain),
            (HOME_APPROVE, home_plain),
            (BATCH_APPROVE, card_plain),
            (RETRY, card_plain),
        ):
            app.action(action_id)(plain)
        return
    app.action(APPROVE)(_approve_listener(runtime, card_plain, APPROVE, from_home=False))
    app.action(HOME_APPROVE)(_approve_listener(runtime, home_plain, APPROVE, from_home=True))
    app.action(BATCH_APPROVE)(_approve_listener(runtime, card_plain, BATCH_APPROVE, from_home=False))
    app.action(RETRY)(_approve_listener(runtime, card_plain, RETRY, from_home=False))


def _approve_listener(
    runtime: Runtime, plain: Callable[..., None], action_id: str, *, from_home: bool
) -> Any:
    def on_approve(
        ack: Ack, body: dict[str, Any], action: dict[str, Any], respond: Respond, context: BoltContext
    ) -> None:
        actor = str((body.get("user") or {}).get("id", ""))
        item_id = request_id_of(action.get("value"))
        if item_id is None or not actor or not _counts_with_a_code(runtime, action_id, item_id, actor):
            # The normal path answers it (a bad button, a refusal, already approved): the policy
            # refuses to count it there too, since it has no code.
            plain(ack=ack, body=body, action=action, respond=respond, context=context)
            return
        assert runtime.mfa is not None
        not_ready = runtime.mfa.ready(actor)
        button = "Retry" if action_id == RETRY else "Approve"
        if not_ready is None:
            error = _open_modal(runtime, body, context, action_id, item_id, from_home)
            if error is None:
                ack()
                return
            text = (
                f":warning: I could not open the box for your authenticator code (Slack said `{error}`), "
                f"so your {button} was *not* counted. Click *{button}* again."
            )
        elif not_ready.verdict is Verdict.NOT_ENROLLED:
            text = enrol_hint(rules.Step.RETRY if action_id == RETRY else rules.Step.APPROVE)
        else:
            text = f":lock: {not_ready.text}"
        ack()
        answer = home_answer(runtime)(body, respond) if from_home else (lambda t: say_privately(respond, t))
        runtime.step(answer, text)  # after the ack: Slack waits for nothing more

    return on_approve


def _counts_with_a_code(runtime: Runtime, action_id: str, item_id: int, actor: str) -> bool:
    """Whether an approval by `actor` would count, given a code: an approver, not the requester,
    not approved yet, and the request (or batch) still pending; for a Retry, what the retry path
    asks before the code. Anything else goes to the normal path, which says why (the rules are
    asked there, not here)."""
    if action_id == RETRY:
        return runtime.workflow.retry_counts_with_a_code(item_id, actor)
    policy = runtime.workflow.policy
    if rules.approver_refusal(policy.approvers, actor, rules.Step.APPROVE) is not None:
        return False
    if action_id == BATCH_APPROVE:
        item: Any = runtime.batches.records.get(item_id) if runtime.batches is not None else None
    else:
        item = runtime.store.get(item_id)
    now = runtime.workflow.now()
    if item is None or item.status != "pending" or item.expires_at <= now or not rules.awaits(item, actor):
        return False
    if action_id == APPROVE and item.batch_id is not None:
        return False  # a batch's user: its batch's card decides it, and the normal path says so
    # In no stage this request was asked under: no code would make the approval count.
    return rules.stages_open_to(policy, item, actor)[1] is None


def _open_modal(
    runtime: Runtime,
    body: dict[str, Any],
    context: BoltContext,
    action_id: str,
    item_id: int,
    from_home: bool,
) -> str | None:
    """One quick try at opening the code modal; None when it opened, else Slack's error."""
    vis = runtime.visibility
    trigger = body.get("trigger_id")
    if vis is None or not trigger:
        return "no_trigger"
    card = card_of(body, context)
    meta = {
        "a": action_id,
        "r": item_id,
        "c": card.channel_id if card else None,
        "t": card.ts if card else None,
        "o": bool(card and card.ours),
        "u": body.get("response_url"),
        "h": from_home,
    }
    what = f"batch #{item_id}" if action_id == BATCH_APPROVE else f"request #{item_id}"
    if action_id in (APPROVE, RETRY):
        record = runtime.store.get(item_id)
        if record is not None:
            what = f"the deactivation of {code(record.sfox_user_id)} (request #{item_id})"
    button, question = "Approve", f"Approve {what}?"
    if action_id == RETRY:
        button, question = "Retry", f"Retry {what}? sFOX is asked once more; this cannot be undone."
    view = {
        "type": "modal",
        "callback_id": CALLBACK_ID,
        "private_metadata": json.dumps(meta),
        "title": {"type": "plain_text", "text": f"{button} with a code"},
        "submit": {"type": "plain_text", "text": button},
        "close": {"type": "plain_text", "text": "Back"},
        "blocks": [
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": f"{question} Type the 6-digit code your authenticator app shows now.",
                },
            },
            {
                "type": "input",
                "block_id": CODE_BLOCK,
                "label": {"type": "plain_text", "text": "Authenticator code"},
                "element": {
                    "type": "plain_text_input",
                    "action_id": CODE_INPUT,
                    "min_length": 6,
                    "max_length": 9,
                    "placeholder": {"type": "plain_text", "text": "123456"},
                },
            },
        ],
    }
    try:
        vis.modal_client.views_open(trigger_id=trigger, view=view)
    except Exception as exc:
        log.info("approve modal not opened", extra={"item_id": item_id, "error": type(exc).__name__})
        return _slack_error(exc)
    return None


def _slack_error(exc: Exception) -> str:
    """Slack's error code for a failed call (`http_NNN` when it gave none), else the exception's type."""
    failure = slack_failure(exc)
    return (failure.label if failure else type(exc).__name__)[:40]


def _on_submit(runtime: Runtime, ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
    """The code, checked before the ack; a good one journals the Approve (marked stepped up)."""
    if runtime.mfa is None:
        ack(
            response_action="errors",
            errors={CODE_BLOCK: "No code is asked for here any more: close this and click the button again."},
        )
        return
    actor = str((body.get("user") or {}).get("id", ""))
    try:
        meta = json.loads(view.get("private_metadata") or "{}")
        action_id, item_id = str(meta["a"]), int(meta["r"])
        if action_id not in (APPROVE, BATCH_APPROVE, RETRY):
            raise ValueError(action_id)
    except (ValueError, KeyError, TypeError):
        ack(response_action="errors", errors={CODE_BLOCK: "This form lost its request; nothing was changed."})
        return
    values = ((view.get("state") or {}).get("values") or {}).get(CODE_BLOCK) or {}
    typed = str((values.get(CODE_INPUT) or {}).get("value") or "")
    try:
        checked = runtime.mfa.check(actor, typed)
    except Busy:
        ack(
            response_action="errors",
            errors={CODE_BLOCK: "The bot's database is busy: nothing was counted. Try the next code."},
        )
        return
    if not checked.ok:
        if checked.verdict is Verdict.LOCKED:
            log.warning("approvals locked after wrong codes", extra={"actor": actor})
        ack(response_action="errors", errors={CODE_BLOCK: checked.text})
        return
    card, response_url = submitted_from(meta)
    click = Click(action_id, item_id, actor, card, response_url, step_up=FACTOR)
    journal_submitted(
        runtime,
        ack,
        click,
        meta,
        {
            CODE_BLOCK: "The bot's database is busy: your approval was not recorded. "
            "Wait for the next code and try again."
        },
    )
