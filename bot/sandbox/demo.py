"""`sfox-bot demo`: the two-person rule played out in a few seconds, with nothing configured.

The real bot runs against a fake Slack and a fake sFOX on 127.0.0.1 (see bot/sandbox/harness.py) and a
scripted scene is played through signed Slack requests: alice asks to deactivate client_1, her own
approval is refused, mallory (no approver) is refused, bob approves and the outcome lands in the
card's thread; an unknown id gets no card; client_2 still holds funds, so the bot reads its
balances and posts no card (blocked); client_late's funds arrive after the card, so sFOX refuses
the approved DELETE with 422; client_leaving holds funds, so bob asks the bot to watch it
(--when-empty) and its card comes once the customer has withdrawn; client_contract is approved now
to be deactivated two hours later (--at +2h), and nothing is sent before then. The demo moves the
bot's clock on for the last two (`Sandbox.later`) rather than wait.
The transcript shows what each person would have seen in Slack, and ends with the history table.

Reruns on the same database work: the fake sFOX starts afresh each run (client_1 exists again),
and every request the scene opens is closed by the end of it (only one request per sFOX user may
be open at a time). A request left open by an interrupted run is first cancelled by its requester,
through the bot like any other click.
"""

from __future__ import annotations

import sys
from datetime import timedelta
from typing import TextIO

from bot.cli.common import CliError
from bot.cli.history import write_table
from bot.fakes.sfox_users import currency
from bot.logs import configure
from bot.sandbox.harness import APPROVERS, CHANNEL_NAME, PEOPLE, Sandbox, SandboxError, database
from bot.sandbox.transcript import Entry

# Each may be left open by an earlier session.
TARGETS = ("client_1", "client_2", "client_late", "client_3", "client_leaving", "client_contract")
WATCHED, SCHEDULED = "client_leaving", "client_contract"


def run(*, fresh: bool, out: TextIO = sys.stdout) -> int:
    with database(fresh) as path:
        try:
            with Sandbox(path, slack_pace=False) as sandbox:
                assert sandbox.settings is not None
                configure("WARNING", "text", sandbox.settings.secrets())
                return Scene(sandbox, out, fresh).play()
        except SandboxError as exc:
            raise CliError(f"demo: {exc}") from None


