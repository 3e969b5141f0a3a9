"""Storage for deciding a batch: approvals (one covers exactly the listed users) and the claim
that starts the batch once enough approvers other than the requester approved, denial, expiry."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import case, insert, literal, select, update
from sqlalchemy.exc import IntegrityError

from bot.policy import stages as staging
from bot.store import schema
from bot.store.batch_base import BatchStoreBase
from bot.store.deciding import approvals_by_others, approved_detail, stages_met
from bot.store.records import Event
from bot.store.schema import approvals, batch_approvals, batches, requests


class BatchDecidingStore(BatchStoreBase):
    def approve(
        self,
        batch_id: int,
        actor: str,
        now: datetime,
        run_within: timedelta,
        stages: Sequence[int] | None = None,
        *,
        step_up: str | None = None,
    ) -> str:
        """Record `actor`'s approval of a pending, unexpired batch, and the same approval on each
        of its pending users (one approval covers the listed users and nobody else). Returns
        "started" when it was the last one needed (the requester's own approval never counts: the
        batch is now `running` and its users may be claimed until `now + run_within`), "scheduled"
        when it was and the batch is for later (`run_at`: it starts then, its users claimable
        until `run_at + run_within`), "recorded", "duplicate" or "closed". `stages`: the batch's stages the approver may fill (None: the
        first); the batch starts only when every stage is met, a person counting once."""
        eligible = staging.dump_eligible(staging.LEGACY_STAGES if stages is None else stages)
        source = select(
            batches.c.id, literal(actor), literal(now, schema.UTCDateTime), literal(eligible)
        ).where(batches.c.id == batch_id, batches.c.status == "pending", batches.c.expires_at > now)
        try:
            with self.store.transaction() as conn:
                added = conn.execute(
                    insert(batch_approvals).from_select(
                        ["batch_id", "approver", "created_at", "stages"], source
                    )
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
                        [
                            {"request_id": i, "approver": actor, "created_at": now, "stages": eligible}
                            for i in ids
                        ],
                    )
                detail = approved_detail(
                    conn, batch_approvals, batch_approvals.c.batch_id, batches, batch_id, actor
                )
                if step_up:
                    detail = {**detail, "step_up": step_up}  # the second factor it came with (bot/mfa)
                for request_id in ids:
                    self.store.append_event(
                        conn, request_id, now, Event("approved", actor, {"batch": batch_id, **detail})
                    )
                have, required = conn.execute(
                    select(
                        approvals_by_others(batch_approvals, batch_approvals.c.batch_id, batches),
                        batches.c.required_approvals,
                    ).where(batches.c.id == batch_id)
                ).one()
                if have < required or not stages_met(
                    conn, batch_approvals, batch_approvals.c.batch_id, batches, batch_id
                ):
                    return "recorded"
                run_at = conn.execute(
                    update(batches)
                    .where(batches.c.id == batch_id, batches.c.status == "pending")
                    .values(
                        status=case((batches.c.run_at > now, "scheduled"), else_="running"), decided_at=now
                    )
                    .returning(batches.c.run_at)
                ).scalar_one_or_none()
                later = run_at is not None and run_at > now
                # Approved users are claimed one by one as the pace allows: they must not expire
                # while they wait their turn (or their batch's time).
                conn.execute(
                    update(requests)
                    .where(requests.c.batch_id == batch_id, requests.c.status == "pending")
                    .values(expires_at=(run_at if later else now) + run_within)
                )
                return "scheduled" if later else "started"
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
