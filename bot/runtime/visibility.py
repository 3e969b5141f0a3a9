"""Issue 13's parts, wired for one process: metrics on every Slack and sFOX call and every ack, the
requester's DMs (the outbox's `dm` sender), the reminders the sweep runs, the App Home and the
subcommands, and the Slack clients the modals use."""

from __future__ import annotations

from dataclasses import dataclass

from slack_bolt import App
from slack_sdk import WebClient

from bot.config import Settings
from bot.requests.reminders import Reminders
from bot.requests.workflow import Workflow
from bot.runtime.metrics import Metrics
from bot.sfox.client import SfoxClient
from bot.slack import subcommands
from bot.slack.calls import make_web_client, quiet_logger
from bot.slack.dms import DirectMessages
from bot.slack.home import AppHome
from bot.store.db import Store

# views.open must use a click's trigger_id within 3 s: one quick try, no retries.
MODAL_TIMEOUT_SECONDS = 2
QUIET_VIEWS_LOGGER = "sfox_bot.slack.quiet_views"


@dataclass
class Visibility:
    """Issue 13's parts: the requester's DMs, reminders, the App Home, subcommands, metrics."""

    metrics: Metrics
    dms: DirectMessages
    reminders: Reminders
    home: AppHome
    subcommands: subcommands.Context
    modal_client: WebClient
    # The modal client for views that show a secret (the MFA enrolment): its logger never writes
    # a request or response body.
    secret_modal_client: WebClient


def visibility_parts(
    settings: Settings,
    store: Store,
    sfox: SfoxClient,
    slack: WebClient,
    outbox_slack: WebClient,
    workflow: Workflow,
    app: App,
) -> Visibility:
    """Wire issue 13's parts: metrics on every Slack and sFOX call and every ack, the outbox's
    `dm` sender, the reminders the sweep runs, the App Home and the subcommands."""
    metrics = Metrics(store, clock=workflow.now)
    metrics.instrument_slack(slack)
    metrics.instrument_slack(outbox_slack)
    metrics.instrument_sfox(sfox)
    app.use(metrics.ack_timer())
    modal_client = make_web_client(
        settings.slack_bot_token or "", slack.base_url, MODAL_TIMEOUT_SECONDS, retries=False
    )
    metrics.instrument_slack(modal_client)
    secret_modal_client = make_web_client(
        settings.slack_bot_token or "",
        slack.base_url,
        MODAL_TIMEOUT_SECONDS,
        retries=False,
        logger=quiet_logger(QUIET_VIEWS_LOGGER),
    )
    metrics.instrument_slack(secret_modal_client)
    dms = DirectMessages(
        outbox_slack, store, watch_offered=settings.balance_check != "off"
    )  # an outbox sender: its 429s are retried by the outbox
    workflow.senders["dm"] = dms.send
    approvers = workflow.policy.approvers
    if workflow.policy.directory is not None:
        metrics.instrument_slack(workflow.policy.directory.client)  # usergroups.users.list
    return Visibility(
        metrics=metrics,
        dms=dms,
        reminders=Reminders(
            store, approvers, settings.remind_after_fraction, workflow.now, settings.approver_group
        ),
        home=AppHome(
            slack, store, approvers, settings.approver_group, clock=workflow.now, policy=workflow.policy
        ),
        subcommands=subcommands.Context(store, approvers, settings.require_reason),
        modal_client=modal_client,
        secret_modal_client=secret_modal_client,
    )
