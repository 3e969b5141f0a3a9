"""Storage for the Workflow Builder step: one row per Slack execution, so a repeated
`function_executed` (any replica, any time) opens nothing new, and the completion of a step that
opened no request is owed until Slack takes it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from bot.store.base import StoreBase
from bot.store.schema import requests, steps


@dataclass(frozen=True)
class StepRecord:
    id: int
    execution_id: str
    command_id: int | None
    error: str | None
    completed_at: datetime | None


class SteppingStore(StoreBase):
    def receive_step(self, execution_id: str, now: datetime, lease: timedelta) -> int | None:
        """Record an execution Slack sent, held for `lease` until it is opened or refused; None
        if it was recorded before (a repeat). A row whose receiver died before either (the event
        was never acknowledged, so Slack sends it again) is taken over once its hold ran out."""
        try:
            with self._write() as conn:
                return int(
                    conn.execute(
                        insert(steps)
                        .values(execution_id=execution_id, received_at=now, lease_until=now + lease)
                        .returning(steps.c.id)
                    ).scalar_one()
                )
        except IntegrityError:
            pass
        with self._write() as conn:
            taken = conn.execute(
                update(steps)
                .where(
                    steps.c.execution_id == execution_id,
                    steps.c.command_id.is_(None),
                    steps.c.error.is_(None),
                    steps.c.lease_until < now,
                )
                .values(lease_until=now + lease)
                .returning(steps.c.id)
            ).first()
        return int(taken.id) if taken is not None else None

    def step_opened(self, step_id: int, command_id: int) -> None:
        """The step became this journalled command (its request will carry the same id)."""
        with self._write() as conn:
            conn.execute(
                update(steps).where(steps.c.id == step_id).values(command_id=command_id, lease_until=None)
            )

    def step_refused(self, step_id: int | None, error: str, *, command_id: int | None = None) -> None:
        """No request could be opened: the completion owed is an error, in plain words."""
        where = steps.c.id == step_id if step_id is not None else steps.c.command_id == command_id
        with self._write() as conn:
            conn.execute(
                update(steps)
                .where(where, steps.c.error.is_(None))
                .values(error=error[:2000], lease_until=None)
            )

    def step_for_command(self, command_id: int) -> StepRecord | None:
        with self._read() as conn:
            row = conn.execute(select(steps).where(steps.c.command_id == command_id)).mappings().first()
        return _record(row)

    def step_for_request(self, request_id: int) -> StepRecord | None:
        query = select(steps).join(requests, requests.c.command_id == steps.c.command_id)
        with self._read() as conn:
            row = conn.execute(query.where(requests.c.id == request_id)).mappings().first()
        return _record(row)

    def steps_refused_owed(self, now: datetime) -> list[StepRecord]:
        """Refused steps whose error completion Slack has not taken, and nobody is sending now."""
        query = select(steps).where(
            steps.c.error.is_not(None),
            steps.c.completed_at.is_(None),
            or_(steps.c.lease_until.is_(None), steps.c.lease_until < now),
        )
        with self._read() as conn:
            return [r for r in map(_record, conn.execute(query.order_by(steps.c.id)).mappings()) if r]

    def lease_step(self, step_id: int, now: datetime, seconds: float) -> bool:
        """Take a refused step's completion to send it (compare-and-set: one sender)."""
        with self._write() as conn:
            return bool(
                conn.execute(
                    update(steps)
                    .where(
                        steps.c.id == step_id,
                        steps.c.completed_at.is_(None),
                        or_(steps.c.lease_until.is_(None), steps.c.lease_until < now),
                    )
                    .values(lease_until=now + timedelta(seconds=seconds))
                ).rowcount
            )

    def step_completed(self, step_id: int, now: datetime) -> None:
        with self._write() as conn:
            conn.execute(update(steps).where(steps.c.id == step_id).values(completed_at=now))


def _record(row: object) -> StepRecord | None:
    if row is None:
        return None
    data = dict(row)  # type: ignore[call-overload]
    return StepRecord(
        data["id"], data["execution_id"], data["command_id"], data["error"], data["completed_at"]
    )
