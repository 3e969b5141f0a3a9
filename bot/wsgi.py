"""For people who bring their own WSGI server: `gunicorn 'bot.wsgi:create_app()'` (or `bot.wsgi:app`).

Settings come from the environment; the schema must already be migrated (`sfox-bot migrate`)."""

from __future__ import annotations

import atexit
import threading
from collections.abc import Callable, Iterable
from typing import Any

from gunicorn.errors import AppImportError

from bot.config import ConfigError, load_settings
from bot.logs import configure
from bot.runtime.bootstrap import build_runtime
from bot.runtime.web import make_wsgi_app
from bot.store import migrate


class NotReady(AppImportError):
    """The app cannot start; gunicorn prints this one line and stops instead of respawning workers
    that would fail the same way (other servers just see the exception)."""


def create_app() -> Callable[..., Iterable[bytes]]:
    try:
        settings = load_settings().require_for_run()
    except ConfigError as exc:
        raise NotReady(f"sfox-bot: configuration error: {exc}") from None
    configure(settings.log_level, settings.log_format, settings.secrets())
    runtime = build_runtime(settings)
    try:
        at_head = migrate.is_at_head(runtime.store.engine)
    except Exception as exc:
        runtime.shutdown()
        raise NotReady(f"sfox-bot: cannot read the database at DATABASE_URL: {type(exc).__name__}") from None
    if not at_head:
        runtime.shutdown()
        raise NotReady("sfox-bot: the database schema is not at head: run `sfox-bot migrate` first")
    runtime.start_sweeper()
    # The server stops its worker with SIGTERM and a normal exit: finish and record in-flight
    # sFOX calls before the process goes.
    atexit.register(runtime.shutdown)
    return make_wsgi_app(runtime)


class _LazyApp:
    """Builds the app on the first request, inside the worker process (never before a fork)."""

    def __init__(self) -> None:
        self._app: Callable[..., Iterable[bytes]] | None = None
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if self._app is None:
            with self._lock:  # threaded servers: the first requests may arrive together
                if self._app is None:
                    self._app = create_app()
        return self._app(environ, start_response)


app = _LazyApp()
