"""What sFOX says of a user (name, email, status) is free text of any length; the columns that
keep it are not. SQLite stores a longer value anyway, PostgreSQL refuses the row, and with it the
request: a client whose name runs past 200 characters could not be deactivated on PostgreSQL. So
every insert of a request clips sFOX's text to its column here, marked by an ellipsis."""

from __future__ import annotations

from typing import Any

from bot.store.schema import requests

FROM_SFOX = ("target_name", "target_email", "target_status")
ELLIPSIS = "…"


def clip(name: str, value: str | None) -> str | None:
    """`value` of column `name` of `requests`, no longer than the column holds."""
    length = requests.c[name].type.length
    if value is None or length is None or len(value) <= length:
        return value
    return value[: length - len(ELLIPSIS)] + ELLIPSIS


def clipped(values: dict[str, Any]) -> dict[str, Any]:
    """`values` of a new request, sFOX's text in it clipped to its columns."""
    return {k: clip(k, v) if k in FROM_SFOX else v for k, v in values.items()}
