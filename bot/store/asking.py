"""Storage for asking: recording a request (or a blocked attempt) and where its card is."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, insert, select, update
from sqlalchemy.exc import IntegrityError

from bot.store import schema
from bot.store.base import _NOTICE, SINGLE, StoreBase
from bot.store.errors import AlreadyOpen
from bot.store.fit import clipped
from bot.store.records import Event, RequestRecord, dm_owed
from bot.store.schema import requests
from bot.store.step_owed import step_owed


class AskingStore(StoreBase):
    def open_request_for(self, sfox_user_id: str) -> RequestRecord | None:
        with self._read() as conn:
            row = (
                conn.execute(
                    select(requests).where(
                        requests.c.sfox_user_id == sfox_user_id,
                        requests.c.status.in_(schema.HELD_STATUSES),
                    )
                )
                .mappings()
                .first()
            )
            return self._with_approvals(conn, [row])[0] if row else None

    def request_for_command(self, command_id: int) -> RequestRecord | None:
        """The request a journalled command created (bot/runtime/commands.py), if any."""
        with self._read() as conn:
            row = conn.execute(select(requests).where(requests.c.command_id == command_id)).mappings().first()
            return self._with_approvals(conn, [row])[0] if row else None

    def create_request(
        self,
        *,
        sfox_user_id: str,
        reason: str,
        requested_by: str,
        channel_id: str,
        required_approvals: int,
        target_name: str | None,
        target_email: str | None,
        target_status: str | None,
        now: datetime,
        ttl: timedelta,
        balances: str | None = None,
        command_id: int | None = None,
        stages: str | None = None,
        run_at: datetime | None = None,
        requested_via: str | None = None,
    ) -> RequestRecord:
        """Record a new pending request; raises AlreadyOpen if this sFOX user already has one (a
        partial unique index makes that hold even for two requests typed at the same moment), or
        if its command (`command_id`, unique) created one already. A request to run at `run_at`
        may be approved until then rather than for `ttl` (bot/requests/scheduling.py)."""
        values = clipped(
            {
                "sfox_user_id": sfox_user_id,
                "reason": reason,
                "requested_by": requested_by,
                "channel_id": channel_id,
                "status": "pending",
                "required_approvals": required_approvals,
                "target_name": target_name,
                "target_email": target_email,
                "target_status": target_status,
                "created_at": now,
                "expires_at": run_at or now + ttl,
                "attempts": 0,
                "retryable": False,
                "balances": balances,
                "command_id": command_id,
                "stages": stages,
                "run_at": run_at,
                "requested_via": requested_via,
            }
        )
        try:
            request_id = self._insert_request(values, requested_event(values))
        except IntegrityError:
            existing = self.open_request_for(sfox_user_id)
            raise AlreadyOpen(existing.id if existing else None) from None
        record = self.get(request_id)
        assert record is not None
        return record

    def block(self, *, error: str, event: Event, **request: Any) -> RequestRecord:
        """Record a request that is closed before any card (`blocked`: the target holds funds),
        with its `requested` and `event` trail entries, in one transaction. `request` takes the
        arguments of `create_request`."""
        now: datetime = request.pop("now")
        request.pop("ttl", None)
        request.pop("run_at", None)
        values = {
            **request,
            "status": "blocked",
            "created_at": now,
            "expires_at": now,
            "completed_at": now,
            "error": error,
            "attempts": 0,
            "retryable": False,
        }
        request_id = self._insert_request(values, requested_event(values), event)
        record = self.get(request_id)
        assert record is not None
        return record

    def _insert_request(
        self, values: dict[str, Any], *trail: Event, notices: list[tuple[str, str | None]] | None = None
    ) -> int:
        with self._write() as conn:
            request_id: int = conn.execute(
                insert(requests).values(**values).returning(requests.c.id)
            ).scalar_one()
            # A blocked request's DM to its requester; a watch's (bot/store/watching.py).
            owed = [*dm_owed(values), *step_owed(conn, request_id, values["status"]), *(notices or [])]
            for kind, text in owed:
                conn.execute(
                    _NOTICE,
                    {
                        "request_id": request_id,
                        "kind": kind,
                        "text": text,
                        "created_at": values["created_at"],
                    },
                )
            for ev in trail:
                self._event(conn, request_id, values["created_at"], ev)
        return request_id

    def set_card(self, request_id: int, message_ts: str, now: datetime) -> None:
        """Note where the card is. A click that adopted this very card a moment earlier already
        did; a different ts is never written over the one recorded."""
        with self._write() as conn:
            if self._note_card(conn, request_id, message_ts):
                self._event(conn, request_id, now, Event("card_posted", detail={"ts": message_ts}))

    def adopt_card(
        self, request_id: int, message_ts: str, now: datetime, *, found_by: str, reply: str | None
    ) -> bool:
        """Record a card the bot posted but never noted (it died in between), found by a click on
        it or by the sweep; owe Slack a re-render of it (and `reply` in its thread). Only when no
        card is recorded: False if one is."""
        with self._write() as conn:
            if not self._note_card(conn, request_id, message_ts):
                return False
            notices: list[tuple[str, str | None]] = [("card", None)] + ([("reply", reply)] if reply else [])
            for kind, text in notices:
                conn.execute(
                    _NOTICE, {"request_id": request_id, "kind": kind, "text": text, "created_at": now}
                )
            # Last, like every transition's event: the chain's head stays locked only briefly.
            self._event(
                conn, request_id, now, Event("card_adopted", detail={"ts": message_ts, "found_by": found_by})
            )
            return True

    @staticmethod
    def _note_card(conn: Connection, request_id: int, message_ts: str) -> bool:
        """Write where the card is, unless a card is recorded already; True if this wrote it. A
        batch's user has none of its own (its batch's card tells), so none is ever noted for it."""
        return bool(
            conn.execute(
                update(requests)
                .where(requests.c.id == request_id, requests.c.message_ts.is_(None), SINGLE)
                .values(message_ts=message_ts)
            ).rowcount
        )


def requested_event(request: dict[str, Any]) -> Event:
    """A request's first audit event: its requester and reason, and the system it was asked
    through (the intake API's `requested_by`), so a request asked for a person by a system never
    reads as asked by that person in Slack (issue 32)."""
    detail: dict[str, Any] = {"reason": request["reason"]}
    if request.get("requested_via"):
        detail["via"] = request["requested_via"]
    return Event("requested", request["requested_by"], detail)
