"""The baseline: a bare slack-bolt App that only acks `/sfox-deactivate` and the Approve button.

It is served exactly as `sfox-bot run` serves the bot (gunicorn gthread, `bot.runtime.serve.gunicorn_options`)
and its App is configured as `bot.runtime` configures the bot's (listeners run on the request's
thread, `process_before_response`), so the ratio ours/bare measures what the bot adds on top of Bolt. Run as `python -m bench.bare_app` with the bot's
SLACK_* settings, HOST and PORT set.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable
from typing import Any

from gunicorn.app.base import BaseApplication
from slack_bolt import Ack, App
from slack_bolt.adapter.wsgi import SlackRequestHandler

from bot.config import Settings, load_settings
from bot.runtime.serve import gunicorn_options
from bot.slack.blocks import APPROVE
from bot.slack.calls import make_web_client


def make_app(settings: Settings) -> Callable[..., Iterable[bytes]]:
    app = App(
        name="bare",  # as the bot's: not named from inspect.stack()
        signing_secret=settings.slack_signing_secret or "",
        # The same Web API client as the bot's (Bolt's authorization middleware calls auth.test
        # once, on the fake Slack), so both apps do the same per-request work.
        client=make_web_client(settings.slack_bot_token or "", settings.slack_api_url),
        token_verification_enabled=False,
        process_before_response=True,
        logger=logging.getLogger("slack_bolt"),
    )

    @app.command("/sfox-deactivate")
    def on_command(ack: Ack) -> None:
        ack(response_type="ephemeral", text="ok")

    @app.action(APPROVE)
    def on_approve(ack: Ack) -> None:
        ack()

    slack = SlackRequestHandler(app, path="/slack/events")

    def wsgi(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == "/healthz":
            start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
            return [b"ok"]
        return slack(environ, start_response)

    return wsgi


class _Server(BaseApplication):
    def __init__(self, options: dict[str, Any], settings: Settings) -> None:
        self.options = options
        self.settings = settings
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        return make_app(self.settings)


def main() -> None:
    settings = load_settings(dict(os.environ), dotenv=False)
    options = {**gunicorn_options(settings), "proc_name": "bare-bolt"}
    _Server(options, settings).run()


if __name__ == "__main__":
    main()
