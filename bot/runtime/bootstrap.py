"""Wires the parts together for one process: store, sFOX client, Slack client, workflow, the Bolt
app, and the two thread pools. Nothing here is global: `sfox-bot run`, the WSGI entry point, the
demo and the tests each build their own Runtime."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from slack_bolt import App
from slack_sdk import WebClient

from bot.audit.anchors import AuditAnchor
from bot.batches.workflow import BALANCE_SLOT_WAIT_SECONDS, Batches
from bot.config import ConfigError, Settings
from bot.intake.wiring import wire_intake
from bot.mfa.sealing import Sealer
from bot.mfa.stepup import StepUp
from bot.policy.effective import CLAIM_GRACE_SECONDS, build_policy
from bot.policy.rules import Policy
from bot.requests.workflow import Workflow
from bot.runtime.clicks import Clicks
from bot.runtime.commands import Commands
from bot.runtime.delivery import DeliveryLoop, DueLoop
from bot.runtime.due import wire_due_work
from bot.runtime.events import RepeatedEvents
from bot.runtime.metrics import click_result
from bot.runtime.pools import TrackedPool, wait_all_idle
from bot.runtime.roles import ALL, WEB, WORKER, TakeLoop, hand_over
from bot.runtime.schedule import ScheduleLoop
from bot.runtime.steps import Steps, wire_steps
from bot.runtime.visibility import Visibility, visibility_parts
from bot.runtime.wake import Waker
from bot.runtime.watch import WatchLoop
from bot.sfox import balances
from bot.sfox.balances import BalanceReader
from bot.sfox.client import SfoxClient
from bot.sfox.pacing import SharedRateLimiter
from bot.slack.batch_card import (
    BATCH_APPROVE,
    BATCH_CANCEL,
    BATCH_DENY,
    BATCH_PAUSE,
    BATCH_RESUME,
    BatchSlack,
)
from bot.slack.calls import make_web_client
from bot.slack.notifier import SlackNotifier, answer_privately, tell_privately
from bot.slack.watch_blocks import STOP_WATCHING, WATCH
from bot.store.db import Store

log = logging.getLogger("sfox_bot.runtime")

# Bolt runs each listener on the thread that serves the request (process_before_response), so the
# ack goes out as soon as the listener returns; listeners only ack and hand the click's database
# step to the step pool, never wait on it. Step threads do short database steps; job threads wait
# on sFOX and Slack.
STEP_THREADS = 16
JOB_THREADS = 32
# The Slack calls a listener makes itself (Bolt's `client`: the batch form's views.open and
# files.info, its "Checking N users" ephemeral) run before the ack goes out, within Slack's 3 s:
# a 429 is waited out once at most, and only when Slack asks for a second.
LISTENER_RATE_LIMIT_PATIENCE_SECONDS = 1.0


@dataclass
class Runtime:
    settings: Settings
    store: Store
    sfox: SfoxClient
    slack: WebClient
    workflow: Workflow
    app: App
    jobs: ThreadPoolExecutor
    clicks: Clicks
    steps: ThreadPoolExecutor = field(
        default_factory=lambda: TrackedPool(STEP_THREADS, thread_name_prefix="sfox-step")
    )
    anchor: AuditAnchor | None = None
    visibility: Visibility | None = None
    batches: Batches | None = None
    delivery: DeliveryLoop | None = None
    schedule: ScheduleLoop | None = None  # scheduled requests and batches claimed at their time
    watch: WatchLoop | None = None  # the watches' balance reads (bot/requests/watching.py)
    stream: DueLoop | None = None  # the audit trail to SFOX_AUDIT_WEBHOOK_URL (bot/runtime/stream.py)
    # The second factor on Approve (bot/mfa/), when the policy's step_up is "totp".
    mfa: StepUp | None = None
    intake: Any = None  # the intake API (bot/intake/wiring.py), when SFOX_INTAKE_SECRET is set
    # Slash commands journalled before their ack; built once the batches are (build_runtime).
    commands: Commands = field(init=False)
    custom_steps: Steps | None = None  # the Workflow Builder step (bot/runtime/steps.py)
    # The tier this process is (bot/runtime/roles.py): ALL records and carries out; WEB only
    # records and wakes the workers (`waker`); WORKER takes the work (`take_loop`).
    role: str = ALL
    waker: Waker | None = None
    take_loop: TakeLoop | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _sweeper: threading.Thread | None = None

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        """Run `fn` after the ack, on the job pool; a failure is logged, never lost silently."""
        future = self.jobs.submit(fn, *args)
        future.add_done_callback(_log_failure)
        return future

    def step(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        """Run a short database step after the ack, on the step pool (never behind slow sFOX calls);
        a failure is logged, never lost silently."""
        future = self.steps.submit(fn, *args)
        future.add_done_callback(_log_failure)
        return future

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """Wait until every request received so far has been fully handled: its step done and the
        jobs it handed off finished. False if that did not happen within `timeout`."""
        pools = [p for p in (self.steps, self.jobs) if isinstance(p, TrackedPool)]
        return wait_all_idle(pools, timeout)

    def sweep(self) -> dict[str, int]:
        """One sweep: the workflow's (expiry, reconcile, lost cards, owed messages), the clicks and
        commands a dead process acknowledged, then the scheduled work and watch reads now due."""
        started = time.monotonic()
        summary = self.workflow.sweep()
        summary["clicks"] = self.clicks.replay()
        summary["commands"] = self.commands.resume()
        if self.custom_steps is not None:  # a refused step's completeError Slack has not taken yet
            summary["steps_refused"] = self.custom_steps.complete_refused()
        if self.batches is not None:
            summary.update(self.batches.sweep())
        if self.schedule is not None:  # due work the schedule loop has not claimed yet (it polls)
            summary["scheduled_started"] = self.schedule.tick()
        if self.watch is not None and not self.watch.running:  # `sfox-bot sweep`: no loop reads them
            summary["watch_reads"] = self.workflow.watch_due(self._stop.is_set)
        if self.visibility is not None:
            summary["reminded"] = self.visibility.reminders.tick()
            if summary["reminded"]:
                summary["delivered"] += self.workflow.deliver()
            self.visibility.metrics.sweep_done(time.monotonic() - started)
        return summary

    def start_sweeper(self) -> None:
        """Sweep at once (finishing what a previous process left), then periodically; and do what
        falls due between sweeps (owed messages, watched balances, scheduled work, the audit stream)."""
        if self.role == WEB:
            return  # the workers do it all
        if self.role == WORKER:
            if self.take_loop is None:
                self.take_loop = TakeLoop(self)
            self.take_loop.start()
        if self._sweeper is None:
            self._sweeper = threading.Thread(target=self._sweep_loop, name="sfox-sweeper", daemon=True)
            self._sweeper.start()
        for loop in self._due_loops():  # bot/runtime/due.py, bot/intake/wiring.py
            if loop is not None:
                loop.start()

    def shutdown(self, wait: bool = True) -> None:
        """Stop taking work, let in-flight sFOX calls finish and be recorded, then close."""
        self._stop.set()
        if self.take_loop is not None:  # no new click or command taken, after one last look
            self.take_loop.stop()
            self.take_loop.last_pass()
        if self.waker is not None:
            self.waker.close()
        if self.schedule is not None:  # no new claim handed to a job pool about to close
            self.schedule.stop(timeout=CLAIM_GRACE_SECONDS)
        # A click acked a moment ago may still be in its step, which may hand a DELETE to `jobs`.
        self.steps.shutdown(wait=wait)
        self.jobs.shutdown(wait=wait)
        # The commands' leases are kept until their jobs are done (or the process dies).
        self.commands.stop()
        if self._sweeper is not None:  # a sweep may be in a reconciling read: let it finish too
            self._sweeper.join(timeout=self.settings.sfox_timeout_seconds + CLAIM_GRACE_SECONDS)
        for loop in (self.delivery, self.stream, getattr(self.intake, "callbacks", None)):
            if loop is not None:  # a Slack call, a webhook POST or a callback it may be making
                loop.stop(timeout=CLAIM_GRACE_SECONDS)
        if self.watch is not None:
            self.watch.stop(timeout=self.settings.sfox_timeout_seconds + CLAIM_GRACE_SECONDS)
        self.sfox.close()

    def _due_loops(self) -> tuple[DueLoop | None, ...]:
        return (
            self.delivery,
            self.schedule,
            self.watch,
            self.stream,
            getattr(self.intake, "callbacks", None),
        )

    def _sweep_loop(self) -> None:
        while not self._stop.is_set():
            try:
                summary = self.sweep()
                if any(summary.values()):
                    log.info("sweep", extra=summary)
            except Exception:
                log.exception("sweep failed; will try again")
            if self.anchor is not None:
                try:
                    self.anchor.tick()
                except Exception:
                    log.exception("audit anchor failed; will try again")
            self._stop.wait(self.settings.sweep_interval_seconds)


def build_runtime(
    settings: Settings,
    *,
    store: Store | None = None,
    approvers: Any = None,
    role: str = ALL,
) -> Runtime:
    """`role`: the tier this process is (bot/runtime/roles.py), ALL by default."""
    from handlers import register

    store = store or Store.from_url(settings.database_url, settings.audit_key)
    sfox = SfoxClient(
        settings.sfox_api_url,
        settings.sfox_api_key or "",
        timeout_seconds=settings.sfox_timeout_seconds,
        max_attempts=settings.sfox_max_attempts,
        # Every call of every process and replica takes its slot in one window of the database
        # (bot/sfox/pacing.py); a batch takes its slots here too (`_batches` below).
        limiter=SharedRateLimiter(
            store, settings.sfox_rate_limit_per_10s, bound=settings.sfox_timeout_seconds
        ),
    )
    slack = make_web_client(settings.slack_bot_token or "", settings.slack_api_url)
    # The outbox's sends: a 429 comes back at once with its Retry-After, to be tried again then.
    outbox_slack = make_web_client(
        settings.slack_bot_token or "", settings.slack_api_url, rate_limit_patience=0
    )
    policy = build_policy(settings, approvers=approvers)
    # Every replica's balance reads, a person's and the watches', in one window of the database.
    route = balances.route_limiter(store, settings.balance_reads_per_10s)
    reader = (
        BalanceReader(sfox, settings.balance_check, limiter=route)
        if settings.balance_check != "off"
        else None
    )
    workflow = Workflow(
        store, sfox, SlackNotifier(slack, outbox_slack), policy, balances=reader.check if reader else None
    )
    app = App(
        # Named, so Bolt does not name it from `inspect.stack()`: that reads the source of every
        # frame on the stack, about 80 ms of CPU for each App built.
        name="sfox-bot",
        signing_secret=settings.slack_signing_secret or "",
        client=make_web_client(
            settings.slack_bot_token or "",
            settings.slack_api_url,
            rate_limit_patience=LISTENER_RATE_LIMIT_PATIENCE_SECONDS,
        ),
        token_verification_enabled=False,
        # Ack as soon as the listener returns, on the request's own thread: no hop to Bolt's
        # listener pool and no 10 ms ack polling, so a busy pool can never delay an ack.
        process_before_response=True,
        logger=logging.getLogger("slack_bolt"),
    )
    app.use(RepeatedEvents().middleware())  # Slack re-sends an event it saw acked late
    jobs = TrackedPool(JOB_THREADS, thread_name_prefix="sfox-job")
    visibility = visibility_parts(settings, store, sfox, slack, outbox_slack, workflow, app)

    def submit(fn: Callable[..., Any], *args: Any) -> Future[Any]:
        return runtime.submit(fn, *args)

    runtime = Runtime(
        settings=settings,
        store=store,
        sfox=sfox,
        slack=slack,
        workflow=workflow,
        app=app,
        jobs=jobs,
        clicks=Clicks(store, workflow, submit, answer_privately),
        anchor=AuditAnchor(
            store.engine,
            slack,
            settings.audit_channel,
            timedelta(minutes=settings.audit_anchor_minutes),
            now=workflow.now,
        )
        if settings.audit_channel
        else None,
        visibility=visibility,
    )
    runtime.mfa = _step_up(settings, policy, store, workflow)
    runtime.clicks.add_steps({WATCH: workflow.start_watching, STOP_WATCHING: workflow.stop_watching})
    runtime.clicks.observers.append(
        lambda click, result: visibility.metrics.click(click.action, click_result(result))
    )
    runtime.batches = _batches(runtime, reader)
    wire_due_work(runtime, submit, read_balances=reader is not None)
    runtime.commands = Commands(
        store,
        workflow,
        runtime.batches,
        submit,
        answer_privately,
        lambda channel_id, user_id, text: tell_privately(slack, channel_id, user_id, text),
    )
    runtime.custom_steps = wire_steps(runtime, outbox_slack)
    runtime.clicks.run_step = runtime.step
    runtime.clicks.answer_home = lambda user, text: visibility.home.publish(user, banner=text)
    runtime.role = role
    visibility.metrics.plays(role)
    if role == WEB:
        hand_over(runtime)
    wire_intake(runtime)
    register(app, runtime)
    return runtime


def _step_up(settings: Settings, policy: Policy, store: Store, workflow: Workflow) -> StepUp | None:
    """The second factor, when the policy asks for one; its key is required then."""
    if policy.step_up == "none":
        return None
    if not settings.mfa_key:
        raise ConfigError("SFOX_MFA_KEY", f"is required when step-up is {policy.step_up}")
    return StepUp(store, Sealer(settings.mfa_key), lambda: workflow.now())


def _batches(runtime: Runtime, reader: BalanceReader | None) -> Batches:
    """Batches on the Runtime's store, sFOX client, Slack client and job pool, paced by the sFOX
    client's own limiter (shared by every replica: a batch's call takes one slot, not two); their
    buttons go through the click journal like the card's."""
    settings = runtime.settings
    check = None
    if reader is not None:
        # The route's own limiter, shared with single requests, but a longer wait for a slot.
        check = BalanceReader(
            runtime.sfox, reader.mode, limiter=reader.limiter, slot_wait_seconds=BALANCE_SLOT_WAIT_SECONDS
        ).check
    batches = Batches(
        runtime.store,
        runtime.sfox,
        BatchSlack(runtime.slack),
        runtime.workflow.policy,
        limiter=runtime.sfox.limiter,
        submit=runtime.submit,
        batch_max=settings.batch_max,
        balance_max=settings.batch_balance_max,
        balances=check,
        clock=runtime.workflow.now,
    )
    runtime.clicks.add_steps(
        {
            BATCH_APPROVE: batches.approve,
            BATCH_DENY: batches.deny,
            BATCH_PAUSE: batches.pause,
            BATCH_RESUME: batches.resume,
            BATCH_CANCEL: batches.cancel,
        }
    )
    return batches


def _log_failure(future: Future[Any]) -> None:
    exc = future.exception()
    if exc is not None:
        log.error("background step failed: %s", type(exc).__name__, exc_info=exc)
