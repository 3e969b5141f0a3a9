"""`sfox-bot run`: HTTP mode under gunicorn (threaded workers), or Socket Mode.

The Runtime is built inside each gunicorn worker, never before the fork, and shut down in the
worker's exit hook, so a SIGTERM lets in-flight sFOX calls finish and be recorded."""

from __future__ import annotations

import logging
import signal
import threading
from typing import Any

from gunicorn.app.base import BaseApplication

from bot.config import Settings
from bot.runtime import Runtime, build_runtime
from bot.web import make_wsgi_app

log = logging.getLogger("sfox_bot.server")


class GunicornServer(BaseApplication):
    def __init__(self, settings: Settings, options: dict[str, Any]) -> None:
        self.settings = settings
        self.options = options
        self.runtimes: list[Runtime] = []
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        runtime = build_runtime(self.settings)
        runtime.start_sweeper()
        self.runtimes.append(runtime)
        return make_wsgi_app(runtime)


def gunicorn_options(settings: Settings) -> dict[str, Any]:
    """How `sfox-bot run` is served; the benchmark serves its bare-Bolt baseline the same way."""
    return {
        "bind": f"{settings.host}:{settings.port}",
        "workers": 1,
        "worker_class": "gthread",
        "threads": 32,
        "timeout": 60,
        "graceful_timeout": int(settings.sfox_timeout_seconds) + 15,
        "keepalive": 5,
        "accesslog": None,
        "proc_name": "sfox-bot",
    }


def serve_http(settings: Settings) -> None:
    server: GunicornServer

    def worker_exit(_arbiter: Any, _worker: Any) -> None:
        for runtime in server.runtimes:
            runtime.shutdown(wait=True)

    options = {**gunicorn_options(settings), "worker_exit": worker_exit}
    server = GunicornServer(settings, options)
    log.info("serving HTTP", extra={"bind": options["bind"]})
    server.run()


def serve_socket_mode(settings: Settings) -> None:
    from slack_bolt.adapter.socket_mode import SocketModeHandler

    runtime = build_runtime(settings)
    runtime.start_sweeper()
    handler = SocketModeHandler(runtime.app, settings.slack_app_token)
    stopped = threading.Event()

    def on_term(_signum: int, _frame: Any) -> None:
        stopped.set()

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    handler.connect()
    log.info("connected in Socket Mode")
    stopped.wait()
    log.info("shutting down: finishing in-flight sFOX calls")
    handler.close()
    runtime.shutdown(wait=True)
