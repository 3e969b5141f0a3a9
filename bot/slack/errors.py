"""A Slack call's failure as a typed value, shared by every caller of Slack: the use cases catch
it (their Notifier raises it), and bot/slack/calls.py is the one place that makes it."""

from __future__ import annotations

# Slack errors that retrying will not fix: stop trying that message (the outcome stays recorded).
PERMANENT_SLACK_ERRORS = frozenset(
    {
        "channel_not_found",
        "message_not_found",
        "is_archived",
        "cant_update_message",
        "invalid_auth",
        "account_inactive",
        "no_card",
        # A direct message to someone who cannot get one (bot/slack/dms.py).
        "user_not_found",
        "user_disabled",
        "cannot_dm_bot",
    }
)


class NotifyError(Exception):
    """A Slack call failed; `code` is Slack's error string (e.g. `not_in_channel`). `retry_after`
    is set when Slack refused the call for its rate limit (HTTP 429): the seconds it asked us to
    wait, from its `Retry-After`. Such a call did nothing (a message was not posted)."""

    def __init__(self, code: str, *, retry_after: float | None = None) -> None:
        super().__init__(code)
        self.code = code
        self.retry_after = retry_after

    @property
    def permanent(self) -> bool:
        """Whether trying again can never help (the card, channel or person is gone), so the
        outbox stops trying that message; anything else is retried with backoff."""
        return self.code in PERMANENT_SLACK_ERRORS
