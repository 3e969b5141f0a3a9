"""Completing a Workflow Builder step: `functions.completeSuccess` with the request's outcome, or
`functions.completeError` with why no request was opened, in plain words.

Which token: the app's bot token (SLACK_BOT_TOKEN), never the workflow token that comes with the
`function_executed` event. Slack's reference for both methods lists bot tokens (no scope needed),
and the workflow token expires about 15 minutes after the event while an approval may take hours
or days: a completion owed after an approval would be refused with it. So the workflow token is
neither used, stored nor logged (Bolt's `complete`/`fail` would use it: its
`attaching_function_token` middleware puts it on the listener's client, which is why the step's
listener does not complete through them).

Who asks: the person who ran the workflow, as Slack reports it in the step's `interactivity` input
(type `slack#/types/interactivity`: `{"interactor": {"id": "U…", "secret": "…"},
"interactivity_pointer": "…"}`), never a name the workflow's author typed (issue 32).
`interactor_id` reads it; the interactor's secret is neither used, stored nor logged.

`execution_not_in_running_state` means the execution is completed (by an earlier try that died
before it was recorded) or no longer running (cancelled, timed out in Slack): either way nothing
is owed any more, so it counts as delivered.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from typing import Any, Literal

from slack_sdk import WebClient

from bot.slack.calls import call_slack
from bot.slack.errors import NotifyError
from bot.slack.ids import SLACK_USER_ID
from bot.store.records import RequestRecord

log = logging.getLogger("sfox_bot.steps")

CALLBACK_ID = "deactivate_sfox_account"
ALREADY_DONE = "execution_not_in_running_state"
# Slack's limit is not documented for `error`; a sentence is what Workflow Builder shows.
ERROR_LIMIT = 1000
# The input Slack fills with who ran the workflow (app.yaml: type slack#/types/interactivity).
INTERACTIVITY_INPUT = "interactivity"
# The step's free-text requester before issue 32: no longer declared, never believed.
OLD_REQUESTER_INPUT = "requester"


@dataclass(frozen=True)
class Unproven:
    """Why who ran the workflow is not known: no interactivity input (a workflow built before the
    step had one), not Slack's shape, or an interactor id that is no Slack user's (`shown`)."""

    why: Literal["missing", "malformed", "not_a_user"]
    shown: str = ""


def interactor_id(inputs: dict[str, Any]) -> str | Unproven:
    """The Slack user id of the person who ran the workflow, from the step's interactivity input
    as Slack's reference shows it (an `interactor` with an `id`, and an `interactivity_pointer`)."""
    value = inputs.get(INTERACTIVITY_INPUT)
    if value is None:
        return Unproven("missing")
    interactor = value.get("interactor") if isinstance(value, dict) else None
    pointer = value.get("interactivity_pointer") if isinstance(value, dict) else None
    user = interactor.get("id") if isinstance(interactor, dict) else None
    if not (isinstance(pointer, str) and pointer and isinstance(user, str)):
        return Unproven("malformed")
    if not SLACK_USER_ID.match(user):
        return Unproven("not_a_user", user[:40])
    return user


def complete_success(client: WebClient, execution_id: str, outputs: dict[str, Any]) -> None:
    """Raises NotifyError (the outbox retries) unless Slack took it or it was done already."""
    _complete(client, "functions_completeSuccess", execution_id, outputs=outputs)


def complete_error(client: WebClient, execution_id: str, error: str) -> None:
    _complete(client, "functions_completeError", execution_id, error=plain(error)[:ERROR_LIMIT])


def _complete(client: WebClient, method: str, execution_id: str, **kwargs: Any) -> None:
    try:
        call_slack(client, method, function_execution_id=execution_id, **kwargs)
    except NotifyError as exc:
        if exc.code != ALREADY_DONE:
            raise
        log.info("step already completed", extra={"execution_id": execution_id})


def outputs(record: RequestRecord, status: str, card_url: str | None) -> dict[str, Any]:
    """The step's outputs (app.yaml `output_parameters`): `card_url` only when there is a card."""
    out: dict[str, Any] = {"status": status, "request_id": record.id}
    if card_url:
        out["card_url"] = card_url
    return out


def final_status(notice_text: str | None, record: RequestRecord) -> str:
    """The outcome the completion was owed for (as it was then), else the request's own."""
    try:
        return str(json.loads(notice_text or "{}").get("status") or record.status)
    except ValueError:
        return record.status


_LINK = re.compile(r"<([^<>|]+)\|([^<>]+)>")
_MENTION = re.compile(r"<[@#!]([^<>|]+)>")
_URL = re.compile(r"<(https?://[^<>]+)>")
_EMOJI = re.compile(r":[a-z0-9_+-]+:\s*")


def plain(text: str) -> str:
    """Slack's markup out of a refusal, for Workflow Builder's plain text: emoji codes, `*bold*`,
    `_italic_`, code marks and `<…>` links and mentions (the label, or the id), entities decoded."""
    text = _LINK.sub(r"\2", text)
    text = _MENTION.sub(r"\1", text)
    text = _URL.sub(r"\1", text)
    text = _EMOJI.sub("", text)
    text = re.sub(r"[`*]|(?<![\w])_|_(?![\w])", "", text)
    text = text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    return " ".join(text.split())
