"""Where the intake API's outcome callbacks may go (issue 32, part 4), through real HTTP: a
`callback_url` that names an internal address is 400 at intake; a name that resolves to one is
refused at send time before anything connects; the connection goes to the very address that was
checked (DNS rebinding), with TLS verified for the name; SFOX_INTAKE_CALLBACK_HOSTS is the only way
to a loopback or private receiver; and a callback is tried at most SFOX_INTAKE_CALLBACK_ATTEMPTS
times, then given up, audited and shown.

No test here connects to a private or link-local address (tests/callback_support.py)."""

from __future__ import annotations

import json
import socket
from datetime import datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import pytest

from bot.webhooks.signing import signature_problem
from tests.callback_support import PUBLIC, Recording, StubResolver, TestAuthority
from tests.test_intake import INTAKE, SECRET, _Receiver, ask, get, post

SECRET_PATH = "/hook/tok_5f2a9c?key=k-77"  # a receiver's token in its path and query: never shown


@pytest.fixture
def funded(fake_sfox: Any) -> str:
    """A user with funds: the request is `blocked` at once, so its callback is owed at once."""
    fake_sfox.add_user("acct_funded", balance=7)
    return "acct_funded"


def _callbacks(bot: Any, resolver: StubResolver, transport: httpx.BaseTransport) -> Any:
    """The bot's callback sender, asking `resolver` and sending through `transport`."""
    callbacks = bot.runtime.intake.callbacks.callbacks
    callbacks.resolve = resolver
    callbacks.http = httpx.Client(transport=transport, timeout=5, follow_redirects=False)
    return callbacks


def _later(callbacks: Any, seconds: float) -> None:
    """Move the sender's clock on (every retry falls due), without waiting."""
    now = callbacks.now()
    callbacks.now = lambda: now + timedelta(seconds=seconds)


def _abandoned(bot: Any, request_id: int) -> list[dict[str, Any]]:
    return [json.loads(e.detail) for e in bot.store.events_for(request_id) if e.kind == "callback_abandoned"]


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("https://10.0.0.5/x", "private"),
        ("https://172.16.3.4/x", "private"),
        ("https://192.168.1.1/x", "private"),
        ("https://100.64.0.9/x", "shared"),
        ("https://127.0.0.1:8443/x", "loopback"),
        ("https://[::1]/x", "loopback"),
        ("https://169.254.169.254/latest/meta-data", "link-local"),
        ("https://[fe80::1]/x", "link-local"),
        ("https://0.0.0.0/x", "unspecified"),
        ("https://[::]/x", "unspecified"),
        ("https://[::ffff:127.0.0.1]/x", "IPv4-mapped"),
        ("https://[::ffff:8.8.8.8]/x", "IPv4-mapped"),
        ("https://[2002:a00:1::1]/x", "6to4"),
        ("https://[fd00::1]/x", "unique-local"),
        ("https://224.0.0.251/x", "multicast"),
        ("https://[ff02::1]/x", "multicast"),
        ("https://255.255.255.255/x", "broadcast"),
        ("https://240.0.0.1/x", "reserved"),
        ("https://localhost:8443/x", "loopback"),
        ("https://api.localhost/x", "loopback"),
        ("https://0x7f.1/x", "dotted-quad"),
        ("https://2130706433/x", "dotted-quad"),
        ("http://127.0.0.1:9/x", "SFOX_INTAKE_CALLBACK_HOSTS"),
        ("http://partner.example/x", "https"),
        ("https://user:pw@partner.example/x", "credentials"),
    ],
)
def test_a_callback_url_naming_an_internal_address_is_400_naming_the_field(make_bot, fake_sfox, url, why):
    fake_sfox.add_user("acct_intake_1")
    bot = make_bot(**INTAKE)
    response = post(bot, ask(callback_url=url))
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error.startswith("callback_url: ") and why in error
    assert not list(bot.store.history())


def test_with_the_allow_list_only_its_hosts_are_accepted_and_only_a_loopback_one_over_http(
    make_bot, fake_sfox
):
    fake_sfox.add_user("acct_intake_1")
    bot = make_bot(**INTAKE, SFOX_INTAKE_CALLBACK_HOSTS="partner.example, 127.0.0.1:8443")
    refused = {
        "https://other.example/x": "other.example is not in SFOX_INTAKE_CALLBACK_HOSTS",
        "https://partner.example:8443/x": "partner.example:8443 is not in SFOX_INTAKE_CALLBACK_HOSTS",
        "https://127.0.0.1:8444/x": "127.0.0.1:8444 is not in SFOX_INTAKE_CALLBACK_HOSTS",
        "http://partner.example/x": "https",
    }
    for url, why in refused.items():
        response = post(bot, ask(callback_url=url))
        assert response.status_code == 400 and why in response.json()["error"], (url, response.text)
    assert not list(bot.store.history())
    for n, url in enumerate(
        ("https://partner.example/x", "https://127.0.0.1:8443/x", "http://127.0.0.1:8443/x")
    ):
        fake_sfox.add_user(f"acct_ok_{n}")
        response = post(bot, ask(f"acct_ok_{n}", callback_url=url))
        assert response.status_code == 202, (url, response.text)


