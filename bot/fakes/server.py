"""The HTTP server both fakes run on."""

from http.server import ThreadingHTTPServer


class FakeHTTPServer(ThreadingHTTPServer):
    """A threaded server with a deep accept queue. The stdlib's is 5 connections: past that the
    kernel drops new connections and the client's TCP retries them a second later, so a burst
    of bot calls (the Slack client opens a connection per call) would stall for 1 s at the fake,
    something real Slack and sFOX never do."""

    request_queue_size = 1024
    daemon_threads = True
