"""A Workflow Builder step's completion is owed by the outcome that ends its request: queued in the
outbox in the outcome's own transaction (like the requester's DM), so it cannot be lost between
the outcome and Slack (bot/runtime/steps.py sends it)."""

from __future__ import annotations

import json

from sqlalchemy import Connection, select

from bot.store.schema import requests, steps

# The outcomes after which a request changes no more on its own: the step is completed with them.
STEP_OUTCOMES = frozenset({"succeeded", "failed", "denied", "expired", "blocked", "cancelled"})
STEP = "step"  # the outbox kind


def step_owed(conn: Connection, request_id: int, status: object) -> list[tuple[str, str | None]]:
    """The step completion owed when `request_id` reaches `status`, if a step opened it."""
    if status not in STEP_OUTCOMES:
        return []
    opened_by_step = conn.execute(
        select(steps.c.id)
        .join(requests, requests.c.command_id == steps.c.command_id)
        .where(requests.c.id == request_id)
    ).first()
    return [(STEP, json.dumps({"status": status}))] if opened_by_step else []
