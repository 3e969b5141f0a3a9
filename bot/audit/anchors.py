"""Anchoring the audit trail: its head posted to a Slack channel now and then, so a rewritten
chain cannot match what was published (`sfox-bot audit verify --anchor SEQ:HASH`)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, func, select, update

from bot.audit.chain import HEAD_ID, READ_HEAD, canonical_time
from bot.store.schema import audit_anchor, events

log = logging.getLogger("sfox_bot.audit")

# -- anchors -------------------------------------------------------------------------------------


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class AuditAnchor:
    """Posts the chain's head to a Slack channel, at most every `every` and only when it moved,
    from one replica at a time: the replica whose compare-and-set on `audit_anchor` succeeds
    posts; if Slack refuses, the claim is given back so the next sweep tries again."""

    engine: Engine
    client: Any  # slack_sdk.WebClient
    channel: str
    every: timedelta
    now: Callable[[], datetime] = field(default=_utcnow)

    def tick(self) -> bool:
        """Post the head if it is due; True when this replica posted it."""
        now = self.now()
        claimed = self._claim(now)
        if claimed is None:
            return False
        seq, digest, count, previous = claimed
        try:
            self.client.chat_postMessage(
                channel=self.channel, text=anchor_text(seq, digest, count, now), unfurl_links=False
            )
        except Exception as exc:
            self._give_back(seq, now, previous)
            code = getattr(getattr(exc, "response", None), "data", None)
            reason = code.get("error") if isinstance(code, dict) else type(exc).__name__
            log.warning("audit anchor not posted; will try again", extra={"error": str(reason)})
            return False
        log.info("audit anchor posted", extra={"seq": seq})
        return True

    def _claim(self, now: datetime) -> tuple[int, str, int, tuple[int, str, datetime | None]] | None:
        with self.engine.begin() as conn:
            head_row = conn.execute(READ_HEAD).first()
            last = conn.execute(
                select(audit_anchor.c.seq, audit_anchor.c.hash, audit_anchor.c.posted_at).where(
                    audit_anchor.c.id == HEAD_ID
                )
            ).first()
            if head_row is None or last is None:
                return None
            seq, digest = int(head_row[0]), str(head_row[1])
            if seq <= last.seq or (last.posted_at is not None and now - last.posted_at < self.every):
                return None
            changed = conn.execute(
                update(audit_anchor)
                .where(audit_anchor.c.id == HEAD_ID, *_same_anchor(last.seq, last.posted_at))
                .values(seq=seq, hash=digest, posted_at=now)
            ).rowcount
            if not changed:
                return None
            count = conn.execute(select(func.count()).select_from(events)).scalar_one()
        return seq, digest, int(count), (int(last.seq), str(last.hash), last.posted_at)

    def _give_back(self, seq: int, now: datetime, previous: tuple[int, str, datetime | None]) -> None:
        old_seq, old_hash, old_at = previous
        with self.engine.begin() as conn:
            conn.execute(
                update(audit_anchor)
                .where(audit_anchor.c.id == HEAD_ID, *_same_anchor(seq, now))
                .values(seq=old_seq, hash=old_hash, posted_at=old_at)
            )


def _same_anchor(seq: int, posted_at: datetime | None) -> list[Any]:
    at = audit_anchor.c.posted_at
    return [audit_anchor.c.seq == seq, at.is_(None) if posted_at is None else at == posted_at]


def anchor_text(seq: int, digest: str, count: int, at: datetime) -> str:
    """The anchor message: the head as `SEQ HASH`, the event count and the time."""
    return (
        f"Audit anchor: head `{seq} {digest}` · {count} events · {canonical_time(at)}\n"
        f"To check the trail still holds it: `sfox-bot audit verify --anchor {seq}:{digest}`"
    )
