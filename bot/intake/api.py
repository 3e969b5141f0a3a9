"""The intake API's rules (issue 20): a back-office system opens a request the way the slash
command does, through the same command journal (bot/runtime/commands.py), so a request answered
202 is carried out even if the process dies right after: any replica's sweep resumes it.

One Idempotency-Key, one command: the key is written in the transaction that journals the
command (unique index), so of any number of requests with one key, across replicas, one opens
the request and the others answer what it answered. The same key with another body is a
conflict (409). A request that opened nothing (unknown user, one already open, sFOX unreachable)
is answered 422 with the reason, and that answer is the key's too: ask again with a new key."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import IntegrityError

from bot.intake.body import BadBody, key_problem, parse_body
from bot.policy.rules import Policy
from bot.requests.base import Command
from bot.requests.history import history_row
from bot.store.db import Store
from bot.store.intake import IntakeStore
from bot.store.records import RequestRecord
from bot.webhooks.destinations import AllowedHosts

if TYPE_CHECKING:
    from bot.runtime.commands import Commands

log = logging.getLogger("sfox_bot.intake")

# How long a request whose key another request is carrying out waits for that one's answer.
REPEAT_WAIT_SECONDS = 20.0
REPEAT_POLL_SECONDS = 0.05
# Slack's markup in the command's answers, left out of a system's JSON.
NOT_OPENED = "no request was opened (the bot restarted meanwhile); send it again with a new Idempotency-Key"
_EMOJI = re.compile(r"^:[a-z_]+: ")


@dataclass(frozen=True)
class Answer:
    """An HTTP status and its JSON body."""

    status: int
    body: dict[str, Any]


class IntakeApi:
    def __init__(
        self,
        store: Store,
        commands: Commands,
        policy: Policy,
        channel_id: str,
        permalink: Callable[[RequestRecord], str | None],
        clock: Callable[[], datetime],
        callback_hosts: AllowedHosts = frozenset(),
    ) -> None:
        self.store = store
        self.callback_hosts = callback_hosts
        self.keys = IntakeStore(store)
        self.commands = commands
        self.policy = policy
        self.channel_id = channel_id
        self.permalink = permalink
        self.now = clock
        commands.tell_system = self._settle_refusal

    def submit(self, key: str | None, raw: bytes) -> Answer:
        """`POST /api/v1/requests` (its signature checked already)."""
        problem = key_problem(key)
        if problem:
            return Answer(400, {"error": problem})
        assert key is not None
        ask = parse_body(raw, self.policy, self.callback_hosts)
        if isinstance(ask, BadBody):
            return Answer(400, {"error": ask.error})
        cmd = Command(ask.requester, self.channel_id, ask.sfox_user_id, ask.reason, via=ask.requested_by)
        try:
            accepted = self.commands.accept_with(
                cmd,
                lambda conn, command_id: self.keys.claim(
                    conn, command_id, key=key, body_hash=ask.body_hash, url=ask.callback_url, now=self.now()
                ),
            )
        except IntegrityError:
            return self._repeated(key, ask.body_hash)
        except Exception:
            log.exception("intake request not recorded")
            return Answer(503, {"error": "not recorded (database unavailable); send it again, same key"})
        log.info("intake request accepted", extra={"command_id": accepted.id, "via": ask.requested_by})
        if self.commands.hands_over:  # the web role: a worker carries it out; wait for its answer
            return self._answer(accepted.id, key, wait=True)
        try:
            self.commands.run(accepted)
        except Exception:  # its journal row stays open: a sweep carries it out
            log.exception("intake request not carried out yet; a sweep will")
        return self._answer(accepted.id, key, wait=False)

    def get(self, request_id: int) -> Answer:
        """`GET /api/v1/requests/{id}`: a request asked through this API, as `history` shows it,
        with what became of its callback (`owed`, `delivered`, `abandoned`; absent without one),
        so a system whose callback was given up can read the outcome here."""
        record = self.store.get(request_id)
        if record is None or record.requested_via is None:
            return Answer(404, {"error": f"no request {request_id} asked through the intake API"})
        answer: dict[str, Any] = history_row(record)
        callback = self.keys.callback_of(request_id)
        if callback is not None:
            answer["callback"] = callback.as_dict()
        return Answer(200, answer)

    # -- answers ---------------------------------------------------------------------------------

    def _repeated(self, key: str, body_hash: str) -> Answer:
        """Another request with this key was recorded first: its answer, once it has one."""
        row = self.keys.by_key(key)
        if row is None:  # its transaction was rolled back after all
            return Answer(503, {"error": "Idempotency-Key: busy; send it again"})
        if row.body_hash != body_hash:
            return Answer(409, {"error": "Idempotency-Key: already used with another body"})
        return self._answer(row.command_id, key, wait=True)

    def _answer(self, command_id: int, key: str, *, wait: bool) -> Answer:
        """The key's first answer; while there is none, the request its command opened (once its
        card is up or the command is done), waiting up to REPEAT_WAIT_SECONDS when `wait`."""
        deadline = time.monotonic() + (REPEAT_WAIT_SECONDS if wait else 0.0)
        while True:
            row = self.keys.by_key(key)
            if row is not None and row.answer is not None:
                return Answer(*row.answer)
            record = self.store.request_for_command(command_id)
            settled = not wait or (row is not None and row.command_done)
            if record is not None and (settled or record.message_ts is not None):
                return self._settle(command_id, record)
            if settled and wait:
                return Answer(*self.keys.answer(command_id, 422, {"error": NOT_OPENED}))
            if time.monotonic() >= deadline or not wait:
                # Still being carried out (by a process that may have died: a sweep resumes it).
                return Answer(
                    202,
                    {
                        "request_id": record.id if record else None,
                        "status": record.status if record else "accepted",
                        "url": None,
                    },
                )
            time.sleep(REPEAT_POLL_SECONDS)

    def _settle(self, command_id: int, record: RequestRecord) -> Answer:
        body = {"request_id": record.id, "status": record.status, "url": self.permalink(record)}
        return Answer(*self.keys.answer(command_id, 202, body))

    def _settle_refusal(self, command_id: int, text: str) -> None:
        """The command's answer (bot/runtime/commands.py): a request it opened (a blocked one is
        answered in words too) or why it opened none."""
        record = self.store.request_for_command(command_id)
        if record is not None:
            self._settle(command_id, record)
            return
        self.keys.answer(command_id, 422, {"error": _plain(text)})


def _plain(text: str) -> str:
    """A Slack answer as plain text: no leading emoji, no backticks or entities."""
    text = _EMOJI.sub("", text.strip())
    return (
        text.replace("`", "").replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&").replace("*", "")
    )