@pytest.mark.parametrize(
    "answer",
    [
        ["10.0.0.5"],
        ["169.254.169.254"],
        ["::ffff:10.0.0.5"],
        ["fe80::1"],
        ["0.0.0.0"],
        ["127.0.0.1"],
        [PUBLIC, "10.0.0.5"],  # any one forbidden address refuses the name
    ],
)
def test_a_name_resolving_to_an_internal_address_is_refused_at_once_and_nothing_connects(
    make_bot, funded, answer
):
    bot = make_bot(**INTAKE)
    resolver, transport = StubResolver(answer), Recording()
    callbacks = _callbacks(bot, resolver, transport)
    response = post(bot, ask(funded, callback_url="https://internal.example" + SECRET_PATH))
    assert response.status_code == 202 and response.json()["status"] == "blocked"
    request_id = response.json()["request_id"]
    assert callbacks.deliver_due() == 0
    assert resolver.calls == [("internal.example", 443)] and transport.seen == []
    _later(callbacks, 3600)
    assert callbacks.deliver_due() == 0 and len(resolver.calls) == 1  # final: never tried again
    [event] = _abandoned(bot, request_id)
    assert event["reason"] == "destination" and event["attempts"] == 1
    assert "internal.example" in event["error"] and "tok_5f2a9c" not in json.dumps(event)
    shown = get(bot, f"/api/v1/requests/{request_id}").json()["callback"]
    assert shown["state"] == "abandoned" and shown["attempts"] == 1
    assert "tok_5f2a9c" not in json.dumps(shown)


def test_dns_rebinding_the_post_goes_to_the_checked_address_and_a_new_answer_is_checked_again(
    make_bot, funded
):
    """The name answers a public address on the first attempt and 127.0.0.1 on the second: the
    first POST goes to the checked public address itself (never re-resolved on the way, the name
    in Host and SNI); the second attempt checks its own answer and is refused before connecting."""
    bot = make_bot(**INTAKE)
    resolver, transport = StubResolver([PUBLIC], ["127.0.0.1"]), Recording(status=503)
    callbacks = _callbacks(bot, resolver, transport)
    response = post(bot, ask(funded, callback_url="https://rebind.example" + SECRET_PATH))
    request_id = response.json()["request_id"]
    assert callbacks.deliver_due() == 0
    [sent] = transport.seen
    assert sent.url.host == PUBLIC and sent.url.raw_path.decode() == SECRET_PATH
    assert sent.headers["Host"] == "rebind.example" and sent.extensions["sni_hostname"] == "rebind.example"
    _later(callbacks, 60)
    assert callbacks.deliver_due() == 0
    assert resolver.calls == [("rebind.example", 443)] * 2 and len(transport.seen) == 1
    [event] = _abandoned(bot, request_id)
    assert event["reason"] == "destination" and event["attempts"] == 2 and "loopback" in event["error"]


def test_an_allow_listed_name_is_called_at_its_checked_address_over_tls_verified_for_the_name(
    make_bot, funded
):
    """`callbacks.example` resolves (by the stub) to 127.0.0.2, where nothing listens, then
    127.0.0.1: the POST reaches the receiver there, TLS verified for the name; a receiver whose
    certificate is for another name gets nothing."""
    ca = TestAuthority()
    good = _Receiver(fail=0, tls=ca.server_context("callbacks.example"), name="callbacks.example")
    wrong = _Receiver(fail=0, tls=ca.server_context("elsewhere.example"), name="callbacks.example")
    try:
        bot = make_bot(**INTAKE, SFOX_INTAKE_CALLBACK_HOSTS=f"{good.entry},{wrong.entry}")
        resolver = StubResolver(["127.0.0.2", "127.0.0.1"])
        transport = Recording(httpx.HTTPTransport(verify=ca.client_context()))
        callbacks = _callbacks(bot, resolver, transport)
        response = post(bot, ask(funded, callback_url=good.url))
        assert response.status_code == 202, response.text
        assert callbacks.deliver_due() == 1
        assert transport.hosts == ["127.0.0.2", "127.0.0.1"]
        assert {r.extensions["sni_hostname"] for r in transport.seen} == {"callbacks.example"}
        [(status, headers, body)] = good.seen
        assert status == 200 and headers["Host"] == good.entry
        assert signature_problem(SECRET, headers, body) is None
        assert json.loads(body)["request_id"] == response.json()["request_id"]
        assert get(bot, f"/api/v1/requests/{response.json()['request_id']}").json()["callback"] == {
            "state": "delivered",
            "attempts": 1,
            "error": None,
        }

        funded_too = "acct_funded_2"
        bot.sfox.add_user(funded_too, balance=1)
        other = post(bot, ask(funded_too, callback_url=wrong.url))
        assert callbacks.deliver_due() == 0 and wrong.seen == []  # the handshake failed: no POST
        shown = get(bot, f"/api/v1/requests/{other.json()['request_id']}").json()["callback"]
        assert shown["state"] == "owed" and shown["error"] == "ConnectError"  # tried again later
    finally:
        good.close()
        wrong.close()


