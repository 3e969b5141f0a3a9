"""Slack, as plain text: what people typed and clicked, what the bot answered privately, the cards
it posted and updated, the thread replies and the sFOX calls, one line (or box) each.

The demo and the console print this instead of a Slack client. It reads only what went over the
wire (Block Kit JSON, mrkdwn, response_url posts), so it shows exactly what Slack would have
shown. All text passes through `plain`, which also drops terminal control characters: card fields
can carry text that came from sFOX.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

INDENT = "    "
BOX_WIDTH = 76
LINE_WIDTH = 110

EMOJI = {
    "hourglass_flowing_sand": "⏳",
    "no_entry_sign": "🚫",
    "no_entry": "⛔",
    "alarm_clock": "⏰",
    "arrows_counterclockwise": "🔄",
    "grey_question": "❔",
    "white_check_mark": "✅",
    "x": "❌",
    "warning": "⚠️",
    "mag": "🔍",
    "information_source": "ℹ️",
    "moneybag": "💰",
    "bell": "🔔",
    # batches (bot/slack/batch_card.py)
    "checkered_flag": "🏁",
    "double_vertical_bar": "⏸",
    "arrow_forward": "▶",
    "heavy_multiplication_x": "✖",
}

_ANGLE = re.compile(r"<([^<>]*)>")
_EMOJI = re.compile(r":([a-z0-9_+-]+):")
_BOLD = re.compile(r"(?<![\w*])\*([^*\n]+)\*(?![\w*])")
_ITALIC = re.compile(r"(?<![\w_])_([^_\n]+)_(?![\w_])")
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f]")
_REQUEST_NO = re.compile(r"#(\d+)")


# -- what was seen -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Typed:
    """Someone typed a slash command."""

    user: str
    text: str


@dataclass(frozen=True)
class Clicked:
    """Someone clicked a card button; `offered` is False when the card did not show that button."""

    user: str
    label: str
    request_id: int
    offered: bool = True


@dataclass(frozen=True)
class Ephemeral:
    """A reply only `user` sees (the slash command's ack, or a post to its response_url)."""

    user: str
    text: str


@dataclass(frozen=True)
class Posted:
    channel: str
    ts: str
    text: str
    blocks: list[dict[str, Any]] = field(default_factory=list)
    thread_ts: str | None = None


@dataclass(frozen=True)
class Updated:
    channel: str
    ts: str
    text: str
    blocks: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class SlackRefused:
    """A Web API call the (fake) Slack refused."""

    method: str
    error: str


@dataclass(frozen=True)
class SfoxCall:
    method: str
    path: str
    status: int


@dataclass(frozen=True)
class BotAnswered:
    """The bot's HTTP answer to Slack was not a plain 200 (e.g. a bad signature)."""

    status: int
    body: str


@dataclass(frozen=True)
class DialogSubmitted:
    """Someone submitted a dialog the bot opened (the Deny dialog, with its optional reason)."""

    user: str
    title: str
    reason: str


Entry = (
    Typed | Clicked | Ephemeral | Posted | Updated | SlackRefused | SfoxCall | BotAnswered | DialogSubmitted
)


# -- mrkdwn and Block Kit ------------------------------------------------------------------------


def plain(text: str, names: Mapping[str, str] | None = None) -> str:
    """Slack mrkdwn as terminal text: mentions by name, dates by their fallback, links with their
    address, emoji as characters, bold/italic markers dropped, entities decoded."""
    names = names or {}

    def angle(match: re.Match[str]) -> str:
        inner = match.group(1)
        target, _, label = inner.partition("|")
        if target.startswith("@"):
            return "@" + names.get(target[1:], target[1:])
        if target.startswith("#"):
            return "#" + (label or names.get(target[1:], target[1:]))
        if target.startswith("!date^"):
            return label or target
        if target.startswith("!"):
            return "@" + target[1:].split("^")[0]
        return f"{label} ({target})" if label and label != target else target

    text = _ANGLE.sub(angle, text)
    text = _EMOJI.sub(lambda m: EMOJI.get(m.group(1), m.group(0)), text)
    text = _BOLD.sub(r"\1", text)
    text = _ITALIC.sub(r"\1", text)
    text = text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    return _CONTROL.sub(" ", text)


def request_number(blocks: list[dict[str, Any]]) -> int | None:
    """The request id a card is about, read from its header ("… #3")."""
    for block in blocks:
        if block.get("type") == "header":
            found = _REQUEST_NO.search(_text_of(block.get("text")))
            if found:
                return int(found.group(1))
    return None


def buttons(blocks: list[dict[str, Any]]) -> list[str]:
    return [
        _text_of(e.get("text"))
        for b in blocks
        if b.get("type") == "actions"
        for e in b.get("elements", [])
        if e.get("type") == "button"
    ]


def buttons_line(blocks: list[dict[str, Any]]) -> str:
    return "  ".join(f"[ {label} ]" for label in buttons(blocks))


def card_lines(blocks: list[dict[str, Any]], names: Mapping[str, str] | None = None) -> list[str]:
    """A whole card in a box: header, fields as `label  value`, sections, context, buttons."""
    body: list[str] = []
    title = "message"
    for block in blocks:
        kind = block.get("type")
        if kind == "header":
            title = plain(_text_of(block.get("text")), names)
        elif kind == "section":
            if block.get("text"):
                _gap(body)
                body.extend(_wrap(plain(_text_of(block["text"]), names), BOX_WIDTH - 2))
            pairs = [_field(f, names) for f in block.get("fields", [])]
            width = max((len(label) for label, _ in pairs), default=0)
            for label, value in pairs:
                pad = " " * (width + 2)
                lines = _wrap(value, BOX_WIDTH - 2 - len(pad)) or [""]
                body.append(f"{label:<{width}}  {lines[0]}")
                body.extend(pad + more for more in lines[1:])
        elif kind == "context":
            for element in block.get("elements", []):
                body.extend(_wrap(plain(_text_of(element), names), BOX_WIDTH - 2))
        elif kind == "actions":
            _gap(body)
            body.append(buttons_line([block]))
            for note in _confirm_notes(block, names):
                body.extend(_wrap(note, BOX_WIDTH - 2))
    top = f"┌─ {title} " + "─" * max(3, BOX_WIDTH - len(title) - 4)
    return [top, *("│ " + line if line else "│" for line in body), "└" + "─" * (BOX_WIDTH - 1)]


def status_lines(blocks: list[dict[str, Any]], names: Mapping[str, str] | None = None) -> list[str]:
    """What changes when a card is updated: its status section, and which buttons are left."""
    lines: list[str] = []
    for block in blocks:
        if block.get("type") == "section" and block.get("text"):
            lines.extend(plain(_text_of(block["text"]), names).splitlines())
    shown = buttons_line(blocks)
    lines.append(f"buttons now: {shown}" if shown else "no buttons left")
    return lines


# -- a conversation ------------------------------------------------------------------------------


class Transcript:
    """Turns entries into text lines, remembering which card each Slack message ts belongs to."""

    def __init__(
        self, names: Mapping[str, str] | None = None, channels: Mapping[str, str] | None = None
    ) -> None:
        self.names = dict(names or {})
        self.channels = dict(channels or {})
        self.cards: dict[str, int] = {}
        self._shown: dict[str, list[str]] = {}

    def remember_card(self, ts: str | None, request_id: int) -> None:
        if ts:
            self.cards[ts] = request_id

    def render(self, entries: Iterable[Entry]) -> list[str]:
        out: list[str] = []
        for entry in entries:
            out.extend(self.lines(entry))
        return out

    def lines(self, entry: Entry) -> list[str]:
        match entry:
            case Typed(user, text):
                return [f"{self._who(user)} › {plain(text)}"]
            case Clicked(user, label, request_id, offered):
                note = (
                    ""
                    if offered
                    else "  (the card does not show this button now; a stale Slack window can still send it)"
                )
                return [f"{self._who(user)} › clicks [ {label} ] on card #{request_id}{note}"]
            case Ephemeral(user, text):
                return self._block(f"(only visible to {self._who(user)}) ", plain(text, self.names))
            case Posted(channel, ts, text, blocks, None):
                number = request_number(blocks)
                if number is not None:
                    self.remember_card(ts, number)
                    self._shown[ts] = status_lines(blocks, self.names)
                    head = f"{INDENT}{self._channel(channel)}  the bot posts card #{number}:"
                    return [head, *(INDENT + line for line in card_lines(blocks, self.names))]
                return self._block(f"{self._channel(channel)}  the bot says: ", plain(text, self.names))
            case Posted(channel, ts, text, _blocks, thread_ts):
                where = self._card_name(thread_ts)
                return self._block(
                    f"{self._channel(channel)}  ↳ in the thread of {where}: ", plain(text, self.names)
                )
            case Updated(channel, ts, text, blocks):
                number = request_number(blocks)
                if number is not None:
                    self.remember_card(ts, number)
                name = f"card #{number}" if number is not None else "a card"
                now = status_lines(blocks, self.names)
                if self._shown.get(ts) == now:
                    return [f"{INDENT}{self._channel(channel)}  {name} updated again (no visible change)"]
                self._shown[ts] = now
                return [
                    f"{INDENT}{self._channel(channel)}  {name} updated:",
                    *(INDENT + "  " + line for line in now),
                ]
            case SlackRefused(method, error):
                return [f"{INDENT}Slack API refused {method}: {plain(error)}"]
            case SfoxCall(method, path, status):
                return [f"{INDENT}sFOX API  {method} {plain(path)} → {status}"]
            case DialogSubmitted(user, title, reason):
                typed = f"reason “{plain(reason)}”" if reason else "no reason"
                return [f"{self._who(user)} › submits the {title} dialog ({typed})"]
            case BotAnswered(status, body):
                return self._block(f"the bot answered HTTP {status}: ", plain(body))
        return []

    def _who(self, user_id: str) -> str:
        return self.names.get(user_id, user_id)

    def _channel(self, channel_id: str) -> str:
        if channel_id.startswith("D") and channel_id[1:] in self.names:  # a direct message
            return f"(DM to {self.names[channel_id[1:]]})"
        return "#" + self.channels.get(channel_id, channel_id)

    def _card_name(self, ts: str | None) -> str:
        number = self.cards.get(ts or "")
        return f"card #{number}" if number is not None else "a card from an earlier session"

    @staticmethod
    def _block(prefix: str, text: str) -> list[str]:
        pad = INDENT + " " * len(prefix)
        lines = _wrap(text, max(40, LINE_WIDTH - len(pad))) or [""]
        return [INDENT + prefix + lines[0], *(pad + line for line in lines[1:])]


def _text_of(obj: Any) -> str:
    if isinstance(obj, dict):
        return str(obj.get("text", ""))
    return str(obj or "")


def _field(obj: dict[str, Any], names: Mapping[str, str] | None) -> tuple[str, str]:
    text = _text_of(obj)
    label, _, value = text.partition("\n")
    return plain(label, names), plain(value, names)


def _confirm_notes(block: dict[str, Any], names: Mapping[str, str] | None) -> list[str]:
    notes = []
    for element in block.get("elements", []):
        confirm = element.get("confirm")
        if confirm:
            notes.append(
                f"({_text_of(element.get('text'))} first asks “{plain(_text_of(confirm.get('title')), names)}”: "
                f"{plain(_text_of(confirm.get('text')), names)})"
            )
    return notes


def _wrap(text: str, width: int) -> list[str]:
    """Each line of `text` folded to `width` (long words are left whole rather than split)."""
    out: list[str] = []
    for line in text.splitlines():
        out.extend(textwrap.wrap(line, width, break_long_words=False, break_on_hyphens=False) or [""])
    return out


def _gap(lines: list[str]) -> None:
    if lines and lines[-1]:
        lines.append("")
