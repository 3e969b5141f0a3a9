"""The store's errors as typed values (`Busy`, `AlreadyOpen`, `BatchUsersOpen`), and reading a
database error by its code, not its wording, to tell which one it is.

SQLite and PostgreSQL both say "someone else holds what you need" with a code: SQLite's
SQLITE_BUSY / SQLITE_LOCKED (the primary code, the low byte of `sqlite_errorcode`), PostgreSQL's
SQLSTATE 55P03 (lock_not_available: `lock_timeout`) and 57014 (query_canceled:
`statement_timeout`); psycopg gives up connecting with its ConnectionTimeout. The store waits
or answers Busy on these, and lets anything else through.
"""

from __future__ import annotations

import sqlite3

import psycopg.errors

_SQLITE_BUSY_CODES = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED})
_PG_BUSY_STATES = frozenset({"55P03", "57014"})


def is_busy(exc: BaseException) -> bool:
    """Whether `exc` (a DB-API error, or SQLAlchemy's wrapper of one) means the database was busy
    or a timeout ran out waiting for it, rather than that the statement was wrong."""
    orig = getattr(exc, "orig", None) or exc
    if isinstance(orig, sqlite3.Error):
        return (getattr(orig, "sqlite_errorcode", 0) & 0xFF) in _SQLITE_BUSY_CODES
    if isinstance(orig, psycopg.errors.ConnectionTimeout):
        return True
    return getattr(orig, "sqlstate", None) in _PG_BUSY_STATES


class Busy(Exception):
    """The database could not take a write within the time the caller can wait."""


class AlreadyOpen(Exception):
    def __init__(self, request_id: int | None) -> None:
        super().__init__(f"request {request_id} is already open for this user")
        self.request_id = request_id


class BatchUsersOpen(Exception):
    """A batch could not be recorded: one of its users got an open request (single or batch)
    meanwhile, so nothing was written. The caller leaves that user out and tries again."""
