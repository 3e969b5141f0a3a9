"""Storage for asking a batch: the pending batch and its users recorded at once, its card, and its
closing when the card could not be posted."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert, update
from sqlalchemy.exc import IntegrityError

from bot.store.batch_base import BatchStoreBase
from bot.store.errors import BatchUsersOpen
from bot.store.fit import clip
from bot.store.records import Event
from bot.store.schema import batches, requests


class BatchAskingStore(BatchStoreBase):
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
        command_id: int | None = None,
        stages: str | None = None,
        run_at: datetime | None = None,
    ) -> int:
        """Record a pending batch and one pending request per user, in one transaction. Raises
        BatchUsersOpen when one of the users got an open request meanwhile (the partial unique
        index on open requests refuses it; nothing is written), or when its command
        (`command_id`, unique) created a batch already."""
        expires = run_at or now + ttl  # a batch for later may be approved until its time
        try:
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
                        command_id=command_id,
                        stages=stages,
                        run_at=run_at,
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
                            target_name=clip("target_name", user.get("target_name")),
                            target_email=clip("target_email", user.get("target_email")),
                            target_status=clip("target_status", user.get("target_status")),
                            created_at=now,
                            expires_at=expires,
                            attempts=0,
                            retryable=False,
                            balances=user.get("balances"),
                            batch_id=batch_id,
                            stages=stages,
                        )
                        .returning(requests.c.id)
                    ).scalar_one()
                    self.store.append_event(
                        conn,
                        request_id,
                        now,
                        Event("requested", requested_by, {"reason": reason, "batch": batch_id}),
                    )
        except IntegrityError:
            raise BatchUsersOpen() from None
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