def test_a_callback_is_given_up_after_its_attempts_audited_logged_and_shown(make_bot, funded, caplog):
    receiver = _Receiver(fail=10**6)  # always 503
    try:
        bot = make_bot(**INTAKE, SFOX_INTAKE_CALLBACK_HOSTS=receiver.entry, SFOX_INTAKE_CALLBACK_ATTEMPTS="3")
        callbacks = bot.runtime.intake.callbacks.callbacks
        response = post(bot, ask(funded, callback_url=receiver.url + "?token=tok_5f2a9c"))
        request_id = response.json()["request_id"]
        for _ in range(3):
            callbacks.deliver_due()
            _later(callbacks, 60)
        assert [status for status, _, _ in receiver.seen] == [503, 503, 503]
        assert callbacks.keys.next_callback_due() is None  # given up with its last attempt
        assert callbacks.deliver_due() == 0 and len(receiver.seen) == 3
        [event] = _abandoned(bot, request_id)
        assert event == {"attempts": 3, "reason": "attempts", "error": "http 503"}
        shown = get(bot, f"/api/v1/requests/{request_id}").json()["callback"]
        assert shown == {"state": "abandoned", "attempts": 3, "error": "http 503"}
        given_up = [r for r in caplog.records if r.getMessage() == "outcome callback abandoned"]
        assert len(given_up) == 1 and given_up[0].levelname == "ERROR"
        assert "tok_5f2a9c" not in caplog.text
    finally:
        receiver.close()


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410, 422, 499])
def test_a_receiver_s_final_4xx_is_given_up_audited_too(make_bot, funded, status):
    """Any 4xx but 408 and 429 is an answer that will not change: given up at once, never sent again."""
    bot = make_bot(**INTAKE)
    resolver, transport = StubResolver([PUBLIC]), Recording(status=status)
    callbacks = _callbacks(bot, resolver, transport)
    response = post(bot, ask(funded, callback_url="https://partner.example/gone"))
    request_id = response.json()["request_id"]
    assert callbacks.deliver_due() == 0 and len(transport.seen) == 1
    [event] = _abandoned(bot, request_id)
    assert event == {"attempts": 1, "reason": "refused", "error": f"http {status}"}
    assert callbacks.keys.next_callback_due() is None
    _later(callbacks, 3600)
    assert callbacks.deliver_due() == 0 and len(transport.seen) == 1
    shown = get(bot, f"/api/v1/requests/{request_id}").json()["callback"]
    assert shown == {"state": "abandoned", "attempts": 1, "error": f"http {status}"}


def _frozen(callbacks: Any) -> datetime:
    """Stop the sender's clock (at now): what falls due when is read off it, not off wall time."""
    at = callbacks.now().replace(microsecond=0)  # whole seconds, as an HTTP date says them
    callbacks.now = lambda: at
    return at


@pytest.mark.parametrize("status", [408, 429, 500, 503])
def test_a_receiver_s_408_429_or_5xx_is_tried_again_at_its_backoff_and_then_delivered(
    make_bot, funded, status
):
    bot = make_bot(**INTAKE)
    transport = Recording(status=status)
    callbacks = _callbacks(bot, StubResolver([PUBLIC]), transport)
    response = post(bot, ask(funded, callback_url="https://partner.example/outcome"))
    request_id = response.json()["request_id"]
    at = _frozen(callbacks)
    assert callbacks.deliver_due() == 0 and len(transport.seen) == 1
    shown = get(bot, f"/api/v1/requests/{request_id}").json()["callback"]
    assert shown == {"state": "owed", "attempts": 1, "error": f"http {status}"}
    assert callbacks.keys.next_callback_due() == at + timedelta(seconds=1)  # retry_delay(1)
    assert callbacks.deliver_due() == 0 and len(transport.seen) == 1  # not before its time
    transport.status = 200
    _later(callbacks, 1)
    assert callbacks.deliver_due() == 1 and len(transport.seen) == 2
    shown = get(bot, f"/api/v1/requests/{request_id}").json()["callback"]
    assert shown == {"state": "delivered", "attempts": 2, "error": None}
    assert _abandoned(bot, request_id) == []


