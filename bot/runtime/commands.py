"""Slash commands, recorded before they are acknowledged.

`/sfox-deactivate <id> [reason]` and a batch (inline, or from its form) are acked at once and
carried out after the ack: the sFOX lookups, the balance reads, the card. Each accepted command is
first written to the `commands` journal (bot/runtime/journal.py) with what it takes to carry it
out again, then acknowledged, then carried out, its requester answered, and marked done. While
this process works on a command it keeps the command's lease alive (a batch's pre-flight can take
minutes at sFOX's pace). If the process dies first, any replica's sweep takes the command once its
lease has run out, carries it out and tells the requester through the command's response URL that
the bot restarted meanwhile, and what came of it. What the dead process had created already is
found by the command's id (`requests.command_id`, `batches.command_id`, written in the transaction
that creates the row, unique), never created twice; a card it posted but never recorded is left to
the lost-card search (`Workflow.sweep`), and the requester is told once that has settled.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import update
from sqlalchemy.engine import Connection

from bot.batches.asking import BatchAsk, posted_answer
from bot.batches.workflow import Batches
from bot.crashpoints import crash_point
from bot.requests.base import CARDLESS_GRACE, Command
from bot.requests.workflow import Workflow
from bot.runtime.command_rows import STEP, decode, kind_of, row_of
from bot.runtime.journal import RESPONSE_URL_POSTS, TAKE_AT_ONCE, Journal, not_recorded
from bot.slack.blocks import code, escape
from bot.store.batch_base import BatchRecord
from bot.store.db import Store
from bot.store.errors import Busy
from bot.store.records import RequestRecord
from bot.store.schema import OPEN_STATUSES, WATCHING, commands

log = logging.getLogger("sfox_bot.commands")

# How long a command is the process's that holds it without a word from it. The holder renews
# every KEEP_EVERY_SECONDS while it works, so only a dead process's commands run out.
COMMAND_LEASE = timedelta(seconds=15)
KEEP_EVERY_SECONDS = 5.0
# A batch's progress lines through the response URL, over all the lives of the command: the URL
# takes 5 posts, and the last ones are kept for the answer.
PROGRESS_POSTS = 3
TOO_OLD = (
    ":warning: The bot restarted while it was handling your batch, which did *not* go through "
    "(half an hour has passed). Please ask again."
)
PREPARE_FAILED = (
    ":warning: The batch could not be prepared (the bot hit an error; see its log). "
    "If no card appeared in the channel, nothing was recorded: try again."
)


@dataclass(frozen=True)
class Accepted:
    """A command Slack was told we received: what it asks (carrying its journal id as
    `command_id`), where to answer its requester, and when it came."""

    ask: Command | BatchAsk
    response_url: str | None
    id: int
    received_at: datetime
    step: bool = False

    @property
    def kind(self) -> str:
        return STEP if self.step else kind_of(self.ask)


@dataclass(frozen=True)
class _Result:
    """What carrying a command out came to: what to tell its requester (None: the card says it),
    or, when it cannot be told yet, when to look again (the lost-card search will have run)."""

    text: str | None
    look_again_at: datetime | None = None


class Commands:
    """Receives, carries out and (after a crash) resumes slash commands."""

    def __init__(
        self,
        store: Store,
        workflow: Workflow,
        batches: Batches,
        submit: Callable[..., Any],
        answer_later: Callable[..., bool],
        tell: Callable[[str, str, str], bool],
    ) -> None:
        """`submit` runs a command's job on the job pool; `answer_later(response_url, text,
        replace=…)` answers through a response URL; `tell(channel, user, text)` answers privately
        in a channel (the batch form has no response URL)."""
        self.store = store
        self.workflow = workflow
        self.batches = batches
        self.submit = submit
        self.answer_later = answer_later
        self.tell = tell
        # A step's command answered with no request opened: (command id, text) (bot/runtime/steps.py).
        self.step_answered: Callable[[int, str], None] = lambda command_id, text: None
        # Whether a step's command was linked to its execution before the process died: one that
        # was not was never acknowledged either, and Slack's re-send carries it out instead.
        self.step_known: Callable[[int], bool] = lambda command_id: True
        # The answer to a command asked through the intake API that opened no request (its
        # system has no Slack user to tell): `tell_system(command_id, text)`, set by bot/intake/.
        self.tell_system: Callable[[int, str], None] = lambda command_id, text: None
        self.journal = Journal(store, commands, COMMAND_LEASE, lambda: self.workflow.now())
        self._mine: set[int] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._keeper: threading.Thread | None = None

    def accept(
        self, ask: Command | BatchAsk, response_url: str | None, *, step: bool = False
    ) -> Accepted | str:
        """Record a validated command; call before acknowledging it. Returns it accepted, or the
        ack's text when the database could not take it within 2 s (then it changes nothing).
        `step`: asked by a Workflow Builder step rather than typed."""
        try:
            row_id, received_at = self.journal.record(row_of(ask, response_url, step=step))
        except Exception as exc:
            if not isinstance(exc, Busy):
                log.exception("command not recorded")
            return not_recorded("command", "ask again", exc)
        self._hold_unless_handed_over(row_id)
        return Accepted(replace(ask, command_id=row_id), response_url, row_id, received_at, step)

    def accept_with(self, ask: Command, also: Callable[[Connection, int], None]) -> Accepted:
        """Record a validated command from a door without a response URL (the intake API,
        bot/intake/) in one transaction with what `also(conn, command_id)` writes there (its
        idempotency key): both or neither. Raises what the write raises."""
        row_id, received_at = self.journal.record_with(row_of(ask, None), also)
        self._hold_unless_handed_over(row_id)
        return Accepted(replace(ask, command_id=row_id), None, row_id, received_at)

    def run(self, accepted: Accepted) -> None:
        """The command's job, on the job pool right after the ack."""
        crash_point("command_acked")
        self._carry_out(accepted, resumed=False)

    def resume(self) -> int:
        """Take the commands nobody is carrying out, and carry each out on the job pool: handed
        over by the web role (carried out as its receiver would have), or left by a process that
        died before it was done (its requester told the bot restarted meanwhile). Returns how
        many this process took. The taken ones' leases are kept alive while they wait for a job
        thread, so no other process takes them meanwhile."""
        taken = 0
        while True:
            rows = self.journal.take_due()
            for row in rows:
                taken += 1
                accepted = Accepted(*decode(row))
                resumed = row["holds"] > 1
                if resumed:
                    log.warning(
                        "command resumed after a restart",
                        extra={"command_id": accepted.id, "kind": accepted.kind},
                    )
                self._hold(accepted.id)
                self.submit(self._carry_out, accepted, resumed)
            if len(rows) < TAKE_AT_ONCE:
                return taken

    @property
    def hands_over(self) -> bool:
        """Whether a worker carries recorded commands out (the web role): the receiver only acks."""
        return self.journal.hands_over

    def carry_out_later(self, accepted: Accepted) -> None:
        """After the ack: carry the command out on this process's job pool, or (the web role)
        leave it to the worker the journal's commit woke."""
        if not self.hands_over:
            self.submit(self.run, accepted)

    def stop(self) -> None:
        """Stop keeping leases (at shutdown, once the jobs are finished)."""
        self._stop.set()
        if self._keeper is not None:
            self._keeper.join(timeout=KEEP_EVERY_SECONDS)

    # -- carrying a command out ----------------------------------------------------------------

    def _carry_out(self, accepted: Accepted, resumed: bool) -> None:
        try:
            # A step's workflow waits for its completion, not on a response URL's half hour.
            if resumed and not accepted.step and not self.journal.answerable(accepted.received_at):
                # Half an hour on, nobody waits for this card any more, and its requester can no
                # longer be told through the response URL.
                log.warning("command dropped: too old to carry out", extra={"command_id": accepted.id})
                if isinstance(accepted.ask, BatchAsk) and accepted.response_url is None:  # the form: say so
                    self._say(accepted, TOO_OLD, final=True)
                self.journal.done(accepted.id)
                return
            if resumed and accepted.step and not self.step_known(accepted.id):
                log.warning("step command dropped: never acknowledged", extra={"command_id": accepted.id})
                self.journal.done(accepted.id)
                return
            if isinstance(accepted.ask, BatchAsk):
                result = self._open_batch(accepted, accepted.ask, resumed)
            else:
                result = self._open_request(accepted.ask, resumed)
            if result.look_again_at is not None:
                self._release(accepted.id)  # no longer kept alive: left alone until then
                self.journal.postpone(accepted.id, result.look_again_at)
                return
            if result.text:
                self._say(accepted, result.text, final=True)
            self.journal.done(accepted.id)
        finally:
            self._release(accepted.id)

    def _open_request(self, cmd: Command, resumed: bool) -> _Result:
        preface = (
            f"The bot restarted while it was handling your command `/sfox-deactivate {escape(cmd.sfox_user_id, 80)}`; "
            if resumed
            else ""
        )
        if resumed and cmd.command_id is not None:
            existing = self.store.request_for_command(cmd.command_id)
            if existing is not None:
                if existing.message_ts is None and existing.status in OPEN_STATUSES:
                    # Its card may be in Slack: the sweep's lost-card search will find it or
                    # close the request; the requester is told then.
                    return _Result(None, look_again_at=existing.pending_since + CARDLESS_GRACE)
                return _Result(preface + _came_of(existing))
        outcome = self.workflow.open_request(cmd)
        if isinstance(outcome, str):
            self.workflow.deliver()  # e.g. a blocked request's DM to the requester (bot/slack/dms.py)
            return _Result(preface + ("it has been handled now: " if resumed else "") + outcome)
        return _Result(preface + _came_of(outcome) if resumed else None)

    def _open_batch(self, accepted: Accepted, ask: BatchAsk, resumed: bool) -> _Result:
        preface = (
            f"The bot restarted while it was preparing your batch of {len(ask.ids)} users; "
            if resumed
            else ""
        )
        if resumed and ask.command_id is not None:
            batch = self.batches.records.batch_for_command(ask.command_id)
            if batch is not None:
                return _Result(preface + self._came_of_batch(batch))
        try:
            answer = self.batches.open_batch(ask, lambda text: self._say(accepted, text, final=False))
        except Exception:
            log.exception("batch pre-flight failed")
            answer = PREPARE_FAILED
        return _Result(preface + ("it has been prepared now.\n" if resumed else "") + answer)

    def _came_of_batch(self, batch: BatchRecord) -> str:
        """A batch the dead process created: its card is up, or the batch is closed (no card was
        recorded, and batches have no lost-card search: a batch nobody can approve is closed)."""
        if batch.message_ts is not None:
            return posted_answer(batch.id, sum(self.batches.records.counts(batch.id).values()))
        if batch.status == "pending":
            self.batches.records.card_failed(
                batch.id, self.workflow.now(), "the bot stopped before it recorded the batch card"
            )
        return (
            f":warning: your batch did *not* go through: the bot stopped before it recorded the card of "
            f"batch #{batch.id}, which was closed so nothing can be approved by mistake. Please ask again."
        )

    # -- answering the requester ---------------------------------------------------------------

    def _say(self, accepted: Accepted, text: str, *, final: bool) -> None:
        """Tell the requester privately: a progress line (replacing the ack) or the answer. A
        response URL takes 5 posts: each is counted in the journal, across the command's lives,
        and one is always kept for the answer. A step's answer is its completion's error; a
        system's (the intake API's), its HTTP reply."""
        if accepted.step or (isinstance(accepted.ask, Command) and accepted.ask.via is not None):
            if final:
                (self.step_answered if accepted.step else self.tell_system)(accepted.id, text)
            return
        if not self._count_post(accepted.id, RESPONSE_URL_POSTS if final else PROGRESS_POSTS):
            return
        if accepted.response_url is None:
            self.tell(accepted.ask.channel_id, accepted.ask.requester, text)
        elif self.journal.answerable(accepted.received_at):
            self.answer_later(accepted.response_url, text, replace=not final)

    def _count_post(self, row_id: int, cap: int) -> bool:
        with self.store.transaction() as conn:
            return bool(
                conn.execute(
                    update(commands)
                    .where(commands.c.id == row_id, commands.c.posts < cap)
                    .values(posts=commands.c.posts + 1)
                ).rowcount
            )

    # -- the lease ------------------------------------------------------------------------------

    def _hold(self, row_id: int) -> None:
        """This process works on the command: keep its lease alive until it is released."""
        with self._lock:
            self._mine.add(row_id)
            if self._keeper is None and not self._stop.is_set():
                self._keeper = threading.Thread(target=self._keep, name="sfox-command-leases", daemon=True)
                self._keeper.start()

    def _hold_unless_handed_over(self, row_id: int) -> None:
        """The receiver keeps the lease of what it will carry out itself; the web role keeps none,
        or renewing it would hide the command from the workers (it is theirs from the start)."""
        if not self.hands_over:
            self._hold(row_id)

    def _release(self, row_id: int) -> None:
        with self._lock:
            self._mine.discard(row_id)

    def _keep(self) -> None:
        while not self._stop.wait(KEEP_EVERY_SECONDS):
            with self._lock:
                mine = set(self._mine)
            if not mine:
                continue
            try:
                self.journal.renew(mine)
            except Exception:
                log.exception("command leases not renewed; will try again")


def _came_of(record: RequestRecord) -> str:
    """What came of a request, for a requester told after a restart."""
    if record.status == WATCHING:
        return (
            f"request #{record.id} for {code(record.sfox_user_id)} is being watched: the card is posted "
            "once its balances read zero (your DM has a *Stop watching* button)."
        )
    if record.message_ts is not None:
        return (
            f"its approval card is posted in this channel: request #{record.id} for "
            f"{code(record.sfox_user_id)} ({record.status})."
        )
    return (
        f"request #{record.id} for {code(record.sfox_user_id)} is {record.status} without a card: "
        f"{escape(record.error or 'nobody can approve it', 600)}. Nothing was sent to sFOX."
    )
