"""The fake Slack's files: `files.info` for a file a user "uploaded" (the test puts it in
`FakeSlack.user_files`; its download is served under `/files/`), and the bot's own uploads,
`files.getUploadURLExternal`, the upload itself (under `/upload/`) and
`files.completeUploadExternal` (kept in `FakeSlack.uploads`). Called with the fake's lock held."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bot.fakes.slack_api import FakeSlack


def answer(fake: FakeSlack, method: str, args: dict[str, Any]) -> dict[str, Any]:
    if method == "files.info":
        found = fake.user_files.get(str(args.get("file")))
        if found is None:
            return {"ok": False, "error": "file_not_found"}
        name, data = found
        url = f"{fake.url}/files/{args.get('file')}/{name}"
        return {
            "ok": True,
            "file": {
                "id": args.get("file"),
                "name": name,
                "size": len(data),
                "url_private": url,
                "url_private_download": url,
            },
        }
    if method == "files.getUploadURLExternal":
        file_id = f"F{len(fake.uploads) + 1:05d}"
        fake.uploads[file_id] = {"name": args.get("filename"), "content": None}
        return {"ok": True, "file_id": file_id, "upload_url": f"{fake.url}/upload/{file_id}"}
    if method == "files.completeUploadExternal":
        files = args.get("files")
        files = json.loads(files) if isinstance(files, str) else files or []
        for f in files:
            entry = fake.uploads.get(f.get("id"))
            if entry is None or entry["content"] is None:
                return {"ok": False, "error": "file_not_found"}
            entry.update(
                title=f.get("title"), channel=args.get("channel_id"), thread_ts=args.get("thread_ts")
            )
        return {"ok": True, "files": [{"id": f.get("id")} for f in files]}
    return {"ok": False, "error": "unknown_method"}
