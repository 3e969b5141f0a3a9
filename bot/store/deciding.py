"""Storage for deciding: approvals, the one claim that allows the DELETE, denials, expiry."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Column, ColumnElement, Connection, ScalarSelect, Table, func, insert, literal, select
from sqlalchemy.exc import IntegrityError

from bot.policy import stages as staging
from bot.store import schema
from bot.store.base import SINGLE, StoreBase
from bot.store.records import Event, RequestRecord
from bot.store.schema import approvals, batches, requests


def batch_running() -> ColumnElement[bool]:
    """The user's batch is running (not paused, cancelled, done): the batch's own claims hold it,
    so a paused batch sends nothing, whoever asks."""
    return (
        select(batches.c.id)
        .where(batches.c.id == requests.c.batch_id, batches.c.status == "running")
        .correlate(requests)
        .exists()
    )


def approvals_by_others(table: Table, key: Column[int], owner: Table) -> ScalarSelect[int]:
    """How many approvals in `table` of the `owner` row (a request, or a batch) count: those of
    anyone but its requester. The two-person rule of bot/policy/rules.py, written again in SQL on
    purpose (defence in depth): an approval row put in past the Python rule, by a bug or a hand,
    still never counts. The claim of a request and the start of a batch both count with it."""
    return (
        select(func.count())
        .select_from(table)
        .where(key == owner.c.id, table.c.approver != owner.c.requested_by)
        .correlate(owner)
        .scalar_subquery()
    )


def stage_accounting(
    conn: Connection, table: Table, key: Column[int], owner: Table, owner_id: int
) -> tuple[tuple[staging.Stage, ...], list[tuple[str, tuple[int, ...]]], str] | None:
    """The stages `owner_id` (a request, or a batch) was asked under, its approvals in order with
    the stages each may fill, and its requester, read on `conn` (the claim's own transaction)."""
    row = conn.execute(
        select(owner.c.stages, owner.c.required_approvals, owner.c.requested_by).where(owner.c.id == owner_id)
    ).first()
    if row is None:
        return None
    rows = conn.execute(select(table.c.approver, table.c.stages).where(key == owner_id).order_by(table.c.id))
    pairs = [(approver, staging.load_eligible(eligible)) for approver, eligible in rows]
    return staging.load_stages(row.stages, row.required_approvals), pairs, row.requested_by


def stages_met(conn: Connection, table: Table, key: Column[int], owner: Table, owner_id: int) -> bool:
    """Whether every stage of `owner_id` is met by its approvals (a person counting once, the
    requester never): the claim's second condition, next to its SQL count. Approvals are only
    ever added, so once true it stays true; the claim's conditional UPDATE keeps it exactly-once."""
    found = stage_accounting(conn, table, key, owner, owner_id)
    return found is not None and staging.all_met(*found)


def approved_detail(
    conn: Connection, table: Table, key: Column[int], owner: Table, owner_id: int, approver: str
) -> dict[str, Any]:
    """The audit detail of `approver`'s approval: the stage it fills now (None: it fills none,
    every stage it could fill being full, or it is the requester's)."""
    found = stage_accounting(conn, table, key, owner, owner_id)
    if found is None:
        return {"stage": None}
    stages, pairs, requester = found
    index = staging.stage_filled(stages, pairs, requester, approver)
    if index is None:
        return {"stage": None}
    return {"stage": stages[index].plain_label(), "stage_index": index}


class DecidingStore(StoreBase):
    def due_for_expiry(self, now: datetime) -> list[int]:
        with self._read() as conn:
            query = select(requests.c.id).where(requests.c.status == "pending", requests.c.expires_at <= now)
            return list(conn.execute(query).scalars())

    def cardless_pending(self, created_before: datetime) -> list[int]:
        """Pending requests whose card was never posted (the process stopped in between). A watch
        that became pending (bot/requests/watching.py) owes its card since its last read."""
        with self._read() as conn:
            query = select(requests.c.id).where(
                requests.c.status == "pending",
                requests.c.message_ts.is_(None),
                func.coalesce(requests.c.watch_read_at, requests.c.created_at) < created_before,
                SINGLE,  # a batch's users share the batch's card
            )
            return list(conn.execute(query).scalars())

    def add_approval(
        self,
        request_id: int,
        approver: str,
        now: datetime,
        stages: Sequence[int] | None = None,
        *,
        step_up: str | None = None,
    ) -> bool:
        """Record an approval while the request is pending and unexpired; False if it was not
        (already approved by this person, or no longer pending). `stages`: the indexes of the
        request's stages the approver may fill (None: the first); its audit event says which
        stage it fills, and the second factor it came with (`step_up`, e.g. "totp"; bot/mfa)."""
        eligible = staging.dump_eligible(staging.LEGACY_STAGES if stages is None else stages)
        source = select(
            requests.c.id, literal(approver), literal(now, schema.UTCDateTime), literal(eligible)
        ).where(
            requests.c.id == request_id, requests.c.status == "pending", requests.c.expires_at > now, SINGLE
        )
        try:
            with self._write() as conn:
                rows = conn.execute(
                    insert(approvals).from_select(["request_id", "approver", "created_at", "stages"], source)
                ).rowcount
                if rows:
                    detail = approved_detail(
                        conn, approvals, approvals.c.request_id, requests, request_id, approver
                    )
                    if step_up:
                        detail = {**detail, "step_up": step_up}
                    self._event(conn, request_id, now, Event("approved", approver, detail))
                return bool(rows)
        except IntegrityError:
            return False

    def claim(self, request_id: int, now: datetime, *, actor: str | None = None) -> bool:
        """pending → executing, once: only if unexpired, approved by enough people other than the
        requester (SQL), and every stage met (the matching, over the approvals read in the same
        transaction). The caller that gets True (and only that one) calls sFOX. A request to run
        later (`run_at`) is never claimed here: `schedule` takes it, `claim_due` at its time. A
        batch's user never: `claim_batch_user` is its batch's claim."""
        return self._approved_transition(
            request_id,
            now,
            where=[
                requests.c.status == "pending",
                requests.c.expires_at > now,
                requests.c.run_at.is_(None),
                SINGLE,
            ],
            values=self._claimed(now),
            event=Event("claimed", actor),
            notices=[("card", None)],
        )

    def claim_batch_user(self, request_id: int, now: datetime) -> bool:
        """A batch's user, pending → executing, once, by its batch's runner: the claim's very
        conditions (unexpired: its batch's approval holds `RUN_WITHIN`; approved by enough people
        other than the requester; every stage met), while its batch runs."""
        return self._approved_transition(
            request_id,
            now,
            where=[
                requests.c.status == "pending",
                requests.c.expires_at > now,
                requests.c.batch_id.is_not(None),
                batch_running(),
            ],
            values=self._claimed(now),
            event=Event("claimed"),
            notices=[],
        )

    def schedule(self, request_id: int, now: datetime, reply: str, *, actor: str | None = None) -> bool:
        """pending → scheduled, once, under the very conditions of `claim` (unexpired, the SQL
        count, every stage met), for a request to run at `run_at`: nothing is sent to sFOX now."""
        return self._approved_transition(
            request_id,
            now,
            where=[
                requests.c.status == "pending",
                requests.c.expires_at > now,
                requests.c.run_at.is_not(None),
                requests.c.run_at > now,
                SINGLE,
            ],
            values={"status": "scheduled", "decided_at": now},
            event=Event("scheduled", actor),
            notices=[("card", None), ("reply", reply)],
        )

    def claim_due(self, request_id: int, now: datetime, reply: str | None, detail: dict[str, Any]) -> bool:
        """scheduled → executing at its time and never before (`run_at <= now`), once across
        replicas, with the approvals counted again as `claim` counts them. `reply`: what the
        thread is told on the way (how late, after a restart); `detail`: the claim's audit detail."""
        return self._approved_transition(
            request_id,
            now,
            where=[requests.c.status == "scheduled", requests.c.run_at <= now, SINGLE],
            values=self._claimed(now, decided=False),  # decided when it was scheduled
            event=Event("claimed", detail=detail),
            notices=[("card", None), *([("reply", reply)] if reply else [])],
        )

    def due_scheduled(self, now: datetime) -> list[RequestRecord]:
        """Single requests whose time has come (a batch's users run with their batch)."""
        with self._read() as conn:
            query = select(requests).where(requests.c.status == "scheduled", requests.c.run_at <= now, SINGLE)
            return self._with_approvals(
                conn, conn.execute(query.order_by(requests.c.run_at)).mappings().all()
            )

    def next_run_at(self) -> datetime | None:
        """The earliest time a scheduled single request falls due, or None."""
        with self._read() as conn:
            query = select(func.min(requests.c.run_at)).where(requests.c.status == "scheduled", SINGLE)
            return conn.execute(query).scalar_one_or_none()

    def _approved_transition(
        self,
        request_id: int,
        now: datetime,
        *,
        where: list[Any],
        values: dict[str, Any],
        event: Event,
        notices: list[tuple[str, str | None]],
    ) -> bool:
        """The one conditional change that stands for "enough people approved": approved by
        enough people other than the requester (SQL) and every stage met (the matching), on top of
        `where`. Claiming now, scheduling for later and claiming at the time all go through it."""
        approved = approvals_by_others(approvals, approvals.c.request_id, requests)
        return self._transition(
            request_id,
            now,
            where=[*where, approved >= requests.c.required_approvals],
            values=values,
            event=event,
            notices=notices,
            guard=lambda conn: stages_met(conn, approvals, approvals.c.request_id, requests, request_id),
        )

    @staticmethod
    def _claimed(now: datetime, *, decided: bool = True) -> dict[str, Any]:
        values: dict[str, Any] = {
            "status": "executing",
            "claimed_at": now,
            "attempts": requests.c.attempts + 1,
        }
        return {**values, "decided_at": now} if decided else values

    def deny(self, request_id: int, actor: str, now: datetime, reply: str, reason: str | None = None) -> bool:
        return self._transition(
            request_id,
            now,
            where=[requests.c.status == "pending", requests.c.expires_at > now, SINGLE],
            values={
                "status": "denied",
                "denied_by": actor,
                "decided_at": now,
                "completed_at": now,
                "deny_reason": reason or None,
            },
            event=Event("denied", actor, {"reason": reason} if reason else None),
            notices=[("card", None), ("reply", reply)],
        )

    def cancel_scheduled(
        self, request_id: int, actor: str, now: datetime, reply: str, reason: str | None = None
    ) -> bool:
        """scheduled → cancelled, before its time only: at or past `run_at` it belongs to the
        claim (a Cancel racing the time either wins here or finds it executing)."""
        return self._transition(
            request_id,
            now,
            where=[requests.c.status == "scheduled", requests.c.run_at > now, SINGLE],
            values={
                "status": "cancelled",
                "denied_by": actor,
                "completed_at": now,
                "deny_reason": reason or None,
            },
            event=Event("cancelled", actor, {"reason": reason} if reason else None),
            notices=[("card", None), ("reply", reply)],
        )

    def expire(self, request_id: int, now: datetime) -> bool:
        return self._transition(
            request_id,
            now,
            where=[requests.c.status == "pending", requests.c.expires_at <= now],
            values={"status": "expired", "completed_at": now},
            event=Event("expired"),
            notices=[("card", None)],
        )

    def abandon(self, request_id: int, now: datetime, error: str) -> bool:
        """A pending request whose card could not be posted: nobody can approve it, so close it
        (and free its sFOX user for a new request)."""
        return self._transition(
            request_id,
            now,
            where=[requests.c.status == "pending", requests.c.message_ts.is_(None)],
            values={"status": "failed", "completed_at": now, "error": error, "retryable": False},
            event=Event("card_failed", detail=error),
            notices=[],
        )
