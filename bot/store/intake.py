"""Storage for the intake API (bot/intake/): its idempotency keys, their first answers, and the
outcome callbacks owed (each taken by one replica at a time: a compare-and-set on its due time,
which is then the sender's lease), delivered, or abandoned (with its audit event)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, insert, or_, select, update
from sqlalchemy.engine import Connection

from bot.store.db import Store
from bot.store.intake_schema import intake
from bot.store.records import Event
from bot.store.schema import commands, requests

# The statuses a request ends in: its callback is owed once it reaches one.
FINAL_STATUSES = ("succeeded", "failed", "denied", "expired", "blocked", "cancelled")
# `intake.callback_state` (migration 0018_callback_attempts); None: no callback_url.
OWED, DELIVERED, ABANDONED = "owed", "delivered", "abandoned"
CALLBACK_STATES = (OWED, DELIVERED, ABANDONED)


@dataclass(frozen=True)
class KeyRow:
    """One idempotency key: the body it came with, its command, and its first answer (if any)."""

    id: int
    body_hash: str
    command_id: int
    answer: tuple[int, dict[str, Any]] | None
    command_done: bool


@dataclass(frozen=True)
class OwedCallback:
    id: int
    url: str
    request_id: int
    attempts: int  # made before this one
    error: str | None  # the last one's status or error class


@dataclass(frozen=True)
class CallbackState:
    """What became of a request's callback, as the intake API's GET shows it (never its URL)."""

    state: str  # one of CALLBACK_STATES
    attempts: int
    error: str | None

    def as_dict(self) -> dict[str, Any]:
        return {"state": self.state, "attempts": self.attempts, "error": self.error}


class IntakeStore:
    """The `intake` table, on the bot's Store (its write queue and transactions)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def claim(
        self, conn: Connection, command_id: int, *, key: str, body_hash: str, url: str | None, now: datetime
    ) -> None:
        """Write the key with its command, in the command journal's transaction: a second writer
        of the same key fails on the unique index, and its command is not written either."""
        conn.execute(
            insert(intake).values(
                idempotency_key=key,
                body_hash=body_hash,
                command_id=command_id,
                received_at=now,
                callback_url=url,
                callback_attempts=0,
                callback_state=OWED if url else None,
            )
        )

    def by_key(self, key: str) -> KeyRow | None:
        query = (
            select(intake, commands.c.done_at)
            .join(commands, commands.c.id == intake.c.command_id)
            .where(intake.c.idempotency_key == key)
        )
        with self.store.reader() as conn:
            row = conn.execute(query).mappings().first()
        if row is None:
            return None
        answer = None
        if row["answer"]:
            stored = json.loads(row["answer"])
            answer = (int(stored["status"]), stored["body"])
        return KeyRow(row["id"], row["body_hash"], row["command_id"], answer, row["done_at"] is not None)

    def answer(self, command_id: int, status: int, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """Keep the first answer of a key (a later one never replaces it), and return it."""
        with self.store.transaction() as conn:
            conn.execute(
                update(intake)
                .where(intake.c.command_id == command_id, intake.c.answer.is_(None))
                .values(answer=json.dumps({"status": status, "body": body}))
            )
            stored = conn.execute(select(intake.c.answer).where(intake.c.command_id == command_id)).scalar()
        if stored is None:  # not an intake command
            return status, body
        first = json.loads(stored)
        return int(first["status"]), first["body"]

    def is_intake_command(self, command_id: int) -> bool:
        with self.store.reader() as conn:
            return (
                conn.execute(select(intake.c.id).where(intake.c.command_id == command_id)).first() is not None
            )

    # -- callbacks ---------------------------------------------------------------------------------

    def _owed(self) -> Any:
        return (
            select(intake, requests.c.id.label("request_id"))
            .join(requests, requests.c.command_id == intake.c.command_id)
            .where(intake.c.callback_state == OWED, requests.c.status.in_(FINAL_STATUSES))
        )

    def next_callback_due(self) -> datetime | None:
        """When the earliest owed callback may be tried (None: none owed)."""
        owed = self._owed().subquery()
        due = func.min(func.coalesce(owed.c.callback_due_at, owed.c.received_at))
        with self.store.reader() as conn:
            return conn.execute(select(due)).scalar()

    def due_callbacks(self, now: datetime, limit: int = 50) -> list[OwedCallback]:
        query = (
            self._owed()
            .where(or_(intake.c.callback_due_at.is_(None), intake.c.callback_due_at <= now))
            .limit(limit)
        )
        with self.store.reader() as conn:
            rows = conn.execute(query).mappings().all()
        return [
            OwedCallback(
                r["id"], r["callback_url"], r["request_id"], r["callback_attempts"], r["callback_error"]
            )
            for r in rows
        ]

    def callback_of(self, request_id: int) -> CallbackState | None:
        """The callback of the request (None: asked without a callback_url, or not by the API)."""
        query = (
            select(intake.c.callback_state, intake.c.callback_attempts, intake.c.callback_error)
            .join(requests, requests.c.command_id == intake.c.command_id)
            .where(requests.c.id == request_id, intake.c.callback_state.is_not(None))
        )
        with self.store.reader() as conn:
            row = conn.execute(query).first()
        return None if row is None else CallbackState(row[0], row[1], row[2])

    def take_callback(self, owed: OwedCallback, now: datetime, lease: timedelta) -> bool:
        """This replica sends it: a compare-and-set moving its due time to the lease's end (a
        sender that dies leaves it due again then)."""
        with self.store.transaction() as conn:
            return bool(
                conn.execute(
                    update(intake)
                    .where(
                        intake.c.id == owed.id,
                        intake.c.callback_state == OWED,
                        intake.c.callback_attempts == owed.attempts,
                        or_(intake.c.callback_due_at.is_(None), intake.c.callback_due_at <= now),
                    )
                    .values(callback_due_at=now + lease, callback_attempts=owed.attempts + 1)
                ).rowcount
            )

    def callback_delivered(self, row_id: int, now: datetime) -> None:
        """A 2xx: never tried again."""
        with self.store.transaction() as conn:
            conn.execute(
                update(intake)
                .where(intake.c.id == row_id)
                .values(callback_state=DELIVERED, callback_sent_at=now, callback_error=None)
            )

    def callback_abandoned(
        self, owed: OwedCallback, now: datetime, *, attempts: int, error: str, event: Event
    ) -> bool:
        """Given up, never tried again, with its audit event in the same transaction; False when
        it was not owed any more (another replica settled it)."""
        with self.store.transaction() as conn:
            done = conn.execute(
                update(intake)
                .where(intake.c.id == owed.id, intake.c.callback_state == OWED)
                .values(
                    callback_state=ABANDONED,
                    callback_sent_at=now,
                    callback_attempts=attempts,
                    callback_error=error[:500],
                )
            ).rowcount
            if done:
                self.store.append_event(conn, owed.request_id, now, event)
            return bool(done)

    def callback_failed(self, row_id: int, error: str, retry_at: datetime) -> None:
        with self.store.transaction() as conn:
            conn.execute(
                update(intake)
                .where(and_(intake.c.id == row_id, intake.c.callback_state == OWED))
                .values(callback_due_at=retry_at, callback_error=error[:500])
            )
