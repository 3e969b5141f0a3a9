"""Button clicks, recorded before they are acknowledged.

Slack is told "received" the moment the listener returns, and the click's step runs after that.
If the process died in between, the click would vanish although Slack (and the clicker) saw it
accepted. So each click is first written to the `clicks` journal, then acknowledged, then handled
and marked done. A click still open when its lease runs out (the process that took it is gone) is
handled by the sweep of any process, which answers the clicker through the click's response URL.
Handling a click twice is harmless: every step it leads to is a conditional update.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert, select, update

from bot.requests.base import CardRef, ClickResult
from bot.requests.workflow import Workflow
from bot.slack.blocks import APPROVE, DENY, RETRY
from bot.store.db import Store
from bot.store.schema import clicks

log = logging.getLogger("sfox_bot.clicks")

# How long the process that received a click has to handle it before any sweep may. A click's
# step takes milliseconds; this is ample even behind a burst of clicks.
CLICK_LEASE = timedelta(seconds=10)
# The journal write comes before the ack, which Slack wants within 3 s: a click that cannot be
# recorded sooner is refused, visibly, rather than acknowledged and maybe lost.
RECORD_WITHIN_SECONDS = 2.0
# A response URL works for 30 minutes: a click older than that can still be handled, but its
# clicker can no longer be answered privately (the card and its thread still tell the outcome).
RESPONSE_URL_LIFETIME = timedelta(minutes=30)
# Built once: every click runs it before its ack (see bot/store/base.py on prebuilt statements).
_RECORD = insert(clicks).returning(clicks.c.id)
ACTION_LABELS = {APPROVE: "Approve", DENY: "Deny", RETRY: "Retry"}


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
        self.submit = submit
        self.answer_later = answer_later
        self.steps: dict[str, Callable[[int, str], ClickResult]] = {
            APPROVE: workflow.approve,
            DENY: workflow.deny,
            RETRY: workflow.retry,
        }
        # Told of each handled click and what it led to (bot/runtime/metrics.py counts them).
        self.observers: list[Callable[[Click, ClickResult], None]] = []
        self._foreign: set[str] = set()

    def add_steps(self, steps: dict[str, Callable[[int, str], ClickResult]]) -> None:
        """Buttons of another capability (bot.batches): journalled like the card's, but the id they
        carry is that capability's own (never a request's), and each step sets off its own work."""
        self.steps.update(steps)
        self._foreign.update(steps)

    def receive(self, click: Click) -> Click:
        """Record the click; call before acknowledging it. Returns it with its journal id. Raises
        store.Busy when the database cannot take it in time: then it must not count."""
        now = self.workflow.now()
        card = click.card
        with self.store.quick_transaction(RECORD_WITHIN_SECONDS) as conn:
            click_id = conn.execute(
                _RECORD,
                {
                    "request_id": click.request_id,
                    "action": click.action,
                    "actor": click.actor,
                    "channel_id": card.channel_id if card and card.ours else None,
                    "message_ts": card.ts if card and card.ours else None,
                    "response_url": click.response_url,
                    "reason": click.reason,
                    "received_at": now,
                    "lease_until": now + CLICK_LEASE,
                },
            ).scalar_one()
        return Click(
            click.action, click.request_id, click.actor, card, click.response_url, click_id, now, click.reason
        )

    def handle(self, click: Click, answer: Callable[[str], None]) -> ClickResult:
        """The click's step: adopt its card if the request has none recorded, run the step,
        answer the clicker, mark the click done, and set off what the step calls for."""
        step = self.steps[click.action]
        if click.action in self._foreign:
            result = step(click.request_id, click.actor)
            for observe in self.observers:
                observe(click, result)
            if result.ephemeral:
                answer(result.ephemeral)
            if click.id is not None:
                self._done(click.id)
            return result
        adopted = self.workflow.adopt_card(click.request_id, click.card)
        if click.action == DENY and click.reason:
            result = self.workflow.deny(click.request_id, click.actor, click.reason)
        else:
            result = step(click.request_id, click.actor)
        for observe in self.observers:
            observe(click, result)
        text = result.ephemeral
        if adopted and text is None:
            text = "Done. (This card had lost its link to its request when the bot restarted; it is back.)"
        if text:
            answer(text)
        if click.id is not None:
            self._done(click.id)
        if result.execute:
            self.submit(self.workflow.execute, click.request_id)
        self.submit(self.workflow.deliver, click.request_id)
        return result

    def replay(self) -> int:
        """Handle the clicks that were acknowledged but never handled (their process died)."""
        handled = 0
        for click in self._due():
            if not self._take(click.id):
                continue  # another process's sweep got it
            handled += 1
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
            url_alive = (
                click.received_at is not None
                and self.workflow.now() - click.received_at < RESPONSE_URL_LIFETIME
            )
            if click.response_url and url_alive:
                self.answer_later(
                    click.response_url, preface + (answered[0] if answered else "See the card.")
                )
        return handled

    # -- the journal ---------------------------------------------------------------------------

    def _due(self) -> list[Click]:
        now = self.workflow.now()
        query = (
            select(clicks)
            .where(clicks.c.done_at.is_(None), clicks.c.lease_until < now)
            .order_by(clicks.c.id)
            .limit(500)
        )
        with self.store.reader() as conn:
            rows = conn.execute(query).mappings().all()
        return [
            Click(
                row["action"],
                row["request_id"],
                row["actor"],
                CardRef(row["channel_id"], row["message_ts"], ours=True) if row["message_ts"] else None,
                row["response_url"],
                row["id"],
                row["received_at"],
                row["reason"],
            )
            for row in rows
            if row["action"] in self.steps
        ]

    def _take(self, click_id: int | None) -> bool:
        now = self.workflow.now()
        with self.store.transaction() as conn:
            return bool(
                conn.execute(
                    update(clicks)
                    .where(clicks.c.id == click_id, clicks.c.done_at.is_(None), clicks.c.lease_until < now)
                    .values(lease_until=now + CLICK_LEASE)
                ).rowcount
            )

    def _done(self, click_id: int) -> None:
        with self.store.transaction() as conn:
            conn.execute(
                update(clicks)
                .where(clicks.c.id == click_id)
                .values(done_at=self.workflow.now(), response_url=None)
            )