@pytest.mark.parametrize(
    ("status", "retry_after", "wait"),
    [
        (429, "30", 30),
        (503, "30", 30),
        (408, "7", 7),
        (429, "3600", 60),  # at most the backoff's cap
        (429, "0", 1),  # never sooner than the backoff
        (429, "soon", 1),  # unreadable: the backoff
        (429, "date+45", 45),  # an HTTP date, read against the sender's clock
    ],
)
def test_a_retried_answer_s_retry_after_is_honoured_within_the_backoff_s_cap(
    make_bot, funded, status, retry_after, wait
):
    bot = make_bot(**INTAKE)
    callbacks = _callbacks(bot, StubResolver([PUBLIC]), Recording(status=status))
    at = _frozen(callbacks)
    if retry_after.startswith("date+"):
        retry_after = format_datetime(at + timedelta(seconds=int(retry_after[5:])), usegmt=True)
    transport = Recording(status=status, headers={"Retry-After": retry_after})
    callbacks.http = httpx.Client(transport=transport, timeout=5, follow_redirects=False)
    response = post(bot, ask(funded, callback_url="https://partner.example/outcome"))
    request_id = response.json()["request_id"]
    assert callbacks.deliver_due() == 0 and len(transport.seen) == 1
    assert callbacks.keys.next_callback_due() == at + timedelta(seconds=wait)
    _later(callbacks, wait - 0.5)
    assert callbacks.deliver_due() == 0 and len(transport.seen) == 1
    transport.status, transport.headers = 200, {}
    callbacks.now = lambda: at + timedelta(seconds=wait)
    assert callbacks.deliver_due() == 1 and len(transport.seen) == 2
    assert get(bot, f"/api/v1/requests/{request_id}").json()["callback"]["state"] == "delivered"


def test_a_name_that_does_not_resolve_is_tried_again_and_a_lowered_cap_gives_it_up_unsent(make_bot, funded):
    def no_dns(host: str, port: int) -> list[str]:
        raise socket.gaierror(-2, "Name or service not known")

    bot = make_bot(**INTAKE)
    transport = Recording(status=503)
    callbacks = _callbacks(bot, StubResolver([PUBLIC]), transport)
    callbacks.resolve = no_dns
    response = post(bot, ask(funded, callback_url="https://partner.example/x"))
    request_id = response.json()["request_id"]
    assert callbacks.deliver_due() == 0 and transport.seen == []
    shown = get(bot, f"/api/v1/requests/{request_id}").json()["callback"]
    assert shown == {"state": "owed", "attempts": 1, "error": "partner.example did not resolve (gaierror)"}
    callbacks.resolve = StubResolver([PUBLIC])
    _later(callbacks, 60)
    assert callbacks.deliver_due() == 0 and transport.hosts == [PUBLIC]  # a 503: owed still
    callbacks.max_attempts = 2  # lowered (a restart with a smaller SFOX_INTAKE_CALLBACK_ATTEMPTS)
    _later(callbacks, 60)
    assert callbacks.deliver_due() == 0 and len(transport.seen) == 1  # given up, not sent again
    assert _abandoned(bot, request_id) == [{"attempts": 2, "reason": "attempts", "error": "http 503"}]


def test_the_client_follows_no_redirect_and_takes_no_proxy_from_the_environment(
    make_bot, funded, monkeypatch
):
    """A receiver's redirect (to loopback here) is an answer, not a new destination; and a proxy
    set in the environment would connect in the bot's place, to whatever it resolves."""
    from bot.intake.callbacks import callback_client

    receiver = _Receiver(fail=0)
    try:
        bot = make_bot(**INTAKE, SFOX_INTAKE_CALLBACK_HOSTS=f"callbacks.example,{receiver.entry}")
        callbacks = bot.runtime.intake.callbacks.callbacks
        callbacks.resolve = StubResolver(["127.0.0.1"])
        transport = Recording(status=307, headers={"Location": receiver.url})
        callbacks.http = callback_client(transport)
        first = post(bot, ask(funded, callback_url="https://callbacks.example/x"))
        assert callbacks.deliver_due() == 0 and len(transport.seen) == 1 and receiver.seen == []
        shown = get(bot, f"/api/v1/requests/{first.json()['request_id']}").json()["callback"]
        assert shown == {"state": "owed", "attempts": 1, "error": "http 307"}

        bot.sfox.add_user("acct_funded_2", balance=1)
        post(bot, ask("acct_funded_2", callback_url=receiver.url))
        for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
            monkeypatch.setenv(name, "http://127.0.0.1:9")  # nothing listens there
        callbacks.http = callback_client()
        assert callbacks.deliver_due() == 1 and len(receiver.seen) == 1
    finally:
        receiver.close()
