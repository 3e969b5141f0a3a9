"""What every part of the batches' store shares: the record of a batch, its reads, and the bulk
change of a batch's users (`requests` rows with `batch_id`) with each user's audit event. The
writes are in one module per use case: asking (bot/store/batch_asking.py), deciding
(bot/store/batch_deciding.py), running (bot/store/batch_running.py); bot/store/batches.py puts
them together as `BatchStore`."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, func, or_, select, update

from bot.policy.stages import load_eligible
from bot.store import schema
from bot.store.db import Store
from bot.store.records import Event, RequestRecord, record_as_dict
from bot.store.schema import batch_approvals, batches, requests

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
    command_id: int | None = None  # the journalled command that created it (bot/runtime/commands.py)
    stages: str | None = None  # the stages it was asked under, JSON (bot/policy/stages.py)
    run_at: datetime | None = None  # its runner starts at this instant, never before (`--at`)
    approved_by: tuple[str, ...] = ()
    # For each of `approved_by`, the stages that approval may fill (None: recorded before stages).
    approval_stages: tuple[tuple[int, ...] | None, ...] = ()

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


class BatchStoreBase:
    """The store a batch's use cases share, and its reads."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def get(self, batch_id: int) -> BatchRecord | None:
        with self.store.reader() as conn:
            row = conn.execute(select(batches).where(batches.c.id == batch_id)).mappings().first()
            if row is None:
                return None
            approvals = conn.execute(
                select(batch_approvals.c.approver, batch_approvals.c.stages)
                .where(batch_approvals.c.batch_id == batch_id)
                .order_by(batch_approvals.c.id)
            ).all()
            return BatchRecord(
                **row,
                approved_by=tuple(a for a, _ in approvals),
                approval_stages=tuple(None if e is None else load_eligible(e) for _, e in approvals),
            )

    def batch_for_command(self, command_id: int) -> BatchRecord | None:
        """The batch a journalled command created (bot/runtime/commands.py), if any."""
        with self.store.reader() as conn:
            batch_id = conn.execute(select(batches.c.id).where(batches.c.command_id == command_id)).scalar()
        return self.get(batch_id) if batch_id is not None else None

    def open_requests_for(self, user_ids: Sequence[str]) -> dict[str, int]:
        """Which of these sFOX users already have an open request (single or batch): id → request."""
        found: dict[str, int] = {}
        with self.store.reader() as conn:
            for start in range(0, len(user_ids), 500):
                chunk = list(user_ids[start : start + 500])
                rows = conn.execute(
                    select(requests.c.sfox_user_id, requests.c.id).where(
                        requests.c.sfox_user_id.in_(chunk), requests.c.status.in_(schema.HELD_STATUSES)
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
