"""Button clicks, recorded before they are acknowledged.

Each click is first written to the `clicks` journal (bot/runtime/journal.py), then acknowledged,
then handled and marked done. A click still open when its lease runs out (the process that took
it is gone) is handled by the sweep of any process, which answers the clicker through the click's
response URL. Handling a click twice is harmless: every step it leads to is a conditional update.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.engine import RowMapping

from bot.requests.base import CardRef, ClickResult
from bot.requests.workflow import Workflow
from bot.runtime.journal import Journal
from bot.slack.blocks import APPROVE, DENY, RETRY
from bot.store.db import Store
from bot.store.schema import clicks

log = logging.getLogger("sfox_bot.clicks")

# How long the process that received a click has to handle it before any sweep may. A click's
# step takes milliseconds; this is ample even behind a burst of clicks.
CLICK_LEASE = timedelta(seconds=10)
ACTION_LABELS = {APPROVE: "Approve", DENY: "Deny", RETRY: "Retry"}
# Handed-over clicks one process has taken and not yet handled (its step pool's threads).
MAX_IN_FLIGHT = 16
HOME = "home"  # a click made in the App Home tab, answered there (`Click.answer_in`)


@dataclass(frozen=True)
class Click:
    action: str
    request_id: int
    actor: str
    card: CardRef | None
    response_url: str | None
    id: int | None = None
    received_at: datetime | None = None
    # A Deny sent from the reason modal (handlers/deny_modal.py) carries what was typed.
    reason: str | None = None
    # An Approve (or a Retry, an approval too) sent from the code modal (handlers/approve_modal.py)
    # carries the factor whose code was checked before it was journalled ("totp"); None for a
    # plain click.
    step_up: str | None = None
    # Where the clicker is answered: HOME (their App Home tab, republished) or None (privately,
    # through the response URL). Recorded, since a worker may handle what the web role received.
    answer_in: str | None = None


class Clicks:
    """Receives, handles and (after a crash) replays button clicks."""

    def __init__(
        self,
        store: Store,
        workflow: Workflow,
        submit: Callable[..., Any],
        answer_later: Callable[[str, str], bool],
    ) -> None:
        """`submit` runs the sFOX and Slack work a click sets off in the background;
        `answer_later(response_url, text)` answers a clicker from any process."""
        self.store = store
        self.workflow = workflow
        self.journal = Journal(store, clicks, CLICK_LEASE, lambda: self.workflow.now())
        self.submit = submit
        self.answer_later = answer_later
        self.steps: dict[str, Callable[..., ClickResult]] = {
            APPROVE: workflow.approve,
            DENY: workflow.deny,
            RETRY: workflow.retry,
        }
        # A handed-over click's step goes to the step pool (Runtime.step); its App Home answer
        # republishes the clicker's tab (`answer_home(user, banner)`), both set by the bootstrap.
        self.run_step: Callable[..., Any] = lambda fn, *args: fn(*args)
        self.answer_home: Callable[[str, str], None] = lambda user, text: None
        # Told of each handled click and what it led to (bot/runtime/metrics.py counts them).
        self.observers: list[Callable[[Click, ClickResult], None]] = []
        self._foreign: set[str] = set()
        # Handed-over clicks taken and not yet handled: a worker takes no more than it can start,
        # since a click's lease is not renewed while it waits.
        self._in_flight = 0
        self._lock = threading.Lock()
        self._room = threading.Condition(self._lock)
        # The last take stopped at MAX_IN_FLIGHT with rows maybe left: take again once there is
        # room, not at the next wake-up (a burst's wake-ups are over by then).
        self.capped = False

    def add_steps(self, steps: dict[str, Callable[..., ClickResult]]) -> None:
        """Buttons of another capability (bot.batches): journalled like the card's, but the id they
        carry is that capability's own (never a request's), and each step sets off its own work."""
        self.steps.update(steps)
        self._foreign.update(steps)

    def receive(self, click: Click) -> Click:
        """Record the click; call before acknowledging it. Returns it with its journal id. Raises
        store.Busy when the database cannot take it in time: then it must not count."""
        card = click.card
        click_id, now = self.journal.record(
            {
                "request_id": click.request_id,
                "action": click.action,
                "actor": click.actor,
                "channel_id": card.channel_id if card and card.ours else None,
                "message_ts": card.ts if card and card.ours else None,
                "response_url": click.response_url,
                "reason": click.reason,
                "step_up": click.step_up,
                "answer_in": click.answer_in,
            }
        )
        return replace(click, id=click_id, received_at=now)

    @property
    def hands_over(self) -> bool:
        """Whether a worker carries recorded clicks out (the web role): then the receiver only acks."""
        return self.journal.hands_over

    def handle(self, click: Click, answer: Callable[[str], None]) -> ClickResult:
        """The click's step: adopt its card if the request has none recorded, run the step,
        answer the clicker, mark the click done, and set off what the step calls for."""
        step = self.steps[click.action]
        # Only an approval comes with a second factor, and only its step takes one.
        stepped: dict[str, Any] = {"step_up": click.step_up} if click.step_up else {}
        if click.action in self._foreign:
            result = step(click.request_id, click.actor, **stepped)
            for observe in self.observers:
                observe(click, result)
            if result.ephemeral:
                answer(result.ephemeral)
            if click.id is not None:
                self.journal.done(click.id)
            return result
        adopted = self.workflow.adopt_card(click.request_id, click.card)
        if click.action == DENY and click.reason:
            result = self.workflow.deny(click.request_id, click.actor, click.reason)
        else:
            result = step(click.request_id, click.actor, **stepped)
        for observe in self.observers:
            observe(click, result)
        text = result.ephemeral
        if adopted and text is None:
            text = "Done. (This card had lost its link to its request when the bot restarted; it is back.)"
        if text:
            answer(text)
        if click.id is not None:
            self.journal.done(click.id)
        if result.execute:
            self.submit(self.workflow.execute, click.request_id)
        self.submit(self.workflow.deliver, click.request_id)
        return result

    def replay(self) -> int:
        """Take the clicks that were acknowledged but not handled: handed over by the web role
        (each handled on the step pool, answered as its receiver would have) or left by a process
        that died (handled here, the clicker told the bot restarted). Returns how many this
        process took."""
        handled = 0
        while True:
            with self._lock:
                room = MAX_IN_FLIGHT - self._in_flight
                self.capped = room <= 0
            if room <= 0:
                return handled  # the rest waits for room (`wait_for_room`), still due for any worker
            rows = self.journal.take_due(room, only=clicks.c.action.in_(sorted(self.steps)))
            for row in rows:
                handled += 1
                self._take(_click(row), fresh=row["holds"] == 1)
            if len(rows) < room:
                return handled

    def _take(self, click: Click, *, fresh: bool) -> None:
        if fresh:  # nobody worked on it: handed over by the web role, not left by a dead process
            with self._lock:
                self._in_flight += 1
            self.run_step(self._fresh_step, click)
            return
        log.warning(
            "click replayed after a restart",
            extra={"request_id": click.request_id, "action": click.action, "click_id": click.id},
        )
        label = ACTION_LABELS.get(click.action, click.action)
        preface = (
            f"The bot restarted right after your *{label}* click on request #{click.request_id}; "
            "it has been handled now. "
        )
        answered: list[str] = []
        self.handle(click, answered.append)
        self._answer(click, preface + (answered[0] if answered else "See the card."))

    def _fresh_step(self, click: Click) -> None:
        try:
            self.handle_fresh(click)
        finally:
            with self._lock:
                self._in_flight -= 1
                self._room.notify_all()

    def wait_for_room(self, timeout: float) -> None:
        """Until a handed-over click in hand is done (or `timeout`): then the worker takes more."""
        with self._lock:
            self._room.wait_for(lambda: self._in_flight < MAX_IN_FLIGHT, timeout)

    def handle_fresh(self, click: Click) -> ClickResult:
        """A recorded click nobody worked on before, handled by the process that received it or
        by the worker it was handed to alike, answered where it was made: privately through its
        response URL, or by republishing the clicker's App Home tab (which is republished once
        the step is done even when there is nothing to say)."""
        answered: list[str] = []

        def answer(text: str) -> None:
            answered.append(text)
            self._answer(click, text)

        result = self.handle(click, answer)
        if click.answer_in == HOME and not answered:
            self.answer_home(click.actor, ":white_check_mark: Done.")
        return result

    def _answer(self, click: Click, text: str) -> None:
        if click.answer_in == HOME:
            self.answer_home(click.actor, text)
        elif click.response_url and self.journal.answerable(click.received_at):
            self.answer_later(click.response_url, text)


def _click(row: RowMapping) -> Click:
    return Click(
        row["action"],
        row["request_id"],
        row["actor"],
        CardRef(row["channel_id"], row["message_ts"], ours=True) if row["message_ts"] else None,
        row["response_url"],
        row["id"],
        row["received_at"],
        row["reason"],
        row["step_up"],
        row["answer_in"],
    )
