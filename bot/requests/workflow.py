"""The deactivation workflow: who may do what, in which state, and what gets recorded.

It is handed a Store, an sFOX client and a Notifier (the Slack side), so it never sees a Slack
payload and a test can give it real fakes. Each public method is one user-visible step and returns
what to tell the person who acted (an ephemeral answer), or None when the card says it all.

The rules that make deactivation safe live here:
- only approvers may request, approve or deny; the requester never approves their own request;
- the sFOX DELETE is sent only by the caller that won the conditional claim in the store;
- an outcome that cannot be known is reconciled with a read, never with a second DELETE.

The steps live in one module per use case: asking (`bot.requests.asking`), deciding
(`bot.requests.deciding`), executing and reconciling (`bot.requests.executing`), running a
scheduled request at its time (`bot.requests.scheduling`, built on executing), delivering
(`bot.requests.delivering`), watching a funded account until it is empty
(`bot.requests.watching`); the types they share in `bot.requests.base`, the rules in `bot.policy`.
"""

from __future__ import annotations

from bot.requests.asking import Asking
from bot.requests.deciding import Deciding
from bot.requests.delivering import Delivering
from bot.requests.scheduling import Scheduling
from bot.requests.watching import Watching


class Workflow(Asking, Watching, Deciding, Scheduling, Delivering):
    """Every step of a deactivation request, from the slash command to the last thread reply."""
