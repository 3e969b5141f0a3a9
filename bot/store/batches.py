"""The batches' records: the `batches` and `batch_approvals` tables, and the bulk changes to a
batch's users (`requests` rows with `batch_id`). Every change is one transaction that also
appends each user's audit event, like bot/store.py does for a single request; transitions that
must happen once are conditional UPDATEs.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, func, insert, literal, or_, select, update
from sqlalchemy.exc import IntegrityError

from bot.store import schema
from bot.store.db import Store
from bot.store.records import Event, RequestRecord, record_as_dict
from bot.store.schema import approvals, batch_approvals, batches, requests

IN_FLIGHT = ("executing", "unknown")


@dataclass(frozen=True)
class BatchRecord:
    id: int
    requested_by: str
    channel_id: str
    message_ts: str | None
    reason: str
    status: str
    required_approvals: int
    created_at: datetime
    expires_at: datetime
    decided_at: datetime | None
    completed_at: datetime | None
    denied_by: str | None
    stopped_by: str | None
    excluded: str | None
    balances_skipped: bool
    runner: str | None
    runner_until: datetime | None
    summary_at: datetime | None
    approved_by: tuple[str, ...] = ()

    @property
    def left_out(self) -> dict[str, list[dict[str, Any]]]:
        """The users left out before the card: {"unknown": [...], "funds": [...], "lookup_failed": [...]}."""
        try:
            data = json.loads(self.excluded or "{}")
        except ValueError:
            data = {}
        return {k: list(data.get(k) or []) for k in ("unknown", "funds", "lookup_failed")}

    def as_dict(self) -> dict[str, Any]:
        out = record_as_dict(self)
        out["excluded"] = self.left_out
        return out


class BatchStore:
    def __init__(self, store: Store) -> None:
        self.store = store

    # -- reads ---------------------------------------------------------------------------------

    def get(self, batch_id: int) -> BatchRecord | None:
        with self.store.reader() as conn:
            row = conn.execute(select(batches).where(batches.c.id == batch_id)).mappings().first()
            if row is None:
                return None
            approvers = conn.execute(
                select(batch_approvals.c.approver)
                .where(batch_approvals.c.batch_id == batch_id)
                .order_by(batch_approvals.c.id)
            ).scalars()
            return BatchRecord(**row, approved_by=tuple(approvers))

    def open_requests_for(self, user_ids: Sequence[str]) -> dict[str, int]:
        """Which of these sFOX users already have an open request (single or batch): id → request."""
        found: dict[str, int] = {}
        with self.store.reader() as conn:
            for start in range(0, len(user_ids), 500):
                chunk = list(user_ids[start : start + 500])
                rows = conn.execute(
                    select(requests.c.sfox_user_id, requests.c.id).where(
                        requests.c.sfox_user_id.in_(chunk), requests.c.status.in_(schema.OPEN_STATUSES)
                    )
                )
                found.update({uid: rid for uid, rid in rows})
        return found

    def counts(self, batch_id: int) -> dict[str, int]:
        with self.store.reader() as conn:
            rows = conn.execute(
                select(requests.c.status, func.count())
                .where(requests.c.batch_id == batch_id)
                .group_by(requests.c.status)
            )
            return {status: n for status, n in rows}

    def row_ids(self, batch_id: int, *statuses: str) -> list[int]:
        with self.store.reader() as conn:
            query = select(requests.c.id).where(requests.c.batch_id == batch_id)
            if statuses:
                query = query.where(requests.c.status.in_(statuses))
            return list(conn.execute(query.order_by(requests.c.id)).scalars())

    def preview(self, batch_id: int, limit: int = 10) -> list[tuple[str, str | None, str | None]]:
        """The first users of a batch: (sfox_user_id, name, e-mail)."""
        with self.store.reader() as conn:
            rows = conn.execute(
                select(requests.c.sfox_user_id, requests.c.target_name, requests.c.target_email)
                .where(requests.c.batch_id == batch_id)
                .order_by(requests.c.id)
                .limit(limit)
            )
            return [(u, n, e) for u, n, e in rows]

    def rows(self, batch_id: int) -> list[RequestRecord]:
        return sorted(self.store.history(limit=None, batch_id=batch_id), key=lambda r: r.id)

    def stale_rows(self, batch_id: int, claimed_before: datetime) -> list[RequestRecord]:
        """This batch's users whose DELETE outcome nobody is settling (the process died)."""
        return [r for r in self.store.stale_claims(claimed_before) if r.batch_id == batch_id]

    def due(self, now: datetime) -> tuple[list[int], list[int]]:
        """Pending batches past their expiry, and approved ones nobody is running (their runner
        died, or its lease ran out) or whose summary is still owed."""
        with self.store.reader() as conn:
            expired = conn.execute(
                select(batches.c.id).where(batches.c.status == "pending", batches.c.expires_at <= now)
            ).scalars()
            expired_ids = list(expired)
            orphans = conn.execute(
                select(batches.c.id).where(
                    or_(
                        and_(
                            batches.c.status.in_(("running", "cancelled")),
                            or_(batches.c.runner_until.is_(None), batches.c.runner_until < now),
                        ),
                        and_(
                            batches.c.status == "done",
                            batches.c.summary_at.is_(None),
                            or_(batches.c.runner_until.is_(None), batches.c.runner_until < now),
                        ),
                    )
                )
            ).scalars()
            return expired_ids, list(orphans)

    # -- asking ----------------------------------------------------------------------------------

    def create(
        self,
        *,
        requested_by: str,
        channel_id: str,
        reason: str,
        required_approvals: int,
        now: datetime,
        ttl: timedelta,
        users: Sequence[dict[str, Any]],
        excluded: dict[str, Any],
        balances_skipped: bool,
    ) -> int:
        """Record a pending batch and one pending request per user, in one transaction. Raises
        IntegrityError when one of the users got an open request meanwhile (nothing is written)."""
        expires = now + ttl
        with self.store.transaction() as conn:
            batch_id: int = conn.execute(
                insert(batches)
                .values(
                    requested_by=requested_by,
                    channel_id=channel_id,
                    reason=reason,
                    status="pending",
                    required_approvals=required_approvals,
                    created_at=now,
                    expires_at=expires,
                    excluded=json.dumps(excluded, sort_keys=True),
                    balances_skipped=balances_skipped,
                )
                .returning(batches.c.id)
            ).scalar_one()
            for user in users:
                request_id = conn.execute(
                    insert(requests)
                    .values(
                        sfox_user_id=user["sfox_user_id"],
                        reason=reason,
                        requested_by=requested_by,
                        channel_id=channel_id,
                        status="pending",
                        required_approvals=required_approvals,
                        target_name=user.get("target_name"),
                        target_email=user.get("target_email"),
                        target_status=user.get("target_status"),
                        created_at=now,
                        expires_at=expires,
                        attempts=0,
                        retryable=False,
                        balances=user.get("balances"),
                        batch_id=batch_id,
                    )
                    .returning(requests.c.id)
                ).scalar_one()
                self.store.append_event(
                    conn,
                    request_id,
                    now,
                    Event("requested", requested_by, {"reason": reason, "batch": batch_id}),
                )
        return batch_id

    def set_card(self, batch_id: int, ts: str) -> None:
        with self.store.transaction() as conn:
            conn.execute(
                update(batches)
                .where(batches.c.id == batch_id, batches.c.message_ts.is_(None))
                .values(message_ts=ts)
            )

    def card_failed(self, batch_id: int, now: datetime, error: str) -> None:
        """The card could not be posted: nobody can approve, so close the batch and its users."""
        with self.store.transaction() as conn:
            conn.execute(
                update(batches)
                .where(batches.c.id == batch_id, batches.c.status == "pending")
                .values(status="failed", completed_at=now)
            )
            self._rows_to(
                conn,
                batch_id,
                now,
                ("pending",),
                {"status": "failed", "error": error, "completed_at": now},
                Event("card_failed", detail=error),
            )

    # -- deciding --------------------------------------------------------------------------------

    def approve(self, batch_id: int, actor: str, now: datetime, run_within: timedelta) -> str:
        """Record `actor`'s approval of a pending, unexpired batch, and the same approval on each
        of its pending users (one approval covers the listed users and nobody else). Returns
        "started" when it was the last one needed (the batch is now `running` and its users may
        be claimed until `now + run_within`), "recorded", "duplicate" or "closed"."""
        source = select(batches.c.id, literal(actor), literal(now, schema.UTCDateTime)).where(
            batches.c.id == batch_id, batches.c.status == "pending", batches.c.expires_at > now
        )
        try:
            with self.store.transaction() as conn:
                added = conn.execute(
                    insert(batch_approvals).from_select(["batch_id", "approver", "created_at"], source)
                ).rowcount
                if not added:
                    return "closed"
                ids = list(
                    conn.execute(
                        select(requests.c.id).where(
                            requests.c.batch_id == batch_id, requests.c.status == "pending"
                        )
                    ).scalars()
                )
                if ids:
                    conn.execute(
                        insert(approvals),
                        [{"request_id": i, "approver": actor, "created_at": now} for i in ids],
                    )
                for request_id in ids:
                    self.store.append_event(
                        conn, request_id, now, Event("approved", actor, {"batch": batch_id})
                    )
                have = conn.execute(
                    select(func.count())
                    .select_from(batch_approvals)
                    .where(batch_approvals.c.batch_id == batch_id)
                ).scalar_one()
                required = conn.execute(
                    select(batches.c.required_approvals).where(batches.c.id == batch_id)
                ).scalar_one()
                if have < required:
                    return "recorded"
                conn.execute(
                    update(batches)
                    .where(batches.c.id == batch_id, batches.c.status == "pending")
                    .values(status="running", decided_at=now)
                )
                # Approved users are claimed one by one as the pace allows: they must not expire
                # while they wait their turn.
                conn.execute(
                    update(requests)
                    .where(requests.c.batch_id == batch_id, requests.c.status == "pending")
                    .values(expires_at=now + run_within)
                )
                return "started"
        except IntegrityError:
            return "duplicate"

    def deny(self, batch_id: int, actor: str, now: datetime) -> bool:
        with self.store.transaction() as conn:
            changed = conn.execute(
                update(batches)
                .where(batches.c.id == batch_id, batches.c.status == "pending", batches.c.expires_at > now)
                .values(status="denied", denied_by=actor, decided_at=now, completed_at=now)
            ).rowcount
            if changed:
                self._rows_to(
                    conn,
                    batch_id,
                    now,
                    ("pending",),
                    {"status": "denied", "denied_by": actor, "decided_at": now, "completed_at": now},
                    Event("denied", actor, {"batch": batch_id}),
                )
            return bool(changed)

    def expire(self, batch_id: int, now: datetime) -> bool:
        with self.store.transaction() as conn:
            changed = conn.execute(
                update(batches)
                .where(batches.c.id == batch_id, batches.c.status == "pending", batches.c.expires_at <= now)
                .values(status="expired", completed_at=now)
            ).rowcount
            if changed:
                self._rows_to(
                    conn,
                    batch_id,
                    now,
                    ("pending",),
                    {"status": "expired", "completed_at": now},
                    Event("expired", detail={"batch": batch_id}),
                )
            return bool(changed)

    # -- running ---------------------------------------------------------------------------------

    def set_status(self, batch_id: int, from_status: str, to_status: str, actor: str) -> bool:
        """Pause (running → paused) or resume (paused → running), once."""
        with self.store.transaction() as conn:
            return bool(
                conn.execute(
                    update(batches)
                    .where(batches.c.id == batch_id, batches.c.status == from_status)
                    .values(status=to_status, stopped_by=actor)
                ).rowcount
            )

    def cancel(self, batch_id: int, actor: str, now: datetime) -> int | None:
        """running or paused → cancelled: the users not yet started become `cancelled` (those in
        flight finish). Returns how many were cancelled, None if the batch was not running."""
        with self.store.transaction() as conn:
            changed = conn.execute(
                update(batches)
                .where(batches.c.id == batch_id, batches.c.status.in_(("running", "paused")))
                .values(status="cancelled", stopped_by=actor)
            ).rowcount
            if not changed:
                return None
            values = {"status": "cancelled", "completed_at": now, "retryable": False}
            event = Event("cancelled", actor, {"batch": batch_id})
            n = self._rows_to(conn, batch_id, now, ("pending",), values, event)
            # A user refused with 429 (sFOX did nothing) and waiting to be claimed again.
            rate_limited = [requests.c.http_status == 429, requests.c.retryable.is_(True)]
            return n + self._rows_to(conn, batch_id, now, ("failed",), values, event, *rate_limited)

    def take_runner(self, batch_id: int, runner: str, now: datetime, lease: timedelta) -> bool:
        """Become the one process running an approved batch (or renew that), compare-and-set on
        the lease: of two replicas' sweeps, one wins; a live runner keeps renewing it."""
        with self.store.transaction() as conn:
            return bool(
                conn.execute(
                    update(batches)
                    .where(
                        batches.c.id == batch_id,
                        batches.c.status.in_(("running", "cancelled", "done", "paused")),
                        or_(
                            batches.c.runner == runner,
                            batches.c.runner_until.is_(None),
                            batches.c.runner_until < now,
                        ),
                    )
                    .values(runner=runner, runner_until=now + lease)
                ).rowcount
            )

    def release_runner(self, batch_id: int, runner: str) -> None:
        with self.store.transaction() as conn:
            conn.execute(
                update(batches)
                .where(batches.c.id == batch_id, batches.c.runner == runner)
                .values(runner=None, runner_until=None)
            )

    def finish(self, batch_id: int, now: datetime) -> bool:
        """running or cancelled → done, once no user is pending or in flight."""
        busy = (
            select(func.count())
            .select_from(requests)
            .where(requests.c.batch_id == batch_id, requests.c.status.in_(("pending", *IN_FLIGHT)))
            .scalar_subquery()
        )
        with self.store.transaction() as conn:
            return bool(
                conn.execute(
                    update(batches)
                    .where(
                        batches.c.id == batch_id,
                        batches.c.status.in_(("running", "cancelled")),
                        busy == 0,
                    )
                    .values(status="done", completed_at=now)
                ).rowcount
            )

    def claim_summary(self, batch_id: int, now: datetime) -> bool:
        with self.store.transaction() as conn:
            return bool(
                conn.execute(
                    update(batches)
                    .where(
                        batches.c.id == batch_id, batches.c.status == "done", batches.c.summary_at.is_(None)
                    )
                    .values(summary_at=now)
                ).rowcount
            )

    def unclaim_summary(self, batch_id: int) -> None:
        with self.store.transaction() as conn:
            conn.execute(update(batches).where(batches.c.id == batch_id).values(summary_at=None))

    # -- helpers ---------------------------------------------------------------------------------

    def _rows_to(
        self,
        conn: Connection,
        batch_id: int,
        now: datetime,
        from_statuses: tuple[str, ...],
        values: dict[str, Any],
        event: Event,
        *where: Any,
    ) -> int:
        ids = list(
            conn.execute(
                update(requests)
                .where(requests.c.batch_id == batch_id, requests.c.status.in_(from_statuses), *where)
                .values(**values)
                .returning(requests.c.id)
            ).scalars()
        )
        for request_id in sorted(ids):
            self.store.append_event(conn, request_id, now, event)
        return len(ids)
