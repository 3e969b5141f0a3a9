"""Which conversations the fake Slack knows, so that a message sent to the wrong place is refused
as Slack refuses it: `chat.postMessage` to a channel that is empty or does not exist is
`channel_not_found`; `chat.update` finds a message by its channel AND its ts, `channel_not_found`
for a conversation that does not exist, `message_not_found` for a ts not in that conversation.

The model, kept simple:

- a channel (`C…`) or private channel (`G…`) with Slack's shape exists, as if the bot were in
  every one of them; a FakeSlack made with `channels=` knows only those, and `remove` takes one
  away (deleted, or the bot removed from it);
- a direct message (`D…`) exists once it is opened: by `conversations.open`, by a
  `chat.postMessage` to a user id, or by an event naming it (`app_home_opened`, sent by the
  driver). The fake names a DM `D` + the user id; a bot that builds that id itself instead of
  opening the DM would be wrong in Slack, where a DM's id cannot be derived;
- a user id (`U…`, `W…`) given to `chat.postMessage` posts to the app's DM with that user, as
  Slack documents it: the answer names the DM (`D…`). `chat.update` wants the conversation the
  message is in, so a user id there is `channel_not_found`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# Slack's id shapes, the fake's own (not the bot's `bot.slack.ids`: a wrong pattern there must
# not make the fake agree with it).
CHANNEL = re.compile(r"[CG][A-Z0-9]{2,20}")
DM = re.compile(r"D[A-Z0-9]{2,21}")
USER = re.compile(r"[UW][A-Z0-9]{2,20}")


class Channels:
    def __init__(self, known: Iterable[str] | None = None) -> None:
        """`known`: the only channels that exist (None: every `C…`/`G…` of Slack's shape)."""
        self.known: set[str] | None = set(known) if known is not None else None
        self.removed: set[str] = set()
        self.opened: set[str] = set()  # DMs opened

    def add(self, channel: str) -> None:
        """A channel that exists from now on (a DM: opened)."""
        self.removed.discard(channel)
        if DM.fullmatch(channel):
            self.opened.add(channel)
        elif self.known is not None:
            self.known.add(channel)

    def remove(self, channel: str) -> None:
        """The channel is gone for the bot (deleted, or the bot removed from it)."""
        self.removed.add(channel)

    def open_dm(self, user: str) -> str:
        """The app's DM with `user`, opened (conversations.open)."""
        dm = "D" + user
        self.opened.add(dm)
        return dm

    def exists(self, channel: str) -> bool:
        if channel in self.removed:
            return False
        if DM.fullmatch(channel):
            return channel in self.opened
        if not CHANNEL.fullmatch(channel):
            return False
        return self.known is None or channel in self.known

    def post_target(self, channel: str) -> str | None:
        """Where a chat.postMessage to `channel` goes (a user id: the app's DM with them), or
        None when Slack answers `channel_not_found`."""
        if USER.fullmatch(channel):
            return self.open_dm(channel)
        return channel if self.exists(channel) else None
