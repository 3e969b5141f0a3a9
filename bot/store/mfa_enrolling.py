"""Storage for enrolling in the second factor: a person's sealed TOTP secret, put in once (a
second enrolment is refused: only an operator's `sfox-bot mfa reset` removes one, so a stolen
Slack session cannot swap in its own authenticator), read back, and removed, each change with
its audit event (an event about a person: no request)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, insert, select
from sqlalchemy.exc import IntegrityError

from bot.store.db import Store
from bot.store.mfa_verifying import BEFORE_ACK_SECONDS
from bot.store.records import Event
from bot.store.schema import mfa_enrolments, mfa_failures, mfa_used_codes


@dataclass(frozen=True)
class Enrolment:
    slack_user_id: str
    secret_sealed: str = ""  # sealed (bot/mfa/sealing.py): never the secret itself
    enrolled_at: datetime | None = None
    locked_until: datetime | None = None

    def __repr__(self) -> str:
        return f"Enrolment({self.slack_user_id!r}, enrolled_at={self.enrolled_at!r})"


class MfaEnrolling:
    def __init__(self, store: Store) -> None:
        self.store = store

    def get(self, slack_user_id: str) -> Enrolment | None:
        with self.store.reader() as conn:
            row = (
                conn.execute(select(mfa_enrolments).where(mfa_enrolments.c.slack_user_id == slack_user_id))
                .mappings()
                .first()
            )
        return Enrolment(**row) if row else None

    def enrol(self, slack_user_id: str, secret_sealed: str, step: int, now: datetime) -> bool:
        """Enrol the person with the secret their first code matched (at time step `step`, which
        is spent: that code cannot also approve). False when they are enrolled already. Raises
        store.Busy when it cannot be written before the ack is due."""
        try:
            with self.store.quick_transaction(BEFORE_ACK_SECONDS) as conn:
                conn.execute(
                    insert(mfa_enrolments).values(
                        slack_user_id=slack_user_id, secret_sealed=secret_sealed, enrolled_at=now
                    )
                )
                conn.execute(
                    insert(mfa_used_codes).values(slack_user_id=slack_user_id, step=step, used_at=now)
                )
                self.store.append_event(conn, None, now, Event("mfa_enrolled", slack_user_id))
        except IntegrityError:
            return False
        return True

    def reset(self, slack_user_id: str, now: datetime, by: str) -> bool:
        """Remove the person's enrolment (with their lock-out, wrong codes and used steps: the
        steps belong to the old secret, and the new one starts afresh); False when there was
        none."""
        with self.store.transaction() as conn:
            removed = conn.execute(
                delete(mfa_enrolments).where(mfa_enrolments.c.slack_user_id == slack_user_id)
            ).rowcount
            if not removed:
                return False
            conn.execute(delete(mfa_failures).where(mfa_failures.c.slack_user_id == slack_user_id))
            conn.execute(delete(mfa_used_codes).where(mfa_used_codes.c.slack_user_id == slack_user_id))
            self.store.append_event(
                conn, None, now, Event("mfa_reset", None, {"user": slack_user_id, "by": by})
            )
        return True
