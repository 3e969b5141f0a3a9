"""The audit trail's hash chain: every event gets a global `seq` and
`hash = H(prev_hash || canonical(event))`, so an edited, missing, inserted or reordered event, or a
rewritten chain, is detected by walking it (`sfox-bot audit verify`).

The encoding (documented in the README; it must never change, or old chains stop verifying):

- `canonical(event)` is the UTF-8 JSON of the object with exactly the keys of `FIELDS`, sorted,
  no whitespace, non-ASCII escaped (Python: `json.dumps(obj, sort_keys=True,
  separators=(",", ":"))`). `at` is UTC as `YYYY-MM-DDTHH:MM:SS.ffffffZ` (always six fraction
  digits); `detail` is the stored text as-is (itself JSON, or plain text, or null).
- `H(m)` is SHA-256, or HMAC-SHA256 keyed by SFOX_AUDIT_KEY when that is set; the message is the
  previous event's hash (64 lowercase hex characters; `GENESIS` before seq 1) followed by the
  canonical bytes. Hashes are lowercase hex.

Appends lock the one row of `audit_head` (SELECT … FOR UPDATE on PostgreSQL; SQLite's IMMEDIATE
write transactions already let one writer in at a time), in the transaction of the state change.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from json.encoder import encode_basestring_ascii as _quote  # what json.dumps uses (ensure_ascii)
from typing import Any, NamedTuple

from sqlalchemy import Connection, DateTime, Engine, bindparam, func, insert, select, type_coerce, update

from bot.store.schema import audit_anchor, audit_head, events

log = logging.getLogger("sfox_bot.audit")

GENESIS = "0" * 64
FIELDS = ("seq", "request_id", "at", "kind", "actor", "http_status", "duration_ms", "detail")
EXPORT_FIELDS = (*FIELDS, "prev_hash", "hash")
HEAD_ID = 1

_HEAD = select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == HEAD_ID)
_HEAD_LOCKED = _HEAD.with_for_update()
_MOVE_HEAD = (
    update(audit_head)
    .where(audit_head.c.id == HEAD_ID)
    .values(seq=bindparam("head_seq"), hash=bindparam("head_hash"))
)
_INSERT = insert(events)
# PostgreSQL: the insert and the head's move in one statement (one round trip fewer while the
# head is locked).
_COLUMNS = (
    "request_id",
    "at",
    "kind",
    "actor",
    "http_status",
    "duration_ms",
    "detail",
    "seq",
    "prev_hash",
    "hash",
)
_INSERT_AND_MOVE = (
    update(audit_head)
    .where(audit_head.c.id == HEAD_ID)
    .values(seq=bindparam("new_seq"), hash=bindparam("new_hash"))
    .add_cte(insert(events).values({c: bindparam(f"new_{c}") for c in _COLUMNS}).cte("appended"))
)
_CHAIN = select(
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


# -- the encoding --------------------------------------------------------------------------------


def canonical_time(at: datetime) -> str:
    """UTC with microseconds, the same after a round trip through SQLite or PostgreSQL."""
    if at.tzinfo is not None:
        at = at.astimezone(UTC).replace(tzinfo=None)
    return at.isoformat(timespec="microseconds") + "Z"


def canonical(event: Mapping[str, Any]) -> bytes:
    """The bytes hashed for one event: its FIELDS as sorted-key compact JSON (`at` may be given as
    a datetime or as its canonical text)."""
    at = event["at"]
    return _body(
        event["seq"],
        event["request_id"],
        canonical_time(at) if isinstance(at, datetime) else at,
        event["kind"],
        event["actor"],
        event["http_status"],
        event["duration_ms"],
        event["detail"],
    )


def _body(
    seq: int,
    request_id: int,
    at: str,
    kind: str,
    actor: str | None,
    http_status: int | None,
    duration_ms: int | None,
    detail: str | None,
) -> bytes:
    """`json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()`, written out: the
    keys in sorted order and each value encoded as json.dumps does (tests check they agree), at a
    fraction of the cost, which matters when verify walks a million events."""
    return (
        f'{{"actor":{"null" if actor is None else _quote(actor)},"at":{_quote(at)},'
        f'"detail":{"null" if detail is None else _quote(detail)},'
        f'"duration_ms":{"null" if duration_ms is None else int(duration_ms)},'
        f'"http_status":{"null" if http_status is None else int(http_status)},'
        f'"kind":{_quote(kind)},"request_id":{int(request_id)},"seq":{int(seq)}}}'
    ).encode()


def link(prev_hash: str, body: bytes, key: bytes | None) -> str:
    """H(prev_hash || body): HMAC-SHA256 with `key`, else SHA-256; lowercase hex."""
    message = prev_hash.encode() + body
    if key:
        return hmac.digest(key, message, "sha256").hex()
    return hashlib.sha256(message).hexdigest()


def key_bytes(key: str | None) -> bytes | None:
    return key.encode() if key else None


# -- appending -----------------------------------------------------------------------------------


class Chain:
    """Appends events to the chain inside the caller's write transaction."""

    def __init__(self, key: str | None = None) -> None:
        self._key = key_bytes(key)

    def append(
        self,
        conn: Connection,
        *,
        request_id: int,
        at: datetime,
        kind: str,
        actor: str | None,
        http_status: int | None,
        duration_ms: int | None,
        detail: str | None,
    ) -> int:
        """Insert one event after the head (locking it until the transaction ends); its seq."""
        head_seq, head_hash = conn.execute(_HEAD_LOCKED).one()
        row = {
            "seq": head_seq + 1,
            "request_id": request_id,
            "at": at,
            "kind": kind,
            "actor": actor,
            "http_status": http_status,
            "duration_ms": duration_ms,
            "detail": detail,
        }
        digest = link(head_hash, canonical(row), self._key)
        row["prev_hash"] = head_hash
        row["hash"] = digest
        if conn.dialect.name == "postgresql":
            conn.execute(_INSERT_AND_MOVE, {f"new_{c}": v for c, v in row.items()})
        else:
            conn.execute(_INSERT, row)
            conn.execute(_MOVE_HEAD, {"head_seq": row["seq"], "head_hash": digest})
        return int(row["seq"])


def head(engine: Engine) -> tuple[int, str]:
    """(seq, hash) of the newest event; (0, GENESIS) for an empty trail."""
    with engine.connect().execution_options(readonly=True) as conn:
        found = conn.execute(_HEAD).first()
    return (int(found[0]), str(found[1])) if found else (0, GENESIS)


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
            recorded = conn.execute(_HEAD).first()
            result = conn.execution_options(yield_per=batch).execute(_CHAIN)
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
        body = _body(seq, request_id, at_text, kind, actor, http_status, duration_ms, detail)
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
    query = _CHAIN
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
            head_row = conn.execute(_HEAD).first()
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
