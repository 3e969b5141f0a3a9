"""Block Kit as Slack checks it, for the fake Slack: what the real Web API would refuse.

Each block is read with slack_sdk's own models (`Block.parse`, then `to_dict`, which runs every
model's validators, nested objects included), and a block must come back from the model exactly as
it was sent: a property the model drops or rewrites (a misspelt key, a string where a text object
belongs) is one Slack does not know either. Then the limits the models leave out: 50 blocks in a
message, a section field's text at most 2,000 characters, no input block in a message, block ids
unique in a message or view, action ids unique in a block, a message's `text` at most 40,000
characters. Views are read with slack_sdk's `View`, which holds the view limits (100 blocks, a
modal's title, submit and close at most 24 characters, `private_metadata` at most 3,000); a modal
needs a title, `views.open` takes modals only and `views.publish` the Home tab only.

The answers are Slack's: a message method says `invalid_blocks` (or `invalid_blocks_format`,
`msg_too_long`, `no_text`), a view method `invalid_arguments`; both with
`response_metadata.messages` naming what was wrong, as Slack's do.
"""

from __future__ import annotations

import json
from typing import Any

from slack_sdk.errors import SlackObjectFormationError
from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View

MESSAGE_BLOCKS = 50
FIELD_TEXT = 2000
MESSAGE_TEXT = 40_000
MESSAGE_METHODS = ("chat.postMessage", "chat.update", "chat.postEphemeral")
VIEW_METHODS = {"views.open": "modal", "views.push": "modal", "views.update": None, "views.publish": "home"}


def refusal(method: str, args: dict[str, Any]) -> dict[str, Any] | None:
    """Slack's answer to `method` called with `args` when it would refuse their Block Kit; None
    when it would take them (or when the method carries no Block Kit)."""
    if method in MESSAGE_METHODS:
        return message_refusal(args)
    if method in VIEW_METHODS:
        return view_refusal(args.get("view"), VIEW_METHODS[method])
    return None


def message_refusal(args: dict[str, Any]) -> dict[str, Any] | None:
    """A message's `text` and `blocks` (also what a response_url post carries)."""
    blocks = _decoded(args.get("blocks"))
    if blocks is not None and not isinstance(blocks, list):
        return _refused("invalid_blocks_format", "blocks must be a JSON array [json-pointer:/blocks]")
    text = args.get("text")
    if text is not None and not isinstance(text, str):
        return _refused("invalid_arguments", "text must be a string [json-pointer:/text]")
    if not text and not blocks and not args.get("attachments"):
        return _refused("no_text", "no text and no blocks given")
    if text and len(text) > MESSAGE_TEXT:
        return _refused("msg_too_long", f"text is longer than {MESSAGE_TEXT} characters")
    if blocks:
        problem = blocks_problem(blocks, "/blocks", MESSAGE_BLOCKS, in_message=True)
        if problem:
            return _refused("invalid_blocks", problem)
    return None


def view_refusal(raw: Any, kind: str | None) -> dict[str, Any] | None:
    """A view for views.open/push (`kind` "modal"), views.publish ("home") or views.update."""
    view = _decoded(raw)
    if not isinstance(view, dict):
        return _refused("invalid_arguments", "view must be a JSON object [json-pointer:/view]")
    if kind is not None and view.get("type") != kind:
        return _refused("invalid_arguments", f"view type must be {kind} [json-pointer:/view/type]")
    if view.get("type") == "modal" and not view.get("title"):
        return _refused("invalid_arguments", "a modal needs a title [json-pointer:/view/title]")
    unknown = set(view) - View.attributes
    if unknown:
        return _refused(
            "invalid_arguments", f"unknown view properties {sorted(unknown)} [json-pointer:/view]"
        )
    blocks = view.get("blocks")
    if not isinstance(blocks, list):
        return _refused("invalid_arguments", "view.blocks must be an array [json-pointer:/view/blocks]")
    plain = _not_plain_text({k: v for k, v in view.items() if k != "blocks"}, "/view")
    if plain:
        return _refused("invalid_arguments", f"must be a plain_text object [json-pointer:{plain}]")
    problem = blocks_problem(blocks, "/view/blocks", None, in_message=False)
    if problem:
        return _refused("invalid_arguments", problem)
    try:
        View(**{k: v for k, v in view.items() if k != "blocks"}, blocks=blocks).validate_json()
    except (SlackObjectFormationError, TypeError, AttributeError, KeyError) as exc:
        return _refused("invalid_arguments", f"{exc} [json-pointer:/view]")
    return None


