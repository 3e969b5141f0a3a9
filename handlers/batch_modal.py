"""The batch form: `views.open` with the command's trigger_id, and its `view_submission`.

The form has a multi-line box for ids (newlines, commas or spaces), an optional CSV or text file
(first column, header row skipped; read with `files.info` and the file's private URL, scope
`files:read`) and a required reason. Answers go to the requester as ephemeral messages in the
channel the command was typed in (kept in the view's private_metadata)."""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

import httpx

from bot.batch import ids_from_csv, split_ids
from bot.config import SLACK_CHANNEL_ID

if TYPE_CHECKING:
    from slack_bolt import Ack, App

    from bot.runtime import Runtime

log = logging.getLogger("sfox_bot.handlers")
CALLBACK_ID = "sfox_batch_form"
MAX_FILE_BYTES = 1_000_000


def form(channel_id: str) -> dict[str, Any]:
    return {
        "type": "modal",
        "callback_id": CALLBACK_ID,
        "private_metadata": json.dumps({"channel": channel_id}),
        "title": {"type": "plain_text", "text": "Batch deactivation"},
        "submit": {"type": "plain_text", "text": "Check users"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            {
                "type": "input",
                "block_id": "ids",
                "optional": True,
                "label": {"type": "plain_text", "text": "sFOX user ids"},
                "hint": {"type": "plain_text", "text": "One per line, or separated by commas or spaces."},
                "element": {"type": "plain_text_input", "action_id": "value", "multiline": True},
            },
            {
                "type": "input",
                "block_id": "file",
                "optional": True,
                "label": {"type": "plain_text", "text": "Or a CSV / text file (first column)"},
                "element": {
                    "type": "file_input",
                    "action_id": "value",
                    "filetypes": ["csv", "txt"],
                    "max_files": 1,
                },
            },
            {
                "type": "input",
                "block_id": "reason",
                "label": {"type": "plain_text", "text": "Reason"},
                "element": {"type": "plain_text_input", "action_id": "value", "max_length": 500},
            },
        ],
    }


def open_modal(runtime: Runtime, client: Any, trigger_id: str, channel_id: str, respond: Any) -> None:
    try:
        client.views_open(trigger_id=trigger_id, view=form(channel_id))
    except Exception as exc:
        log.warning("batch form not opened", extra={"error": type(exc).__name__})
        respond(
            text=":warning: I could not open the batch form; use `/sfox-deactivate batch id1,id2,… [reason]`.",
            response_type="ephemeral",
        )


def register(app: App, runtime: Runtime) -> None:
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
            content = _read_file(runtime, client, files[0])
            if isinstance(content, tuple):
                ack(response_action="errors", errors={"file": content[0]})
                return
            tokens += ids_from_csv(content)
        if not reason.strip():
            ack(response_action="errors", errors={"reason": "A reason is required."})
            return
        checked = runtime.batches.check(user, channel, tokens, reason)
        if isinstance(checked, str):
            ack(response_action="errors", errors={"ids": _plain(checked)[:150]})
            return
        ack()

        def tell(text: str, **_kwargs: Any) -> None:
            client.chat_postEphemeral(channel=channel, user=user, text=text)

        from handlers.batch import start

        tell(f"Checking {len(checked.ids)} users on sFOX…")
        runtime.submit(start, runtime, checked, tell)


def _read_file(runtime: Runtime, client: Any, file: dict[str, Any]) -> str | tuple[str]:
    """The uploaded file's text, or (why not,)."""
    try:
        info = client.files_info(file=str(file.get("id", ""))).data.get("file") or {}
        url = info.get("url_private_download") or info.get("url_private")
        if not url or int(info.get("size") or 0) > MAX_FILE_BYTES:
            return ("The file is empty or larger than 1 MB.",)
        if not _slack_host(str(url), runtime.settings.slack_api_url):
            return ("Slack gave the file at an address that is not Slack's.",)
        token = runtime.settings.slack_bot_token or ""
        with httpx.Client(timeout=10, follow_redirects=False) as http:
            response = http.get(url, headers={"Authorization": f"Bearer {token}"})
        if response.status_code != 200 or len(response.content) > MAX_FILE_BYTES:
            return (f"Slack did not give the file (HTTP {response.status_code}).",)
        return response.content.decode("utf-8-sig", "replace")
    except Exception as exc:
        log.warning("batch file not read", extra={"error": type(exc).__name__})
        return ("The file could not be read from Slack; paste the ids instead.",)


def _slack_host(url: str, api_url: str) -> bool:
    """The bot token goes only to Slack: its file host, or the host the API is configured at."""
    host = httpx.URL(url).host
    return host == httpx.URL(api_url).host or host == "files.slack.com"


def _plain(text: str) -> str:
    return text.replace("`", "").replace(":warning: ", "").replace(":no_entry: ", "")
