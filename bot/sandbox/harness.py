"""A complete local world for the demo and the console: the real bot (the runtime `sfox-bot run`
builds, behind the real WSGI app) on 127.0.0.1, a fake Slack Web API, a fake sFOX API (or, on
explicit request, the real one), and named people who type commands and click buttons.

Everything a person does becomes a correctly signed HTTP request to `/slack/events`, exactly as
Slack would send it; everything the bot does comes back over HTTP to the fakes. Nothing in the bot
knows it is being driven from here. The settings are made up per run (fresh random tokens and
signing secret); the real SLACK_*/SFOX_* environment is never read, except SFOX_API_KEY and
SFOX_API_URL when the caller passes a `real_sfox` target on purpose.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from bot.config import Settings, load_settings
from bot.fakes.local import serve_wsgi, stop, url_of
from bot.fakes.polling import poll
from bot.fakes.sfox_api import FakeSfox
from bot.fakes.slack_api import Message
from bot.fakes.slack_driver import SlackDriver
from bot.runtime.bootstrap import Runtime, build_runtime
from bot.runtime.web import make_wsgi_app
from bot.sandbox.people import cannot_play, meet_the_policy, who_approves
from bot.sandbox.recording import Journal, RecordingSfox, RecordingSlack
from bot.sandbox.transcript import (
    BotAnswered,
    Clicked,
    DialogSubmitted,
    Entry,
    Ephemeral,
    Transcript,
    Typed,
    buttons,
)
from bot.slack.blocks import APPROVE, DENY, RETRY, card, card_text
from bot.slack.watch_blocks import STOP_WATCHING
from bot.store import migrate
from bot.store.db import Store
from bot.store.records import RequestRecord
from bot.store.schema import OPEN_STATUSES

CHANNEL_ID = "CSANDBOX"
CHANNEL_NAME = "sfox-ops"
# name → Slack user id; alice and bob are approvers, mallory is not.
PEOPLE = {"alice": "UALICE", "bob": "UBOB", "mallory": "UMALLORY"}
APPROVERS = ("alice", "bob")
BUTTONS = {
    "approve": (APPROVE, "Approve"),
    "deny": (DENY, "Deny"),
    "retry": (RETRY, "Retry deactivation"),
    "stop": (STOP_WATCHING, "Stop watching"),  # in the requester's DM about a watch
}
SETTLE_SECONDS = 60.0
DEFAULT_DATABASE = "sfox-bot.db"
_PROXY_VARS = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")


class SandboxError(Exception):
    """The sandbox cannot start or cannot do what was asked; the message says why."""


@dataclass(frozen=True)
class RealSfox:
    """The real sFOX API as the target, named explicitly by the operator."""

    url: str
    api_key: str


@contextmanager
def database(fresh: bool) -> Iterator[Path]:
    """./sfox-bot.db (the path `sfox-bot history` reads by default), or a temporary one that is
    gone afterwards."""
    if fresh:
        with tempfile.TemporaryDirectory(prefix="sfox-bot-sandbox-") as tmp:
            yield Path(tmp) / DEFAULT_DATABASE
    else:
        yield Path(DEFAULT_DATABASE).resolve()


class Sandbox:
    """Use it as a context manager (`with Sandbox(path) as sandbox:`): closing stops every server
    and thread it started, in the reverse order."""

    def __init__(
        self,
        database_path: Path,
        real_sfox: RealSfox | None = None,
        policy_file: str | None = None,
        *,
        slack_pace: bool = True,
    ) -> None:
        self.database_path = database_path
        # SFOX_POLICY_FILE for the sandboxed bot (`sfox-bot console --policy FILE`); its user groups
        # are the fake Slack's (`group` in the console sets one's members).
        self.policy_file = policy_file
        self.journal = Journal()
        self.people = dict(PEOPLE)
        self.names = {uid: name for name, uid in self.people.items()}
        self.transcript = Transcript(self.names, {CHANNEL_ID: CHANNEL_NAME})
        self.real_sfox = real_sfox
        self._stack: list[Any] = []
        self.slack = RecordingSlack(self.journal, token="xoxb-sandbox-" + secrets.token_hex(12))
        # Slack's per-channel pace (about one message a second): the console keeps it; the demo,
        # a scripted show whose every scene posts in one channel, would spend most of its time
        # waiting on it, so it may switch it off (its messages and their order are the same).
        self.slack.rate.enabled = slack_pace
        self.fake_sfox: FakeSfox | None = None
        if real_sfox is None:
            self.fake_sfox = RecordingSfox(self.journal, api_key="sandbox-" + secrets.token_hex(16))
        self.settings: Settings | None = None
        self.runtime: Runtime | None = None
        self.driver: SlackDriver | None = None
        self._server: Any = None
        self._clock_offset = timedelta(0)

    # -- life cycle ------------------------------------------------------------------------------

    def start(self) -> Sandbox:
        if self.real_sfox is None:
            # Nothing here may leave 127.0.0.1; Slack's SDK would send even local calls to a proxy.
            for name in _PROXY_VARS:
                os.environ.pop(name, None)
        signing_secret = secrets.token_hex(24)
        self.slack.start()
        self._stack.append(self.slack.stop)
        if self.fake_sfox is not None:
            self.fake_sfox.start()
            self._stack.append(self.fake_sfox.stop)
            sfox_url, sfox_key = self.fake_sfox.url, self.fake_sfox.api_key
        else:
            assert self.real_sfox is not None
            sfox_url, sfox_key = self.real_sfox.url, self.real_sfox.api_key
        settings = load_settings(
            {
                "SLACK_BOT_TOKEN": self.slack.token,
                "SLACK_SIGNING_SECRET": signing_secret,
                "SLACK_API_URL": self.slack.api_url,
                "SFOX_API_KEY": sfox_key,
                "SFOX_API_URL": sfox_url,
                **who_approves(self.policy_file, [self.people[name] for name in APPROVERS]),
                "DATABASE_URL": f"sqlite:///{self.database_path}",
                "SFOX_TIMEOUT_SECONDS": "20",
                "SFOX_MAX_ATTEMPTS": "3",
                # Remind at the first sweep, so the demo and the console can show a reminder
                # (the bot's default is halfway through a request's hour).
                "SFOX_REMIND_AFTER_FRACTION": "0",
                # The sandbox's own fake sFOX has no balance route limit: its scenes need not wait
                # for one (the real sFOX keeps the bot's default pace).
                **({"SFOX_BALANCE_READS_PER_10S": "1000"} if self.fake_sfox is not None else {}),
            }
        )
        if unplayable := cannot_play(settings):
            raise SandboxError(unplayable)
        meet_the_policy(self, settings)
        store = Store.from_url(settings.database_url)
        self._stack.append(store.close)
        try:
            migrate.upgrade(store.engine)
        except Exception as exc:
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            raise SandboxError(f"cannot use the database {self.database_path}: {reason}") from None
        _refuse_foreign_requests(store, self.database_path)
        self._restore_cards(store)
        self.settings = settings
        self.runtime = build_runtime(settings, store=store)
        self._stack.append(self.runtime.shutdown)
        if self.runtime.delivery is not None:
            self.runtime.delivery.start()  # owed messages go out when due, as in `sfox-bot run`
        self._server = serve_wsgi(make_wsgi_app(self.runtime))
        self._stack.append(lambda: stop(self._server))
        self.driver = SlackDriver(url_of(self._server), signing_secret, self.slack, channel_id=CHANNEL_ID)
        self._stack.append(self.driver.close)
        return self

    def close(self) -> None:
        while self._stack:
            step = self._stack.pop()
            # Closing must go on whatever one step raises: every later step frees something too.
            with contextlib.suppress(Exception):
                step()

    def __enter__(self) -> Sandbox:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def store(self) -> Store:
        assert self.runtime is not None
        return self.runtime.store

    # -- people acting ---------------------------------------------------------------------------

    def user_id(self, name: str) -> str:
        try:
            return self.people[name]
        except KeyError:
            raise SandboxError(f"nobody called {name!r} here; people: {', '.join(self.people)}") from None

    def is_approver(self, name: str) -> bool:
        if self.runtime is not None and self.policy_file:
            return self.user_id(name) in self.runtime.workflow.policy.approvers
        return name in APPROVERS

    def command(self, name: str, text: str) -> list[Entry]:
        """`name` types `/sfox-deactivate <text>`; returns everything that followed."""
        assert self.driver is not None
        user = self.user_id(name)
        self.journal.take()
        entries: list[Entry] = [Typed(user, f"/sfox-deactivate {text}".rstrip())]
        body, response_name = self.driver.command_body(user, text)
        self.journal.own(response_name, user)
        response = self._post(body)
        entries.extend(self._answer(user, response))
        return entries + self._settle()

    def click(self, name: str, button: str, request_id: int, reason: str | None = None) -> list[Entry]:
        """`name` clicks a button (`approve`, `deny`, `retry`) on the card of `request_id`. A Deny
        opens the bot's reason dialog, which `name` submits with `reason` (or none)."""
        assert self.driver is not None
        user = self.user_id(name)
        action_id, label = BUTTONS[button]
        record = self.store.get(request_id)
        if record is not None and record.message_ts and self.slack.message(record.message_ts):
            self.transcript.remember_card(record.message_ts, record.id)
        offered = record is not None and label in buttons(card(record))
        self.journal.take()
        entries: list[Entry] = [Clicked(user, label, request_id, offered)]
        message_ts = record.message_ts if record is not None else None
        body, response_name = self.driver.click_body(user, action_id, str(request_id), message_ts)
        self.journal.own(response_name, user)
        response = self._post(body)
        entries.extend(self._answer(user, response))
        modal = self.driver.modal_for(response_name)
        if modal is not None:
            entries.append(DialogSubmitted(user, "Deny", reason or ""))
            self.driver.submit_view(user, modal, {"reason": reason or ""})
        return entries + self._settle()

    def click_batch(self, name: str, label: str, batch_id: int) -> list[Entry]:
        """`name` clicks a batch card's button (`Approve`, `Deny`, `Pause`, `Resume`, `Cancel`);
        returns everything that followed, the whole run of the batch included."""
        from bot.slack.batch_card import BATCH_ACTIONS
        from bot.store.batches import BatchStore

        assert self.driver is not None
        user = self.user_id(name)
        action_id = next(a for a in BATCH_ACTIONS if a.endswith("_" + label.lower()))
        batch = BatchStore(self.store).get(batch_id)
        message_ts = batch.message_ts if batch is not None else None
        self.journal.take()
        entries: list[Entry] = [Clicked(user, label, batch_id, True)]
        body, response_name = self.driver.click_body(user, action_id, str(batch_id), message_ts)
        self.journal.own(response_name, user)
        response = self._post(body)
        entries.extend(self._answer(user, response))
        return entries + self._settle()

    def sweep(self) -> list[Entry]:
        """What `sfox-bot sweep` does: expire, reconcile unknown outcomes, resend owed messages."""
        assert self.runtime is not None
        self.journal.take()
        self.runtime.sweep()
        return self._settle()

    def later(self, delta: timedelta) -> list[Entry]:
        """Move the bot's clock `delta` on, then sweep: what falls due meanwhile (a watch's next
        balance read, a scheduled deactivation, an expiry) is done as if that time had passed.
        The demo and the console show in a moment what takes minutes or days."""
        assert self.runtime is not None
        self._clock_offset += delta
        offset = self._clock_offset
        self.runtime.workflow.now = lambda: datetime.now(UTC) + offset
        return self.sweep()

    def render(self, entries: list[Entry]) -> list[str]:
        return self.transcript.render(entries)

    def records(self, ids: list[int]) -> Iterator[RequestRecord]:
        for request_id in sorted(ids, reverse=True):
            record = self.store.get(request_id)
            if record is not None:
                yield record

    # -- helpers ---------------------------------------------------------------------------------

    def _restore_cards(self, store: Store) -> None:
        """Slack keeps a channel's messages; the fake starts empty each run. Put back the cards an
        earlier session posted that can still change (open, or failed and retryable), so their
        buttons work and their updates land, as they would in Slack."""
        for record in store.history(limit=None):
            if record.message_ts and (record.status in OPEN_STATUSES or record.retryable):
                with self.slack.lock:
                    self.slack.messages.append(
                        Message(record.channel_id, record.message_ts, card_text(record), card(record))
                    )

    def _post(self, body: bytes) -> httpx.Response:
        assert self.driver is not None
        try:
            return self.driver.post(body, "application/x-www-form-urlencoded")
        except httpx.HTTPError as exc:
            raise SandboxError(f"the bot did not answer: {type(exc).__name__}") from None

    def _answer(self, user: str, response: httpx.Response) -> list[Entry]:
        if response.status_code != 200:
            return [BotAnswered(response.status_code, response.text[:300])]
        if not response.content:
            return []
        try:
            data = response.json()
        except ValueError:
            return [Ephemeral(user, response.text)]
        text = data.get("text") if isinstance(data, dict) else None
        return [Ephemeral(user, str(text))] if text else []

    def _settle(self) -> list[Entry]:
        """Wait until the bot has finished everything the last request started, the Slack messages
        it owes included (those Slack's pace held back), then report it."""
        assert self.runtime is not None
        runtime = self.runtime
        if not runtime.wait_idle(SETTLE_SECONDS) or not poll(
            lambda: not runtime.store.unsent_notices(runtime.workflow.now()), SETTLE_SECONDS
        ):
            raise SandboxError(f"the bot was still busy after {SETTLE_SECONDS:.0f} s")
        return self.journal.take()


def _refuse_foreign_requests(store: Store, path: Path) -> None:
    """Never mix made-up requests into a real audit trail: a database that holds requests from a
    real Slack channel is not a sandbox."""
    for record in store.history(limit=None):
        if record.channel_id != CHANNEL_ID:
            raise SandboxError(
                f"{path} holds requests made in Slack (e.g. #{record.id}); the sandbox will not add "
                "made-up ones to that audit trail. Use --fresh, or run it in another directory."
            )
