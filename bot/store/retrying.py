"""Storage for a retry (issue 32): a failed request sent again, by an approver's Retry or by its
batch's runner, each a compare-and-set that holds the retry's rules itself; and the Retry a card
stops offering once it is too late. The rules and their words: bot/policy/retrying.py."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.exc import IntegrityError

from bot.store.base import SINGLE
from bot.store.deciding import DecidingStore, batch_running
from bot.store.outcomes import CLAIM_AGAIN
from bot.store.records import Event, RequestRecord
from bot.store.schema import requests


def no_newer_request() -> ColumnElement[bool]:
    """No later request for the same sFOX user exists, whatever became of it: a failed request
    behind a newer one is never sent again (bot/policy/retrying.py says why)."""
    later = requests.alias("later")
    return ~(
        select(later.c.id)
        .where(later.c.sfox_user_id == requests.c.sfox_user_id, later.c.id > requests.c.id)
        .correlate(requests)
        .exists()
    )


class RetryingStore(DecidingStore):
    def claim_retry(
        self, request_id: int, actor: str, now: datetime, window: timedelta, *, step_up: str | None = None
    ) -> bool:
        """failed (and marked retryable) → executing, once, for an explicit retry by an approver
        (bot/requests/deciding.py asked the rules first). The retry's own rules, again in SQL so no
        race slips past them: a single request, failed less than `window` ago, and no newer request
        for its sFOX user (bot/policy/retrying.py). `step_up`: the factor it came with (audited)."""
        try:
            return self._transition(
                request_id,
                now,
                where=[
                    *self._retryable(),
                    SINGLE,
                    requests.c.completed_at > now - window,
                    no_newer_request(),
                ],
                values=self._retried(now),
                event=Event("retry_claimed", actor, {"step_up": step_up} if step_up else None),
                notices=[("card", None)],
            )
        except IntegrityError:
            return False  # a newer request opened meanwhile: the one-open-request index refused it

    def claim_batch_user_again(self, request_id: int, now: datetime) -> bool:
        """A batch's user sFOX certainly did nothing with (a 429, or a runner that stopped before
        its DELETE: CLAIM_AGAIN) → executing, once, by its batch's runner: while the batch runs,
        within its users' time (`expires_at`, as for their first claim), and with no newer request
        for the same sFOX user. Never for a failure that may have reached sFOX."""
        try:
            return self._transition(
                request_id,
                now,
                where=[
                    *self._retryable(),
                    requests.c.outcome.in_(sorted(CLAIM_AGAIN)),
                    requests.c.expires_at > now,
                    requests.c.batch_id.is_not(None),
                    batch_running(),
                    no_newer_request(),
                ],
                values=self._retried(now),
                event=Event("retry_claimed", "batch"),
                notices=[],
            )
        except IntegrityError:
            return False

    def close_retry(self, request_id: int, now: datetime, why: str, reply: str) -> bool:
        """A failed request's Retry withdrawn (too old, or behind a newer request): the card stops
        offering it and its thread says why (`reply`), once. Nothing is sent either way."""
        return self._transition(
            request_id,
            now,
            where=[*self._retryable(), SINGLE],
            values={"retryable": False},
            event=Event("retry_closed", detail={"why": why}),
            notices=[("card", None), ("reply", reply)],
        )

    def newer_request(self, record: RequestRecord) -> RequestRecord | None:
        """The newest request for `record`'s sFOX user asked after it, if any (what makes a
        Retry of `record` too late; the claim holds the same in SQL: `no_newer_request`)."""
        with self._read() as conn:
            newer_id = conn.execute(
                select(func.max(requests.c.id)).where(
                    requests.c.sfox_user_id == record.sfox_user_id, requests.c.id > record.id
                )
            ).scalar_one_or_none()
        return None if newer_id is None else self.get(newer_id)

    @staticmethod
    def _retryable() -> list[ColumnElement[bool]]:
        return [requests.c.status == "failed", requests.c.retryable.is_(True)]

    @classmethod
    def _retried(cls, now: datetime) -> dict[str, Any]:
        return {**cls._claimed(now, decided=False), "retryable": False, "completed_at": None}
