"""Deactivating on a date (issue 19): at a scheduled request's time, and never before, one
replica claims it (`scheduled → executing`, the exactly-once claim of bot/store/deciding.py), reads
its balances again, and sends the one DELETE through `execute`; funds found then stop it, with
nothing sent. Approving one (`pending → scheduled`) and cancelling it before its time are card
clicks, in bot/requests/deciding.py; the loop that wakes at the earliest time is
bot/runtime/schedule.py."""

from __future__ import annotations

from datetime import timedelta

from bot.crashpoints import crash_point
from bot.requests.base import log, log_fields
from bot.requests.executing import Executing
from bot.slack import blocks
from bot.slack.scheduled import reply_funds_at_time, reply_late
from bot.store.outcomes import Outcome
from bot.store.records import Event, RequestRecord

# Claimed this long after its time, a request's thread is told how late it runs (the bot was down,
# or its process stopped before sending); a claim on time is a fraction of a second late.
LATE_AFTER = timedelta(seconds=5)


class Scheduling(Executing):
    def claim_due(self) -> list[int]:
        """Claim every scheduled request whose time has come; the ids this process won (each is
        won by one replica only), to be run with `run_scheduled`."""
        now = self.now()
        won: list[int] = []
        for record in self.store.due_scheduled(now):
            assert record.run_at is not None
            late = now - record.run_at
            detail = {
                "scheduled_for": record.run_at.isoformat(),
                "late_seconds": round(late.total_seconds(), 1),
            }
            reply = reply_late(record, late) if late >= LATE_AFTER else None
            if self.store.claim_due(record.id, now, reply, detail):
                log.info(
                    "scheduled request claimed", extra=log_fields(record, late_seconds=detail["late_seconds"])
                )
                won.append(record.id)
        return won

    def run_scheduled(self, request_id: int) -> RequestRecord | None:
        """The claim's work: read the balances again (funds: nothing is sent, `failed`), then the
        one DELETE of `execute`. A read that fails does not hold it back: sFOX itself refuses a
        DELETE while funds remain, as at the card (bot/sfox/balances.py)."""
        crash_point("scheduled_due")
        record = self.store.get(request_id)
        if record is None or record.status != "executing":
            return record
        check = self.balances(record.sfox_user_id) if self.balances else None
        if check is None or not check.funds:
            return self.execute(request_id)
        # Still this process's claim (compare-and-set, as `execute` does before its DELETE)?
        if not self.store.take_over(record, self.now(), kind="balances_read_at_time"):
            return self.store.get(request_id)
        funds = blocks.funds_text(check)
        self._finish(
            self.store.get(request_id) or record,
            "failed",
            None,
            blocks.blocked_error(funds),
            False,
            Outcome.HELD_FUNDS,
            Event("not_sent_funds", detail={"funds": funds}),
            reply_funds_at_time(record, funds),
            balances=check.to_json(),
        )
        return self.store.get(request_id)
