"""The deactivation workflow: who may do what, in which state, and what gets recorded.

It is handed a Store, an sFOX client and a Notifier (the Slack side), so it never sees a Slack
payload and a test can give it real fakes. Each public method is one user-visible step and returns
what to tell the person who acted (an ephemeral answer), or None when the card says it all.

The rules that make deactivation safe live here:
- only approvers may request, approve or deny; the requester never approves their own request;
- the sFOX DELETE is sent only by the caller that won the conditional claim in the store;
- an outcome that cannot be known is reconciled with a read, never with a second DELETE.

The steps live in one module per use case: asking (`bot.asking`), deciding (`bot.deciding`),
executing and reconciling (`bot.executing`), delivering (`bot.delivering`); the types and rules
they share in `bot.workflow_base`.
"""

from __future__ import annotations

from bot.requests.asking import Asking
from bot.requests.base import (
    CARDLESS_GRACE,
    MAX_REASON,
    NOTICE_LEASE_SECONDS,
    PERMANENT_SLACK_ERRORS,
    RETRYABLE_STATUSES,
    USAGE,
    CardRef,
    ClickResult,
    Command,
    Notifier,
    NotifyError,
    Policy,
)
from bot.requests.deciding import Deciding
from bot.requests.delivering import Delivering
from bot.requests.executing import Executing

__all__ = [
    "CARDLESS_GRACE",
    "MAX_REASON",
    "NOTICE_LEASE_SECONDS",
    "PERMANENT_SLACK_ERRORS",
    "RETRYABLE_STATUSES",
    "USAGE",
    "CardRef",
    "ClickResult",
    "Command",
    "Notifier",
    "NotifyError",
    "Policy",
    "Workflow",
]


class Workflow(Asking, Deciding, Executing, Delivering):
    """Every step of a deactivation request, from the slash command to the last thread reply."""
