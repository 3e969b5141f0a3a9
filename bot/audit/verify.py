"""Verifying the audit trail (`sfox-bot audit verify`): walk the chain oldest first in one
consistent snapshot, recompute every link, and name the first bad event and what kind of tampering
it looks like; and exporting it (`audit export`) streamed, for a receiver to check on its own."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import DateTime, Engine, select, type_coerce

from bot.audit.chain import GENESIS, READ_HEAD, canonical_fields, canonical_time, key_bytes, link
from bot.store.schema import events

# The events as the chain encodes them, in chain order: what verifying reads, and what the audit
# stream sends (bot/audit/stream.py).
CHAIN_ROWS = select(
    events.c.id,
    events.c.seq,
    events.c.request_id,
    type_coerce(events.c.at, DateTime).label("at"),  # naive UTC as stored: no time-zone step per row
    events.c.kind,
    events.c.actor,
    events.c.http_status,
    events.c.duration_ms,
    events.c.detail,
    events.c.prev_hash,
    events.c.hash,
).order_by(events.c.seq, events.c.id)


# -- verifying -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """The first thing wrong with the chain: at which seq (the first bad event), what kind of
    tampering it looks like (`edited`, `missing`, `inserted`, `reordered`, `broken link`,
    `wrong key`, `anchor mismatch`, `truncated`) and a sentence for the auditor."""

    seq: int
    kind: str
    detail: str

    def line(self) -> str:
        return f"audit FAILED at seq {self.seq}: {self.kind}: {self.detail}"


@dataclass(frozen=True)
class Report:
    count: int
    head_seq: int
    head_hash: str
    problem: Problem | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None

    def line(self) -> str:
        if self.problem is not None:
            return self.problem.line()
        return f"audit ok: {self.count} events, head {self.head_seq} {self.head_hash}"


class _Row(NamedTuple):
    id: int
    seq: int
    prev_hash: str
    hash: str
    body: bytes

    def consistent(self, key: bytes | None) -> bool:
        return link(self.prev_hash, self.body, key) == self.hash


def parse_anchor(text: str) -> tuple[int, str]:
    """`SEQ:HASH` (or `SEQ HASH`, as posted) → (seq, hash); ValueError with the reason."""
    seq_text, sep, digest = text.strip().replace(" ", ":", 1).partition(":")
    digest = digest.strip().lower()
    if not sep or not seq_text.isdigit() or int(seq_text) < 1:
        raise ValueError(f"expected SEQ:HASH with SEQ a positive whole number, got {text!r}")
    if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise ValueError(f"expected HASH as 64 hex digits, got {text!r}")
    return int(seq_text), digest


def verify(
    engine: Engine, key: str | None = None, anchors: Iterable[tuple[int, str]] = (), batch: int = 5000
) -> Report:
    """Walk the whole chain oldest first, in one read transaction (a consistent snapshot; rows
    are streamed, so memory stays flat), and report the first bad event."""
    conn = engine.connect()
    try:
        if engine.dialect.name == "postgresql":
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
        else:
            conn = conn.execution_options(readonly=True)
        with conn.begin():
            recorded = conn.execute(READ_HEAD).first()
            result = conn.execution_options(yield_per=batch).execute(CHAIN_ROWS)
            return walk(
                _rows(result),
                key_bytes(key),
                dict(anchors),
                recorded and (int(recorded[0]), recorded[1]),
            )
    finally:
        conn.close()


def _rows(result: Iterable[Any]) -> Iterator[tuple[int, int, str, str, bytes]]:
    """(id, seq, prev_hash, hash, canonical bytes) per event; `at` comes naive UTC as stored."""
    for (
        row_id,
        seq,
        request_id,
        at,
        kind,
        actor,
        http_status,
        duration_ms,
        detail,
        prev_hash,
        digest,
    ) in result:
        at_text = at.isoformat(timespec="microseconds") + "Z"
        body = canonical_fields(seq, request_id, at_text, kind, actor, http_status, duration_ms, detail)
        yield row_id, seq, prev_hash, digest, body


def walk(
    rows: Iterator[tuple[int, int, str, str, bytes]],
    key: bytes | None,
    anchors: Mapping[int, str],
    recorded_head: tuple[int, str] | None = None,
) -> Report:
    """The verification proper, over (id, seq, prev_hash, hash, canonical bytes) in (seq, id)
    order. The common case (all is well) is a few comparisons and one hash per event; a row that
    fails them is diagnosed, with a look at the row after it."""
    expected, prev, before_prev = 1, GENESIS, GENESIS
    count = 0
    row = next(rows, None)
    while row is not None:
        after = next(rows, None)
        _, seq, prev_hash, digest, body = row
        if seq != expected or prev_hash != prev or seq in anchors or link(prev, body, key) != digest:
            problem = _check(
                _Row._make(row), after and _Row._make(after), expected, prev, before_prev, key, anchors
            )
            if problem is not None:
                return Report(count, expected - 1, prev, problem)
        count += 1
        before_prev, prev, expected = prev, digest, seq + 1
        row = after
    last = expected - 1
    for seq in sorted(anchors):
        if seq > last:
            return Report(
                count,
                last,
                prev,
                Problem(
                    seq,
                    "truncated",
                    f"the anchor names seq {seq} but the chain ends at seq {last}: "
                    "events were removed from the tail",
                ),
            )
    if recorded_head is not None and recorded_head != (last, prev):
        head_seq, head_hash = recorded_head
        if head_seq > last:
            problem = Problem(
                last + 1,
                "truncated",
                f"the chain ends at seq {last} but the recorded head is seq {head_seq}: "
                "events were removed from the tail",
            )
        elif head_seq < last:
            problem = Problem(
                head_seq + 1,
                "inserted",
                f"the chain goes on after the recorded head (seq {head_seq}) to seq {last}: "
                "events were added outside the bot",
            )
        else:
            problem = Problem(
                last, "broken link", f"the recorded head hash of seq {last} is not the hash of that event"
            )
        return Report(count, last, prev, problem)
    return Report(count, last, prev)


def _check(
    row: _Row,
    after: _Row | None,
    expected: int,
    prev: str,
    before_prev: str,
    key: bytes | None,
    anchors: Mapping[int, str],
) -> Problem | None:
    seq = row.seq
    if seq > expected:
        missing = f"seq {expected}" if seq == expected + 1 else f"seq {expected} to {seq - 1}"
        return Problem(
            expected,
            "missing",
            f"{missing} missing: the event after seq {expected - 1} is seq {seq} (deleted)",
        )
    if seq < expected:
        return Problem(seq, "inserted", f"a second event with seq {seq} (row id {row.id}) was inserted")
    if row.prev_hash != prev:
        if seq >= 2 and row.prev_hash == before_prev:
            return Problem(
                seq - 1,
                "inserted",
                f"seq {seq - 1} was inserted: seq {seq} links to the event before it (seq {seq - 2})",
            )
        if after is not None and row.prev_hash == after.hash:
            return Problem(
                seq, "reordered", f"seq {seq} and seq {after.seq} are swapped (each links to the other)"
            )
        return Problem(seq, "broken link", f"its prev_hash is not the hash of seq {seq - 1}")
    if not row.consistent(key):
        if after is not None and after.prev_hash == row.prev_hash and after.prev_hash != row.hash:
            return Problem(
                seq, "inserted", f"seq {seq} was inserted: seq {after.seq} links to the event before it"
            )
        if after is not None and after.prev_hash == row.hash and not after.consistent(key):
            return Problem(
                seq,
                "wrong key",
                f"no event from seq {seq} on matches its hash with this key: the chain was written with "
                "another SFOX_AUDIT_KEY (or without one), or rewritten by someone without the key",
            )
        return Problem(
            seq, "edited", "its recorded fields do not match its hash (changed after it was written)"
        )
    anchored = anchors.get(seq)
    if anchored is not None and anchored != row.hash:
        return Problem(
            seq,
            "anchor mismatch",
            f"its hash is {row.hash} but the anchor says {anchored}: the chain was rewritten",
        )
    return None


# -- export --------------------------------------------------------------------------------------


def export_rows(
    engine: Engine, *, since: datetime | None = None, request_id: int | None = None, batch: int = 5000
) -> Iterator[dict[str, Any]]:
    """Events oldest first as dicts of EXPORT_FIELDS (`at` canonical), streamed from one read."""
    query = CHAIN_ROWS
    if since is not None:
        query = query.where(events.c.at >= since)
    if request_id is not None:
        query = query.where(events.c.request_id == request_id)
    with engine.connect().execution_options(readonly=True) as conn, conn.begin():
        for r in conn.execution_options(yield_per=batch).execute(query):
            yield {
                "seq": r.seq,
                "request_id": r.request_id,
                "at": canonical_time(r.at),
                "kind": r.kind,
                "actor": r.actor,
                "http_status": r.http_status,
                "duration_ms": r.duration_ms,
                "detail": r.detail,
                "prev_hash": r.prev_hash,
                "hash": r.hash,
            }
