"""The fake Slack's views: `views.open` (a modal, kept in `FakeSlack.opened_views` with the id
and hash Slack gives it), `views.update` (of an open modal, by `view_id` or `external_id`; a
`hash` that is not the view's latest is `hash_conflict`, an unknown view `not_found`, each kept
in the refusals like every refusal) and `views.publish` (each user's App Home, in
`FakeSlack.views`). Block Kit and trigger_id checks come first (bot/fakes/blockkit.py,
bot/fakes/slack_strict.py). Called with the fake's lock held."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from bot.fakes.slack_strict import Refusal

if TYPE_CHECKING:
    from bot.fakes.slack_api import FakeSlack

METHODS = ("views.open", "views.update", "views.publish")


def answer(fake: FakeSlack, method: str, args: dict[str, Any]) -> dict[str, Any]:
    view = _view(args)
    if method == "views.update":
        updated = _update(fake, view, args)
        if not updated["ok"]:
            fake.strict.refusals.append(Refusal(method, updated["error"]))
        return updated
    if method == "views.open":
        view_id = f"VMODAL{len(fake.opened_views) + 1}"
        fake.opened_views.append(
            {"trigger_id": args.get("trigger_id"), "view": view, "id": view_id, "hash": "1"}
        )
        return {"ok": True, "view": {**view, "id": view_id, "hash": "1"}}
    fake.views[str(args.get("user_id"))] = view
    return {"ok": True, "view": {"id": f"V{len(fake.opened_views) + len(fake.views)}", **view}}


def _view(args: dict[str, Any]) -> dict[str, Any]:
    view = args.get("view") or {}
    return json.loads(view) if isinstance(view, str) else view


def _update(fake: FakeSlack, view: dict[str, Any], args: dict[str, Any]) -> dict[str, Any]:
    view_id, external = args.get("view_id"), args.get("external_id")
    if not view_id and not external:
        return {"ok": False, "error": "invalid_arguments"}
    found = next(
        (
            v
            for v in fake.opened_views
            if (view_id and v["id"] == view_id) or (external and v["view"].get("external_id") == external)
        ),
        None,
    )
    if found is None:
        return {"ok": False, "error": "not_found"}
    if args.get("hash") and args.get("hash") != found["hash"]:
        return {"ok": False, "error": "hash_conflict"}
    found["view"], found["hash"] = view, str(int(found["hash"]) + 1)
    fake.updated_views.append({"view_id": found["id"], "view": view})
    return {"ok": True, "view": {**view, "id": found["id"], "hash": found["hash"]}}