class Scene:
    def __init__(self, sandbox: Sandbox, out: TextIO, fresh: bool) -> None:
        self.sb = sandbox
        self.out = out
        self.fresh = fresh
        self.opened: list[int] = []
        self.steps = 0

    def play(self) -> int:
        self.intro()
        self.tidy_up()

        self.step("alice asks to deactivate client_1")
        first = self.open("alice", "client_1", "leaving the company; funds already withdrawn")
        self.step("alice tries to approve her own request: refused, a second admin must approve")
        self.show(self.sb.click("alice", "approve", first))
        self.step("mallory is not on the approver list: refused, nothing changes")
        self.show(self.sb.click("mallory", "approve", first))
        self.step("bob approves: the bot sends the one DELETE to sFOX and reports in the thread")
        self.show(self.sb.click("bob", "approve", first))

        self.step("bob mistypes the id: sFOX does not know it, so no card is posted")
        self.show(self.sb.command("bob", "client_9"))

        self.step("client_2 still holds funds: the bot reads its balances and posts no card")
        blocked = self.blocked("bob", "client_2", "customer asked to close the account")

        self.step("client_late reads zero, but funds arrive after the card: sFOX refuses with 422")
        second = self.open("bob", "client_late", "customer asked to close the account")
        self.show(self.sb.click("alice", "approve", second))

        self.step("bob asks about client_3; nobody acts, so the sweep reminds the approvers in its thread")
        third = self.open("bob", "client_3", "duplicate account")
        self.say("    (the demo reminds at the first sweep; the bot's default is halfway through the hour)")
        self.show(self.sb.sweep())
        self.step("alice denies it with a reason typed in the Deny dialog; bob hears it by DM")
        self.show(self.sb.click("alice", "deny", third, reason="the account is still in use"))
        denied = self.sb.store.get(third)
        if denied is None or denied.status != "denied":
            self.say("The demo did not end as scripted: see the transcript above.")
            return 1

        batch = self.batch()
        watched, scheduled = self.watch(), self.schedule()
        return self.outro(first, blocked, second, batch, (watched, scheduled))

    def watch(self) -> int:
        """A funded account watched until it is empty: the card comes when the balances read zero."""
        assert self.sb.fake_sfox is not None and self.sb.settings is not None
        self.sb.fake_sfox.add_user(
            WATCHED,
            first_name="Grace",
            last_name="Hopper",
            balances=[currency("usd", 300)],
            drains_after_reads=1,  # withdrawn before the bot's next read
        )
        self.step(f"{WATCHED} still holds funds: bob asks the bot to watch it (--when-empty)")
        watched = self.open("bob", WATCHED, "closing at the customer's request --when-empty")
        every = timedelta(seconds=self.sb.settings.watch_interval_seconds)
        self.step(
            f"the customer withdraws; {every.seconds // 60} minutes later the balances read zero: "
            "the card comes, bob gets its link"
        )
        self.say("    (the demo moves the bot's clock on instead of waiting)")
        self.show(self.sb.later(every))
        self.step("alice approves the card: the one DELETE")
        self.show(self.sb.click("alice", "approve", watched))
        return watched

    def schedule(self) -> int:
        """Approved now, deactivated at its time and never before."""
        assert self.sb.fake_sfox is not None
        self.sb.fake_sfox.add_user(SCHEDULED, first_name="Annie", last_name="Easley")
        self.step(f"alice asks to deactivate {SCHEDULED} when the contract ends, in two hours (--at +2h)")
        scheduled = self.open("alice", SCHEDULED, "contract ends --at +2h")
        self.step("bob approves now: the request is scheduled, and nothing is sent to sFOX yet")
        self.show(self.sb.click("bob", "approve", scheduled))
        self.step("two hours later: the bot reads the balances again and sends the one DELETE")
        self.say("    (the demo moves the bot's clock on instead of waiting)")
        self.show(self.sb.later(timedelta(hours=2)))
        return scheduled

    def batch(self) -> int:
        """Five users in one batch: three deactivated, one unknown on sFOX, one holding funds."""
        sfox = self.sb.fake_sfox
        assert sfox is not None
        cohort = [f"cohort_{n}" for n in (1, 2, 3)]
        for n, uid in enumerate(cohort, 1):
            sfox.add_user(uid, first_name="Cohort", last_name=f"Member {n}")
        ids = ",".join([cohort[0], cohort[1], "cohort_9", "client_held", cohort[2]])
        self.step("alice offboards a cohort in one batch: one card, one approval, each DELETE once")
        last = self.sb.store.history(limit=1)
        before = next(last, None)
        self.show(self.sb.command("alice", f"batch {ids} product retired"))
        record = next(self.sb.store.history(limit=1), None)
        if record is None or record.batch_id is None or (before is not None and record.id <= before.id):
            raise SandboxError("the batch was not opened; see the transcript above")
        self.opened.extend(r.id for r in self.sb.store.history(limit=None, batch_id=record.batch_id))
        self.step("bob approves the batch: three DELETEs at sFOX's pace, a summary in the thread")
        self.show(self.sb.click_batch("bob", "Approve", record.batch_id))
        return record.batch_id

    # -- parts of the scene --------------------------------------------------------------------

    def intro(self) -> None:
        sfox = self.sb.fake_sfox
        assert sfox is not None
        where = "a temporary database (--fresh)" if self.fresh else str(self.sb.database_path)
        self.say(
            "sfox-bot demo: the real bot, driven like Slack would drive it, against a fake Slack and a",
            "fake sFOX on 127.0.0.1. Nothing leaves this machine.",
            "",
            f"  people:     {', '.join(f'{n} ({PEOPLE[n]})' for n in APPROVERS)} are approvers; "
            f"mallory ({PEOPLE['mallory']}) is not",
            f"  channel:    #{CHANNEL_NAME}",
            f"  fake sFOX:  {sfox.url}  client_1 (balances 0), client_2 (holds funds),",
            "              client_late (funds arrive after the card), client_leaving (withdraws",
            "              after the first read), client_contract, others unknown",
            f"  database:   {where}",
        )

    def tidy_up(self) -> None:
        """Close what an interrupted earlier run left open, through the bot like any click."""
        for sfox_user_id in TARGETS:
            record = self.sb.store.open_request_for(sfox_user_id)
            if record is None:
                continue
            if record.status not in ("pending", "scheduled", "watching"):
                self.sb.sweep()  # settles an unknown or abandoned outcome with a read, if it can
                record = self.sb.store.open_request_for(sfox_user_id)
                if record is None:
                    continue
                raise SandboxError(
                    f"request #{record.id} for {sfox_user_id} is still {record.status} "
                    "(is another demo running?); try `sfox-bot demo --fresh`"
                )
            requester = self.sb.names.get(record.requested_by, "bob")
            self.step(f"first, {requester} cancels request #{record.id}, left open by an earlier session")
            button = "stop" if record.status == "watching" else "deny"  # Deny cancels a scheduled one
            self.show(self.sb.click(requester, button, record.id))
            if self.sb.store.open_request_for(sfox_user_id) is not None:
                raise SandboxError(f"request #{record.id} for {sfox_user_id} could not be closed")

    def open(self, name: str, sfox_user_id: str, reason: str) -> int:
        self.show(self.sb.command(name, f"{sfox_user_id} {reason}"))
        record = self.sb.store.open_request_for(sfox_user_id)
        if record is None:
            raise SandboxError(f"no request for {sfox_user_id} was opened; see the transcript above")
        self.opened.append(record.id)
        return record.id

    def blocked(self, name: str, sfox_user_id: str, reason: str) -> int:
        """A command that must end as a `blocked` request, with no card."""
        last = next(self.sb.store.history(limit=1), None)
        self.show(self.sb.command(name, f"{sfox_user_id} {reason}"))
        record = next(self.sb.store.history(limit=1, user=sfox_user_id), None)
        if record is None or record.status != "blocked" or (last is not None and record.id <= last.id):
            raise SandboxError(f"the request for {sfox_user_id} was not blocked; see the transcript above")
        self.opened.append(record.id)
        return record.id

    def outro(self, first: int, blocked: int, second: int, batch: int, later: tuple[int, int]) -> int:
        self.heading("sfox-bot history (the requests this demo made)")
        write_table(self.sb.records(self.opened), self.out)
        done, refused = self.sb.store.get(first), self.sb.store.get(second)
        stopped = self.sb.store.get(blocked)
        ok = (
            done is not None
            and done.status == "succeeded"
            and stopped is not None
            and stopped.status == "blocked"
            and refused is not None
            and refused.status == "failed"
            and refused.http_status == 422
            and sorted(r.status for r in self.sb.store.history(limit=None, batch_id=batch))
            == ["succeeded"] * 3
            and all(getattr(self.sb.store.get(n), "status", None) == "succeeded" for n in later)
        )
        self.say("")
        if not ok:
            self.say("The demo did not end as scripted: see the transcript above.")
            return 1
        self.say(
            "Every step went through the bot's real code: signed requests into POST /slack/events,",
            "the same handlers, workflow and database as in production; only Slack and sFOX were fakes.",
            "Try it yourself:  sfox-bot console",
        )
        if not self.fresh:
            self.say(f"The full audit trail of one request:  sfox-bot show {first}")
        return 0

    # -- output --------------------------------------------------------------------------------

    def step(self, title: str) -> None:
        self.steps += 1
        self.heading(f"{self.steps}. {title}")

    def heading(self, title: str) -> None:
        self.say("", f"── {title} " + "─" * max(3, 76 - len(title)))

    def show(self, entries: list[Entry]) -> None:
        self.say(*self.sb.render(entries))

    def say(self, *lines: str) -> None:
        for line in lines:
            self.out.write(line + "\n")
        self.out.flush()
