"""A command's journal row (bot/runtime/commands.py): what it takes to carry the command out
again in any process, written before the ack and read back by whichever process takes it."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy.engine import RowMapping

from bot.batches.asking import BatchAsk
from bot.requests.base import Command

REQUEST, BATCH = "request", "batch"
# A request asked by a Workflow Builder step (bot/runtime/steps.py): carried out like a typed one;
# its answer, when no request comes of it, is the step's error (`step_answered`), not a post.
STEP = "step"


def row_of(ask: Command | BatchAsk, response_url: str | None, *, step: bool = False) -> dict[str, Any]:
    return {
        "kind": STEP if step else kind_of(ask),
        "requester": ask.requester,
        "channel_id": ask.channel_id,
        "command": _encode(ask),
        "response_url": response_url,
        "posts": 0,
    }


def kind_of(ask: Command | BatchAsk) -> str:
    return BATCH if isinstance(ask, BatchAsk) else REQUEST


def _encode(ask: Command | BatchAsk) -> str:
    if isinstance(ask, BatchAsk):
        return json.dumps(
            {
                "ids": list(ask.ids),
                "reason": ask.reason,
                "malformed": [list(m) for m in ask.malformed],
                "duplicates": list(ask.duplicates),
                **({"run_at": ask.run_at.isoformat()} if ask.run_at is not None else {}),
            }
        )
    command: dict[str, object] = {"sfox_user_id": ask.sfox_user_id, "reason": ask.reason}
    if ask.when_empty:
        command["when_empty"] = True
    if ask.run_at is not None:
        command["run_at"] = ask.run_at.isoformat()
    if ask.via is not None:
        command["via"] = ask.via
    return json.dumps(command)


def decode(row: RowMapping) -> tuple[Command | BatchAsk, str | None, int, datetime, bool]:
    data = json.loads(row["command"])
    run_at = datetime.fromisoformat(data["run_at"]) if data.get("run_at") else None
    ask: Command | BatchAsk
    if row["kind"] == BATCH:
        ask = BatchAsk(
            row["requester"],
            row["channel_id"],
            tuple(data["ids"]),
            data["reason"],
            tuple((str(t), str(why)) for t, why in data["malformed"]),
            tuple(data["duplicates"]),
            command_id=row["id"],
            run_at=run_at,
        )
    else:
        ask = Command(
            row["requester"],
            row["channel_id"],
            data["sfox_user_id"],
            data["reason"],
            row["id"],
            when_empty=bool(data.get("when_empty", False)),
            run_at=run_at,
            via=data.get("via"),
        )
    return ask, row["response_url"], row["id"], row["received_at"], row["kind"] == STEP
