"""Named crash points: places where the bot has just done something outside its database (a Slack
post, an sFOX call, an ack) and not yet recorded it, or the other way round.

A test proves each one survivable by starting a real `sfox-bot run` with the test-only variable
`SFOX_BOT_CRASH_POINT` naming a point: when the process reaches it, it writes one line to stderr
and SIGKILLs its whole process group (the gunicorn master and its worker), so nothing gets to
clean up. `SFOX_BOT_CRASH_PAUSE` (seconds) waits first, so a test can line up a second actor
(another replica, a click) against the doomed process. `SFOX_BOT_STALL_POINT` (with
`SFOX_BOT_STALL_SECONDS`) only holds the thread there, for tests that act meanwhile (a SIGTERM
during a click's step). Without these variables `crash_point` only looks a name up; production
behaves exactly as if the calls were not there.

A new feature that adds a window of its own names it in POINTS and gets a test for it: the crash
tests check that every point listed here has one.
"""

from __future__ import annotations

import os
import signal
import sys
import time

CRASH_POINT_VAR = "SFOX_BOT_CRASH_POINT"
CRASH_PAUSE_VAR = "SFOX_BOT_CRASH_PAUSE"
STALL_POINT_VAR = "SFOX_BOT_STALL_POINT"
STALL_SECONDS_VAR = "SFOX_BOT_STALL_SECONDS"

POINTS: dict[str, str] = {
    "card_posted": "the approval card is in Slack; its ts is not yet recorded",
    "click_acked": "a click is acknowledged to Slack; its step has not run",
    "command_acked": "a slash command (a request or a batch) is acknowledged to Slack; its job has not run",
    "claimed": "the claim is recorded; the DELETE is not yet sent",
    "scheduled_due": "a scheduled request is claimed at its time; its balances are not read again, the DELETE not sent",
    "delete_answered": "sFOX has answered the DELETE; the outcome is not yet recorded",
    "outcome_recorded": "the outcome is recorded; the card update and the thread reply are not yet sent",
    "reply_sent": "a thread reply went out; it is not yet marked sent",
    "reconcile_read": "a reconcile's read of the account was answered; the outcome is not yet recorded",
    "batch_row_claimed": "a batch's user is claimed; its DELETE is not yet sent (the batch runner dies)",
    "migration_applied": "a migration's statements ran; its transaction is not yet committed",
    "step_completed": "Slack took a Workflow Builder step's completeSuccess; it is not yet marked sent",
    "stream_acked": "the audit webhook acknowledged a batch; the stream's cursor has not moved",
}


def crash_point(name: str) -> None:
    """Die here, at once and uncleanly, if the test-only setting names this point."""
    if name not in POINTS:
        raise ValueError(f"unknown crash point {name!r}")
    if os.environ.get(STALL_POINT_VAR) == name:
        seconds = float(os.environ.get(STALL_SECONDS_VAR) or 0)
        sys.stderr.write(f"stall point {name} reached: holding for {seconds:g} s\n")
        sys.stderr.flush()
        time.sleep(seconds)
    if os.environ.get(CRASH_POINT_VAR) != name:
        return
    pause = float(os.environ.get(CRASH_PAUSE_VAR) or 0)
    sys.stderr.write(f"crash point {name} reached: SIGKILL in {pause:g} s\n")
    sys.stderr.flush()
    if pause > 0:
        time.sleep(pause)
    os.killpg(os.getpgrp(), signal.SIGKILL)
