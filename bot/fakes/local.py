"""Serve a WSGI app on 127.0.0.1 in a background thread: how the tests, the demo and the console
put the bot's real HTTP face (`bot.runtime.web`) between the Slack driver and the Bolt app."""

from __future__ import annotations

import socketserver
import threading
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server


class _ThreadingWSGIServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True
    request_queue_size = 128  # the default backlog (5) resets simultaneous connections


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass


def serve_wsgi(app: Callable[..., Iterable[bytes]], host: str = "127.0.0.1", port: int = 0) -> WSGIServer:
    """Start serving `app` (one thread per request) and return the server; stop it with `stop`."""
    server = make_server(host, port, app, _ThreadingWSGIServer, _QuietHandler)
    # Poll for shutdown every 50 ms (not 0.5 s): stopping a server is then quick.
    threading.Thread(target=server.serve_forever, args=(0.05,), name="bot-http", daemon=True).start()
    return server


def url_of(server: WSGIServer) -> str:
    return f"http://{server.server_address[0]}:{server.server_port}"


def stop(server: WSGIServer) -> None:
    server.shutdown()
    server.server_close()
