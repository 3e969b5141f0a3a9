"""Storage for deciding: approvals, the one claim that allows the DELETE, denials, expiry."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, ScalarSelect, Table, func, insert, literal, select
from sqlalchemy.exc import IntegrityError

from bot.store import schema
from bot.store.base import StoreBase
from bot.store.records import Event
from bot.store.schema import approvals, requests


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


class DecidingStore(StoreBase):
    def due_for_expiry(self, now: datetime) -> list[int]:
        with self._read() as conn:
            query = select(requests.c.id).where(requests.c.status == "pending", requests.c.expires_at <= now)
            return list(conn.execute(query).scalars())

    def cardless_pending(self, created_before: datetime) -> list[int]:
        """Pending requests whose card was never posted (the process stopped in between)."""
        with self._read() as conn:
            query = select(requests.c.id).where(
                requests.c.status == "pending",
                requests.c.message_ts.is_(None),
                requests.c.created_at < created_before,
                requests.c.batch_id.is_(None),  # a batch's users share the batch's card
            )
            return list(conn.execute(query).scalars())

    def add_approval(
        self, request_id: int, approver: str, now: datetime, detail: dict[str, str] | None = None
    ) -> bool:
        """Record an approval while the request is pending and unexpired; False if it was not
        (already approved by this person, or no longer pending). `detail` goes into its audit
        event (e.g. `{"step_up": "totp"}`)."""
        source = select(requests.c.id, literal(approver), literal(now, schema.UTCDateTime)).where(
            requests.c.id == request_id, requests.c.status == "pending", requests.c.expires_at > now
        )
        try:
            with self._write() as conn:
                rows = conn.execute(
                    insert(approvals).from_select(["request_id", "approver", "created_at"], source)
                ).rowcount
                if rows:
                    self._event(conn, request_id, now, Event("approved", approver, detail))
                return bool(rows)
        except IntegrityError:
            return False

    def claim(self, request_id: int, now: datetime, *, actor: str | None = None) -> bool:
        """pending → executing, once: only if unexpired and approved by enough people other than
        the requester. The caller that gets True (and only that one) calls sFOX."""
        approved = approvals_by_others(approvals, approvals.c.request_id, requests)
        return self._transition(
            request_id,
            now,
            where=[
                requests.c.status == "pending",
                requests.c.expires_at > now,
                approved >= requests.c.required_approvals,
            ],
            values={
                "status": "executing",
                "decided_at": now,
                "claimed_at": now,
                "attempts": requests.c.attempts + 1,
            },
            event=Event("claimed", actor),
            notices=[("card", None)],
        )

    def claim_retry(self, request_id: int, actor: str, now: datetime) -> bool:
        """failed (and marked retryable) → executing, once, for an explicit retry by an approver."""
        return self._transition(
            request_id,
            now,
            where=[requests.c.status == "failed", requests.c.retryable.is_(True)],
            values={
                "status": "executing",
                "claimed_at": now,
                "attempts": requests.c.attempts + 1,
                "retryable": False,
                "completed_at": None,
            },
            event=Event("retry_claimed", actor),
            notices=[("card", None)],
        )

    def deny(self, request_id: int, actor: str, now: datetime, reply: str, reason: str | None = None) -> bool:
        return self._transition(
            request_id,
            now,
            where=[requests.c.status == "pending", requests.c.expires_at > now],
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
