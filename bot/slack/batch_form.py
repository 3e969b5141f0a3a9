"""The batch form (a modal with a box for ids, an optional CSV or text file and a required reason)
and the read of its file.

The file's first column counts, header row skipped; it is read with `files.info` and the file's
private URL (scope `files:read`), and the bot token goes only to Slack's own hosts. Answers go to
the requester as ephemeral messages in the channel the command was typed in (kept in the view's
private_metadata)."""

from __future__ import annotations

import json
import logging
from typing import Any

import httpx

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


def read_file(client: Any, file: dict[str, Any], api_url: str, token: str) -> str | tuple[str]:
    """The uploaded file's text, or (why not,)."""
    try:
        info = client.files_info(file=str(file.get("id", ""))).data.get("file") or {}
        url = info.get("url_private_download") or info.get("url_private")
        if not url or int(info.get("size") or 0) > MAX_FILE_BYTES:
            return ("The file is empty or larger than 1 MB.",)
        if not _slack_host(str(url), api_url):
            return ("Slack gave the file at an address that is not Slack's.",)
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
