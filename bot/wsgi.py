"""For people who bring their own WSGI server: `gunicorn 'bot.wsgi:create_app()'` (or `bot.wsgi:app`).

Settings come from the environment; the schema must already be migrated (`sfox-bot migrate`)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from bot import migrate
from bot.config import load_settings
from bot.logs import configure
from bot.runtime import build_runtime
from bot.web import make_wsgi_app


def create_app() -> Callable[..., Iterable[bytes]]:
    settings = load_settings().require_for_run()
    configure(settings.log_level, settings.log_format, settings.secrets())
    runtime = build_runtime(settings)
    if not migrate.is_at_head(runtime.store.engine):
        raise SystemExit("the database schema is not at head: run `sfox-bot migrate` first")
    runtime.start_sweeper()
    return make_wsgi_app(runtime)


class _LazyApp:
    """Builds the app on the first request, inside the worker process (never before a fork)."""

    def __init__(self) -> None:
        self._app: Callable[..., Iterable[bytes]] | None = None

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if self._app is None:
            self._app = create_app()
        return self._app(environ, start_response)


app = _LazyApp()
