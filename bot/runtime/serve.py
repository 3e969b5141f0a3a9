"""`sfox-bot run`: HTTP mode under gunicorn (threaded workers), or Socket Mode.

Both build the same Runtime (`build_runtime`). The Runtime is built inside each gunicorn worker,
never before the fork, and shut down in the worker's exit hook, so a SIGTERM lets in-flight sFOX
calls finish and be recorded. Gunicorn's own messages go through the bot's logging setup, so with
LOG_FORMAT=json every line on stderr is one JSON object, scrubbed of secrets like the rest."""

from __future__ import annotations

import logging
import signal
import socketserver
import threading
from typing import Any

from gunicorn.app.base import BaseApplication
from gunicorn.glogging import Logger as GunicornLogger
from slack_sdk.errors import SlackApiError

from bot.config import Settings
from bot.runtime.bootstrap import Runtime, build_runtime
from bot.runtime.roles import ALL, WORKER
from bot.runtime.web import make_ops_app, make_wsgi_app
from bot.slack.calls import slack_failure

log = logging.getLogger("sfox_bot.server")

OPTIONAL_OPTIONS = frozenset({"control_socket_disable"})


class ServeError(Exception):
    """The server could not start (e.g. Slack refused the Socket Mode connection)."""


class RootLogger(GunicornLogger):
    """Gunicorn logging that hands every record to the root logger instead of its own handlers."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        for logger in (self.error_log, self.access_log):
            for handler in list(logger.handlers):
                logger.removeHandler(handler)
            logger.propagate = True


class GunicornServer(BaseApplication):
    def __init__(self, settings: Settings, options: dict[str, Any], role: str = ALL) -> None:
        self.settings = settings
        self.options = options
        self.role = role
        self.runtimes: list[Runtime] = []
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            if key in OPTIONAL_OPTIONS and key not in self.cfg.settings:
                continue  # an older gunicorn without this feature
            self.cfg.set(key, value)

    def load(self) -> Any:
        runtime = build_runtime(self.settings, role=self.role)
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
        "logger_class": RootLogger,
        "loglevel": settings.log_level.lower(),
        "proc_name": "sfox-bot",
        # Newer gunicorn opens a control socket at a fixed path in $HOME: replicas on one host
        # would fight over it, and the bot does not use it.
        "control_socket_disable": True,
    }


def serve_http(settings: Settings, role: str = ALL) -> None:
    """`role`: ALL (one process records and carries out) or WEB (bot/runtime/roles.py)."""
    server: GunicornServer

    def worker_exit(_arbiter: Any, _worker: Any) -> None:
        for runtime in server.runtimes:
            log.info("worker stopping: finishing in-flight sFOX calls")
            runtime.shutdown(wait=True)

    options = {**gunicorn_options(settings), "worker_exit": worker_exit}
    server = GunicornServer(settings, options, role)
    log.info("serving HTTP", extra={"bind": options["bind"], "role": role})
    server.run()


def _serve_ops(runtime: Runtime, settings: Settings) -> Any:
    """`/healthz`, `/readyz` and `/metrics` on HOST:METRICS_PORT for Socket Mode (HTTP mode has
    them on its own port), in a thread; None (and a warning) when the port cannot be bound."""
    from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

    class Quiet(WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
            pass

    class Threaded(socketserver.ThreadingMixIn, WSGIServer):
        daemon_threads = True

    try:
        server = make_server(
            settings.host,
            settings.metrics_port,
            make_ops_app(runtime),
            server_class=Threaded,
            handler_class=Quiet,
        )
    except OSError as exc:
        log.warning("metrics port not served", extra={"port": settings.metrics_port, "error": str(exc)})
        return None
    threading.Thread(target=server.serve_forever, name="sfox-ops", daemon=True).start()
    log.info("serving /healthz, /readyz, /metrics", extra={"bind": f"{settings.host}:{server.server_port}"})
    return server


def _until_signalled() -> threading.Event:
    stopped = threading.Event()

    def on_term(_signum: int, _frame: Any) -> None:
        stopped.set()

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    return stopped


def serve_worker(settings: Settings) -> None:
    """`sfox-bot run --role worker`: no port, no Slack connection; takes the web tier's work
    and runs every loop until SIGTERM, then finishes what it holds."""
    runtime = build_runtime(settings, role=WORKER)
    stopped = _until_signalled()
    runtime.start_sweeper()
    log.info("worker started")
    stopped.wait()
    log.info("worker stopping: finishing in-flight sFOX calls")
    runtime.shutdown(wait=True)
    log.info("stopped")


def serve_socket_mode(settings: Settings, role: str = ALL) -> None:
    """`role`: ALL, or WEB (the socket process acks, workers work)."""
    from slack_bolt.adapter.socket_mode import SocketModeHandler

    runtime = build_runtime(settings, role=role)
    stopped = _until_signalled()
    handler = SocketModeHandler(runtime.app, settings.slack_app_token)
    try:
        handler.connect()
    except SlackApiError as exc:
        runtime.shutdown(wait=True)
        failure = slack_failure(exc)
        said = (failure.code or failure.http_status) if failure else "?"
        raise ServeError(
            f"Slack refused the Socket Mode connection ({said}): "
            "check SLACK_APP_TOKEN and that Socket Mode is enabled for the app"
        ) from None
    except Exception as exc:
        runtime.shutdown(wait=True)
        raise ServeError(
            f"cannot open the Socket Mode connection ({type(exc).__name__}): is Slack reachable "
            "at SLACK_API_URL?"
        ) from None
    runtime.start_sweeper()
    ops = _serve_ops(runtime, settings)
    log.info("connected in Socket Mode")
    stopped.wait()
    log.info("shutting down: finishing in-flight sFOX calls")
    handler.close()
    if ops is not None:
        ops.shutdown()
        ops.server_close()
    runtime.shutdown(wait=True)
    log.info("stopped")
