"""Storage for the intake API's spent signatures (`intake_replay`, migration 0017_intake_replay):
the primary key on a signature's digest is the replay rule, so of any number of replicas that get
the same signed request at once, one insert wins and the others fail on the key."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, insert
from sqlalchemy.exc import IntegrityError

from bot.store.db import Store
from bot.store.intake_schema import intake_replay


class SpentSignatures:
    def __init__(self, store: Store) -> None:
        self.store = store

    def spend(self, digest: str, expires_at: datetime) -> bool:
        """Record `digest` as used until `expires_at`; False when it already was (a replay)."""
        try:
            with self.store.transaction() as conn:
                conn.execute(insert(intake_replay).values(digest=digest, expires_at=expires_at))
        except IntegrityError:
            return False
        return True

    def prune(self, now: datetime) -> int:
        """Drop the digests whose window is over (an index range on `expires_at`); how many."""
        with self.store.transaction() as conn:
            return int(conn.execute(delete(intake_replay).where(intake_replay.c.expires_at < now)).rowcount)
