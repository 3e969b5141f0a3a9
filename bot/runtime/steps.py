"""The Workflow Builder step `deactivate_sfox_account` (issue 20): a request opened as if the
person who ran the workflow had typed `/sfox-deactivate <user_id> <reason>` in its `channel`.

That person is the step's interactor, as Slack reports it (bot/slack/steps.py `interactor_id`),
never a name the workflow's author chose: a `requester` input naming another would let an approver
ask in a colleague's name and approve it himself (issue 32). A step whose runner is not known, or
whose old `requester` input names someone else, opens nothing and is completed with an error.

The same checks (`Workflow.check_command`: the policy and its refusals), the same command journal
(bot/runtime/commands.py: recorded before the event is acknowledged, carried out by
`open_request`, resumed by any replica after a crash) and the same card. What differs is how the
requester hears back: the step is completed.

- Each execution is recorded once by Slack's `function_execution_id` (unique), before the ack: a
  repeated `function_executed` (Slack's retry, to this replica or another) opens nothing new.
- A request that ends (succeeded, failed, denied, expired, blocked, cancelled) owes the step its
  `functions.completeSuccess`, queued in the outbox in the outcome's transaction
  (bot/store/step_owed.py) and sent by `send`, the outbox's `step` sender: retried when due,
  surviving restarts, like a thread reply.
- No request opened (the policy refused, a malformed id, no channel, unknown on sFOX, one already
  open): the row keeps the reason and `functions.completeError` is owed until Slack takes it,
  sent at once and again by every sweep.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from slack_sdk import WebClient

from bot.crashpoints import crash_point
from bot.requests.base import Command
from bot.runtime.commands import Commands
from bot.slack import steps as slack_steps
from bot.slack.calls import call_slack
from bot.slack.errors import NotifyError
from bot.store.records import Notice, RequestRecord
from bot.store.step_owed import STEP

if TYPE_CHECKING:
    from bot.runtime.bootstrap import Runtime

log = logging.getLogger("sfox_bot.steps")

# A refused step's completeError is the process's that took it for this long.
SEND_LEASE_SECONDS = 30.0
# An execution being received (checked, journalled) is this process's for this long: one whose
# receiver died first was never acknowledged, and Slack's re-send takes it over after that.
RECEIVE_LEASE = timedelta(seconds=10)
NO_CHANNEL = (
    "No channel for the approval card: give the step a channel, or set SFOX_DEFAULT_CHANNEL. "
    "Nothing was requested."
)
UNPROVEN = {
    "missing": (
        "This step has no interactivity input, so who ran the workflow is not known: the requester "
        "is always the person who runs the workflow, as Slack reports it. Update the step in "
        "Workflow Builder (a workflow started by a schedule or a webhook has nobody who ran it and "
        "cannot use this step). Nothing was requested."
    ),
    "malformed": (
        "The step's interactivity input is not Slack's interactivity (an interactor with a user id "
        "and an interactivity_pointer): who ran the workflow cannot be proven. Nothing was requested."
    ),
    "not_a_user": "Who ran the workflow cannot be proven: {shown!r} is not a Slack user id. Nothing was requested.",
}
NAMED_SOMEONE_ELSE = (
    "This step names {named!r} as the requester, but {runner} ran the workflow: the requester is "
    "always the person who runs the workflow, so that nobody asks in someone else's name. Remove "
    "the step's old requester input in Workflow Builder. Nothing was requested."
)


class Steps:
    def __init__(
        self,
        runtime: Runtime,
        client: WebClient,
        default_channel: str | None,
        submit: Callable[..., Any],
    ) -> None:
        """`client`: a Slack client with the bot token (never the event's workflow token)."""
        self.store = runtime.store
        self.workflow = runtime.workflow
        self.commands: Commands = runtime.commands
        self.client = client
        self.default_channel = default_channel
        self.submit = submit

    def receive(self, event: dict[str, Any]) -> None:
        """A `function_executed` for the step, before its ack: record it once, check it as a typed
        command would be, journal it, and hand it to the job pool."""
        execution_id = str(event.get("function_execution_id") or "")
        now = self.workflow.now()
        step_id = self.store.receive_step(execution_id, now, RECEIVE_LEASE) if execution_id else None
        if step_id is None:
            log.info("repeated step execution: nothing new opened", extra={"execution_id": execution_id})
            return
        inputs = event.get("inputs")
        checked = self._check(inputs if isinstance(inputs, dict) else {})
        if isinstance(checked, Command):
            accepted = self.commands.accept(checked, None, step=True)
            if not isinstance(accepted, str):
                self.store.step_opened(step_id, accepted.id)
                self.commands.carry_out_later(accepted)
                return
            checked = accepted  # not recorded: the step fails, saying so
        self.store.step_refused(step_id, slack_steps.plain(checked))
        if self.commands.hands_over:  # the web role: a worker sends it (bot/runtime/roles.py)
            self.commands.journal.wake_workers()
        else:
            self.submit(self.complete_refused)

    def _check(self, inputs: dict[str, Any]) -> Command | str:
        requester = slack_steps.interactor_id(inputs)
        if isinstance(requester, slack_steps.Unproven):
            return UNPROVEN[requester.why].format(shown=requester.shown)
        named = inputs.get(slack_steps.OLD_REQUESTER_INPUT)
        if named not in (None, "", requester):
            return NAMED_SOMEONE_ELSE.format(named=str(named)[:40], runner=requester)
        channel = str(inputs.get("channel") or self.default_channel or "")
        user_id = str(inputs.get("user_id") or "").strip()
        if not channel:
            return NO_CHANNEL
        if len(user_id.split()) > 1:  # the id is one word: no options smuggled in through it
            return f"{user_id!r} is not a valid sFOX user id: it contains spaces. Nothing was requested."
        reason = " ".join(str(inputs.get("reason") or "").split())
        return self.workflow.check_command(requester, channel, f"{user_id} {reason}".strip())

    def answered(self, command_id: int, text: str) -> None:
        """The step's command was carried out with an answer for its requester (Commands'
        `step_answered`). With a request opened, its outcome completes the step; without one,
        the answer is why not."""
        if self.store.request_for_command(command_id) is not None:
            return
        self.store.step_refused(None, slack_steps.plain(text), command_id=command_id)
        self.complete_refused()

    def complete_refused(self) -> int:
        """Send the owed completeError of every refused step (one sender each). Returns how many
        Slack took; the others are tried again at the next sweep."""
        done = 0
        for step in self.store.steps_refused_owed(self.workflow.now()):
            if not self.store.lease_step(step.id, self.workflow.now(), SEND_LEASE_SECONDS):
                continue
            try:
                slack_steps.complete_error(self.client, step.execution_id, step.error or "")
            except NotifyError as exc:
                log.warning("step error not delivered", extra={"step": step.id, "slack_error": exc.code})
                continue
            self.store.step_completed(step.id, self.workflow.now())
            log.info("step completed with an error", extra={"step": step.id})
            done += 1
        return done

    def send(self, notice: Notice, record: RequestRecord | None) -> None:
        """The outbox's `step` sender: completeSuccess with the outcome. Raises NotifyError."""
        step = self.store.step_for_request(record.id) if record is not None else None
        if record is None or step is None or step.completed_at is not None:
            return
        status = slack_steps.final_status(notice.text, record)
        outputs = slack_steps.outputs(record, status, self._card_url(record))
        slack_steps.complete_success(self.client, step.execution_id, outputs)
        crash_point("step_completed")
        self.store.step_completed(step.id, self.workflow.now())
        log.info("step completed", extra={"request_id": record.id, "status": status})

    def _card_url(self, record: RequestRecord) -> str | None:
        """The card's link; safe to lose (the step is completed without it)."""
        if record.message_ts is None:
            return None
        try:
            found = call_slack(
                self.client, "chat_getPermalink", channel=record.channel_id, message_ts=record.message_ts
            )
        except NotifyError:
            return None
        link = found.get("permalink")
        return str(link) if isinstance(link, str) and link.startswith("https://") else None


def wire_steps(runtime: Runtime, client: WebClient) -> Steps:
    """The step's parts on a runtime: the outbox's `step` sender, the commands' answer hook, and
    the sweep's retry of owed errors."""
    steps = Steps(runtime, client, runtime.settings.default_channel, runtime.submit)
    runtime.workflow.senders[STEP] = steps.send
    runtime.commands.step_answered = steps.answered
    runtime.commands.step_known = lambda command_id: runtime.store.step_for_command(command_id) is not None
    return steps
