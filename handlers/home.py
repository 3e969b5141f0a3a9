"""The App Home tab: `app_home_opened` publishes it; its Approve and Deny buttons are the card's
actions (the same click journal, rules and claim), answered by republishing the clicker's tab with
the answer at the top. Deny opens the reason modal first (handlers/deny_modal.py), Approve the code
modal with step-up (handlers/approve_modal.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from slack_bolt import App, Respond

    from bot.runtime.bootstrap import Runtime


def register(app: App, runtime: Runtime) -> None:
    assert runtime.visibility is not None

    @app.event("app_home_opened")
    def on_home_opened(event: dict[str, Any]) -> None:
        user = str(event.get("user") or "")
        if event.get("tab", "home") == "home" and user:
            runtime.submit(runtime.visibility.home.publish, user)  # type: ignore[union-attr]

    # Its Approve is registered by handlers/approve_modal.py (the code modal with step-up).


def home_answer(runtime: Runtime) -> Callable[[dict[str, Any], Respond], Callable[[str], None]]:
    """Answer a click made in the Home tab: republish the clicker's tab with the answer on top."""

    def answer_for(body: dict[str, Any], _respond: Respond) -> Callable[[str], None]:
        user = str((body.get("user") or {}).get("id", ""))

        def answer(text: str) -> None:
            if runtime.visibility is not None and user:
                runtime.visibility.home.publish(user, banner=text)

        return answer

    return answer_for
