"""Storage for checking a code: the replay rule (a time step once used by a person is refused to
them: the primary key of `mfa_used_codes`, so of two replicas that get the same code at once one
insert wins), wrong codes, and the lock-out they lead to (counted under a lock of the person's
enrolment row, and set by a compare-and-set on its `locked_until`, so it is set, and audited,
once)."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from bot.store.db import Store
from bot.store.records import Event
from bot.store.schema import mfa_enrolments, mfa_failures, mfa_used_codes

# The writes made while Slack waits for the ack (3 s): given up (store.Busy) rather than late.
BEFORE_ACK_SECONDS = 1.0


# A used step is kept this long: far past the ±1 step a code is good for, so that a replica whose
# clock runs behind still finds it; older rows are dropped as the person spends the next code.
KEEP_USED_STEPS = timedelta(days=1)


class MfaVerifying:
    def __init__(self, store: Store) -> None:
        self.store = store

    def spend(self, slack_user_id: str, step: int, now: datetime) -> bool:
        """Mark time step `step` used by the person; False when it already was (a replay).
        Raises store.Busy when it cannot be written before the ack is due."""
        try:
            with self.store.quick_transaction(BEFORE_ACK_SECONDS) as conn:
                conn.execute(
                    insert(mfa_used_codes).values(slack_user_id=slack_user_id, step=step, used_at=now)
                )
                conn.execute(
                    delete(mfa_used_codes).where(
                        mfa_used_codes.c.slack_user_id == slack_user_id,
                        mfa_used_codes.c.used_at < now - KEEP_USED_STEPS,
                    )
                )
        except IntegrityError:
            return False
        return True

    def wrong_code(
        self, slack_user_id: str, now: datetime, *, limit: int, window: timedelta, lock_for: timedelta
    ) -> datetime | None:
        """Record a wrong code. When it makes `limit` within `window` (since any earlier lock
        ended), lock the person's approvals until `now + lock_for` and return that time; the lock
        and its audit event are written once, however many replicas got a wrong code at once.
        Raises store.Busy when it cannot be written before the ack is due."""
        with self.store.quick_transaction(BEFORE_ACK_SECONDS) as conn:
            # The person's enrolment row is locked first (FOR UPDATE on PostgreSQL; SQLite lets one
            # writer in at a time anyway): two wrong codes at once are counted one after the
            # other, so the one that makes `limit` sees the other and the lock is never missed.
            locked_until = conn.execute(
                select(mfa_enrolments.c.locked_until)
                .where(mfa_enrolments.c.slack_user_id == slack_user_id)
                .with_for_update()
            ).scalar()
            conn.execute(insert(mfa_failures).values(slack_user_id=slack_user_id, at=now))
            conn.execute(  # wrong codes older than the window can never count again
                delete(mfa_failures).where(
                    mfa_failures.c.slack_user_id == slack_user_id, mfa_failures.c.at < now - window
                )
            )
            since = now - window
            if locked_until is not None and locked_until > since:
                since = locked_until  # wrong codes before a lock ended do not count again
            wrong = conn.execute(
                select(func.count())
                .select_from(mfa_failures)
                .where(mfa_failures.c.slack_user_id == slack_user_id, mfa_failures.c.at > since)
            ).scalar_one()
            if wrong < limit:
                return None
            until = now + lock_for
            locked = conn.execute(
                update(mfa_enrolments)
                .where(
                    mfa_enrolments.c.slack_user_id == slack_user_id,
                    or_(mfa_enrolments.c.locked_until.is_(None), mfa_enrolments.c.locked_until <= now),
                )
                .values(locked_until=until)
            ).rowcount
            if locked:
                self.store.append_event(
                    conn,
                    None,
                    now,
                    Event("mfa_locked", slack_user_id, {"until": until.isoformat(), "wrong_codes": wrong}),
                )
            return until