def blocks_problem(blocks: list[Any], where: str, limit: int | None, *, in_message: bool) -> str | None:
    """What is wrong with these blocks, said as Slack says it; None when nothing is."""
    if limit is not None and len(blocks) > limit:
        return f"no more than {limit} items allowed [json-pointer:{where}]"
    block_ids: set[str] = set()
    for i, block in enumerate(blocks):
        pointer = f"{where}/{i}"
        if not isinstance(block, dict):
            return f"a block must be an object [json-pointer:{pointer}]"
        problem = _block_problem(block, pointer, in_message)
        if problem:
            return problem
        block_id = block.get("block_id")
        if block_id is not None:
            if block_id in block_ids:
                return f"duplicate block_id {block_id!r} [json-pointer:{pointer}/block_id]"
            block_ids.add(block_id)
    return None


def _block_problem(block: dict[str, Any], pointer: str, in_message: bool) -> str | None:
    if in_message and block.get("type") == "input":
        return f"input blocks are not allowed in messages [json-pointer:{pointer}]"
    try:
        parsed = Block.parse(block)
        if parsed is None:
            return f"unknown block type {block.get('type')!r} [json-pointer:{pointer}/type]"
        parsed.validate_json()
        rendered = parsed.to_dict()  # runs the validators of every nested object
    except (SlackObjectFormationError, TypeError, AttributeError, KeyError, ValueError) as exc:
        return f"{exc} [json-pointer:{pointer}]"
    mismatch = _first_difference(block, rendered, pointer)
    if mismatch:
        return f"unsupported, empty or malformed property [json-pointer:{mismatch}]"
    plain = _not_plain_text(block, pointer)
    if plain:
        return f"must be a plain_text object [json-pointer:{plain}]"
    for j, field in enumerate(block.get("fields") or []):
        if len(str(field.get("text", ""))) > FIELD_TEXT:
            return f"must be less than {FIELD_TEXT + 1} characters [json-pointer:{pointer}/fields/{j}/text]"
    action_ids = [e.get("action_id") for e in block.get("elements") or [] if e.get("action_id")]
    if len(action_ids) != len(set(action_ids)):
        return f"duplicate action_id in a block [json-pointer:{pointer}/elements]"
    return None


# Where Slack takes plain_text only (the models accept mrkdwn there too): by the owning
# object's type (None: a confirm dialog, which has no type of its own).
PLAIN_ONLY = {
    "modal": ("title", "submit", "close"),
    "header": ("text",),
    "button": ("text",),
    "input": ("label", "hint"),
    "plain_text_input": ("placeholder",),
    None: ("title", "confirm", "deny"),
}


def _not_plain_text(node: Any, pointer: str) -> str | None:
    """The first text object that must be plain_text and is not."""
    if isinstance(node, list):
        for i, item in enumerate(node):
            found = _not_plain_text(item, f"{pointer}/{i}")
            if found:
                return found
        return None
    if not isinstance(node, dict):
        return None
    for key in PLAIN_ONLY.get(node.get("type"), ()):
        value = node.get(key)
        if isinstance(value, dict) and value.get("type") != "plain_text":
            return f"{pointer}/{key}"
    for key, value in node.items():
        found = _not_plain_text(value, f"{pointer}/{key}")
        if found:
            return found
    return None


def _first_difference(sent: Any, model: Any, pointer: str) -> str | None:
    """Where what was sent differs from what slack_sdk's model made of it (None if nowhere)."""
    if isinstance(sent, dict):
        if not isinstance(model, dict):
            return pointer
        for key, value in sent.items():
            if key not in model:
                return f"{pointer}/{key}"
            found = _first_difference(value, model[key], f"{pointer}/{key}")
            if found:
                return found
        return None
    if isinstance(sent, list):
        if not isinstance(model, list) or len(model) != len(sent):
            return pointer
        for i, (a, b) in enumerate(zip(sent, model, strict=True)):
            found = _first_difference(a, b, f"{pointer}/{i}")
            if found:
                return found
        return None
    return None if sent == model else pointer


def _decoded(value: Any) -> Any:
    """Form-encoded calls carry JSON as a string; JSON calls carry it as is."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _refused(error: str, message: str) -> dict[str, Any]:
    return {"ok": False, "error": error, "response_metadata": {"messages": [f"[ERROR] {message}"]}}
