"""What every step of the workflow shares: the Slack side's interface (Notifier), the policy, the
values a step returns, the delivery constants, and the state a Workflow holds (a Store, an sFOX
client, a Notifier, a Policy and a clock). The steps themselves are in bot.requests.workflow; the
approval rules (and `Policy`) in bot.policy.rules."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Protocol

from bot.policy.rules import Policy
from bot.sfox.client import SfoxClient
from bot.slack.blocks import escape
from bot.store.db import Store
from bot.store.records import Notice, RequestRecord

if TYPE_CHECKING:
    from bot.sfox.balances import BalanceCheck

log = logging.getLogger("sfox_bot.workflow")

# Angle brackets are Slack control sequences, even inside backticks: they must be escaped.
# A request still without a card this long after it was recorded will never get one: the
# process that was posting it stopped (posting, retries included, takes well under a minute).
CARDLESS_GRACE = timedelta(minutes=5)
# How long a thread may hold a Slack message it is sending before another may take it over (a
# process that died holding it must not hold back the messages after it for long). A card update
# is idempotent, so its lease can be short; a thread reply must never be posted twice; a step
# completion sent twice is answered `execution_not_in_running_state`, so it is short too.
NOTICE_LEASE_SECONDS = {"card": 15.0, "reply": 30.0, "dm": 30.0, "step": 10.0}
USAGE = "Usage: `/sfox-deactivate &lt;sfox_user_id&gt; [reason] [--when-empty | --at &lt;when&gt;]`"
RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})


class Notifier(Protocol):
    def post_card(self, record: RequestRecord) -> str:
        """Post the approval card; returns the message ts. Raises NotifyError."""

    def update_card(self, record: RequestRecord) -> None:
        """Re-render the card for the record's current state. Raises NotifyError."""

    def reply(self, record: RequestRecord, text: str) -> None:
        """Post `text` in the card's thread. Raises NotifyError."""

    def find_card(self, record: RequestRecord) -> str | None:
        """The ts of a card posted for `record` but never recorded, or None. Raises NotifyError."""

    def reply_posted(self, record: RequestRecord, text: str) -> bool:
        """Whether `text` is already in the card's thread. Raises NotifyError."""


@dataclass(frozen=True)
class CardRef:
    """Where a clicked button sits: the card's channel and ts, as the click reports them, and
    whether the message is this bot's own (only then may it become a request's card)."""

    channel_id: str
    ts: str
    ours: bool


@dataclass(frozen=True)
class Command:
    """A validated `/sfox-deactivate` invocation."""

    requester: str
    channel_id: str
    sfox_user_id: str
    reason: str
    # Its row in the command journal (bot/runtime/commands.py), recorded with the request it
    # creates so that a command carried out again after a crash never creates a second.
    command_id: int | None = None
    # Its options (bot/policy/when.py): watch the balances until they read zero before the card;
    # or deactivate at this instant (UTC), never before.
    when_empty: bool = False
    run_at: datetime | None = None
    # Asked through the intake API (bot/intake/) by this system, not a Slack user: shown "via …".
    via: str | None = None


@dataclass(frozen=True)
class ClickResult:
    """What a button click led to: an ephemeral answer for the clicker, and whether the caller
    must now run `execute` (only the one who won the claim is told so)."""

    ephemeral: str | None = None
    execute: bool = False


class WorkflowBase:
    """The state every use case of the workflow works with; each use case is a mixin of it."""

    def __init__(
        self,
        store: Store,
        sfox: SfoxClient,
        notifier: Notifier,
        policy: Policy,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        balances: Callable[[str], BalanceCheck] | None = None,
    ) -> None:
        self.store = store
        self.sfox = sfox
        self.notifier = notifier
        self.policy = policy
        self.now = clock
        # Reads the target's balances before the card (bot.sfox.balances); None: no balance check.
        self.balances = balances
        # Senders for other kinds of owed message ("dm": bot/slack/dms.py), tried before card and reply.
        self.senders: dict[str, Callable[[Notice, RequestRecord | None], None]] = {}
        # Watches (bot/requests/watching.py): their balance reads, paced by the limiter every replica
        # shares (None: balances are not read, so nothing is watched), their pace and their span.
        self.watch_reader: Callable[[str], BalanceCheck] | None = None
        self.watch_interval = timedelta(seconds=900)
        self.watch_span = timedelta(days=14)
        # Told when an owed message was given a time to be tried again (a Retry-After, a backoff),
        # so the delivery loop (bot/runtime/delivery.py) can wake for it instead of its next poll.
        self.retry_noted: Callable[[], None] = lambda: None
        # Told when a request was scheduled (or put back to scheduled), so the schedule loop
        # (bot/runtime/schedule.py) can wake for its time instead of its next poll.
        self.schedule_noted: Callable[[], None] = lambda: None


def card_failure_advice(slack_code: str) -> str:
    advice = {
        "not_in_channel": "I am not in this channel: invite me with `/invite @sFOX Deactivate` and try again.",
        "channel_not_found": "I cannot see this channel (private or a DM?): invite me, or use a channel I am in.",
        "is_archived": "This channel is archived: use another channel.",
        "ratelimited": "Slack is rate limiting me: wait a minute and try again.",
    }.get(slack_code, "Slack did not accept the message; try again in a minute.")
    return (
        f":warning: I could not post the approval card (Slack said `{escape(slack_code, 60)}`). {advice} "
        "The request was closed, so nothing can be approved by mistake."
    )


def ms_since(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


def log_fields(record: RequestRecord, **extra: object) -> dict[str, object]:
    return {"request_id": record.id, "sfox_user_id": record.sfox_user_id, **extra}
