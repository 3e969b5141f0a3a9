"""The fakes are as strict as Slack and sFOX about time, channels and pace, through real HTTP: the
driver waits 3 s for an ack and no longer (an event is then sent again, with Slack's retry
headers); chat.postMessage and chat.update refuse a wrong channel or ts, and the refusal is kept,
so a bot that sends one fails its test; the fake sFOX keeps sFOX's documented limits unless a test
says why not."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.fakes import sfox_limits
from bot.fakes.local import serve_wsgi, stop, url_of
from bot.fakes.sfox_api import FakeSfox
from bot.fakes.slack_api import FakeSlack
from bot.fakes.slack_driver import ACK_SECONDS, EVENT_RETRIES, Delivery, NotAcknowledged, SlackDriver
from bot.fakes.slack_strict import Refusal
from tests.conftest import ALICE, BOB, BOT_TOKEN, SFOX_KEY, assert_nothing_refused

HANG = "hang"  # an answer that does not come until the test ends
TRICKLE = "trickle"  # an answer that comes in pieces
TRICKLE_GAP = 0.2


class Endpoint:
    """A stand-in for the bot's `/slack/events` that answers each request as scripted (a status,
    a status with headers, or HANG), and keeps the retry headers of each request it saw."""

    def __init__(self, *answers: Any) -> None:
        self.answers = list(answers)
        self.seen: list[tuple[str | None, str | None]] = []
        self.release = threading.Event()
        self.lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        with self.lock:
            self.seen.append(
                (environ.get("HTTP_X_SLACK_RETRY_NUM"), environ.get("HTTP_X_SLACK_RETRY_REASON"))
            )
            answer = self.answers.pop(0) if self.answers else 200
        if answer == HANG:
            self.release.wait(60)
            answer = 200
        if answer == TRICKLE:  # an answer begun at once, finished too late
            start_response("200 OK", [("Content-Type", "text/plain")])
            return self._trickle()
        status, headers = answer if isinstance(answer, tuple) else (answer, [])
        start_response(f"{status} Scripted", [("Content-Type", "text/plain"), *headers])
        return [b""]

    def _trickle(self) -> Iterator[bytes]:
        """Four pieces, TRICKLE_GAP apart: each within the driver's timeout, the whole past it
        (a slow link, simulated; not a test waiting for something)."""
        for piece in (b"o", b"k", b".", b"\n"):
            yield piece
            self.release.wait(TRICKLE_GAP)


@pytest.fixture
def endpoint() -> Iterator[Any]:
    """Serve an Endpoint; yields a function that scripts it and gives a driver pointed at it."""
    made: list[tuple[Endpoint, Any, SlackDriver]] = []

    def serve(slack: FakeSlack, *answers: Any, timeout: float | None = None) -> tuple[Endpoint, SlackDriver]:
        app = Endpoint(*answers)
        server = serve_wsgi(app)
        # The driver's own default unless a test asks for less: the default is what is tested.
        shorter = {} if timeout is None else {"timeout": timeout}
        driver = SlackDriver(url_of(server), "secret", slack, **shorter)
        made.append((app, server, driver))
        return app, driver

    yield serve
    for app, server, driver in made:
        app.release.set()
        driver.close()
        stop(server)


# -- the driver: 3 s, then Slack gives up; an event comes again --------------------------------


def test_the_driver_gives_up_after_slacks_3_seconds_and_does_not_send_a_command_again(fake_slack, endpoint):
    app, driver = endpoint(fake_slack, HANG)
    started = time.monotonic()
    with pytest.raises(NotAcknowledged) as caught:
        driver.command(ALICE, "client_1 slow")
    waited = time.monotonic() - started
    assert ACK_SECONDS - 0.1 <= waited < ACK_SECONDS + 2.0  # not 10 s: Slack's deadline
    assert caught.value.seconds == ACK_SECONDS and caught.value.attempts == 1
    assert app.seen == [(None, None)]  # a command is never re-sent


def test_an_event_not_acknowledged_in_3_seconds_is_sent_again_with_slacks_retry_headers(fake_slack, endpoint):
    app, driver = endpoint(fake_slack, HANG, 200)
    response = driver.home_opened(BOB)
    assert response.status_code == 200
    event_id = response.extensions["event_id"]
    assert app.seen == [(None, None), ("1", "http_timeout")]
    assert driver.deliveries == [
        Delivery(event_id, 0, None, "http_timeout"),
        Delivery(event_id, 1, "http_timeout", 200),
    ]


def test_an_event_answered_with_an_error_is_sent_again_at_most_three_times(fake_slack, endpoint):
    app, driver = endpoint(fake_slack, 500, 503, 200)
    assert driver.home_opened(BOB).status_code == 200
    assert app.seen == [(None, None), ("1", "http_error"), ("2", "http_error")]

    app, driver = endpoint(fake_slack, 500, 500, 500, 500, 500)
    assert driver.home_opened(BOB).status_code == 500  # Slack stops after the third retry
    assert app.seen == [(None, None), ("1", "http_error"), ("2", "http_error"), ("3", "http_error")]
    assert [d.retry_num for d in driver.deliveries] == list(range(EVENT_RETRIES + 1))


def test_an_error_answer_with_x_slack_no_retry_is_not_sent_again(fake_slack, endpoint):
    app, driver = endpoint(fake_slack, (500, [("X-Slack-No-Retry", "1")]))
    assert driver.home_opened(BOB).status_code == 500
    assert app.seen == [(None, None)]


def test_an_event_never_acknowledged_is_given_up_after_its_retries(fake_slack, endpoint):
    # Shorter than Slack's 3 s (a stricter driver needs no reason): four deliveries time out.
    app, driver = endpoint(fake_slack, HANG, HANG, HANG, HANG, timeout=0.5)
    with pytest.raises(NotAcknowledged) as caught:
        driver.home_opened(BOB)
    assert caught.value.attempts == EVENT_RETRIES + 1
    assert [s[0] for s in app.seen] == [None, "1", "2", "3"]
    assert {d.outcome for d in driver.deliveries} == {"http_timeout"}


def test_an_answer_that_trickles_in_past_the_deadline_is_not_an_ack(fake_slack, endpoint):
    """Slack's 3 s are for the whole answer, not for each read of it."""
    app, driver = endpoint(fake_slack, TRICKLE, timeout=TRICKLE_GAP * 2.5)
    with pytest.raises(NotAcknowledged):
        driver.command(ALICE, "client_1 slow link")
    assert len(app.seen) == 1


def test_a_driver_waits_longer_than_slack_only_with_a_reason(fake_slack):
    with pytest.raises(ValueError):
        SlackDriver("http://127.0.0.1:9", "secret", fake_slack, timeout=10)
    with pytest.raises(ValueError):
        SlackDriver("http://127.0.0.1:9", "secret", fake_slack, timeout=10, why="  ")
    SlackDriver("http://127.0.0.1:9", "secret", fake_slack, timeout=10, why="a test's reason").close()


# -- the fake Slack: a wrong channel or ts is refused, and kept ---------------------------------


def _error(call: Any) -> str:
    with pytest.raises(SlackApiError) as caught:
        call()
    return str(caught.value.response["error"])


def _taken(slack: FakeSlack) -> list[tuple[str, str]]:
    """The refusals provoked on purpose, taken out (the fixture checks the rest is empty)."""
    taken = [(r.where, r.error) for r in slack.refusals]
    slack.refusals.clear()
    return taken


def test_post_message_refuses_an_empty_or_unknown_channel(fake_slack):
    client = WebClient(token=BOT_TOKEN, base_url=fake_slack.api_url)
    assert _error(lambda: client.chat_postMessage(channel="", text="hi")) == "channel_not_found"
    assert _error(lambda: client.chat_postMessage(channel="general", text="hi")) == "channel_not_found"
    assert _error(lambda: client.chat_postMessage(channel="DNEVEROPENED", text="hi")) == "channel_not_found"
    fake_slack.channels.remove("C0DELETED1")  # deleted, or the bot removed from it
    assert _error(lambda: client.chat_postMessage(channel="C0DELETED1", text="hi")) == "channel_not_found"
    assert fake_slack.messages == []
    assert _taken(fake_slack) == [("chat.postMessage", "channel_not_found")] * 4

    assert client.chat_postMessage(channel="C0STRICT1", text="hi")["channel"] == "C0STRICT1"
    # A user id posts to the app's DM with them (Slack answers with the DM's id); a DM's id
    # works once the DM is open.
    assert client.chat_postMessage(channel=ALICE, text="hi")["channel"] == "D" + ALICE
    dm = client.conversations_open(users=BOB)["channel"]["id"]
    assert client.chat_postMessage(channel=dm, text="hi")["channel"] == dm
    assert [m.channel for m in fake_slack.messages] == ["C0STRICT1", "D" + ALICE, dm]


def test_a_fake_made_with_its_channels_knows_only_those():
    with FakeSlack(token=BOT_TOKEN, channels={"C0KNOWN01"}) as slack:
        client = WebClient(token=BOT_TOKEN, base_url=slack.api_url)
        assert client.chat_postMessage(channel="C0KNOWN01", text="hi")["ok"]
        assert _error(lambda: client.chat_postMessage(channel="C0OTHER01", text="hi")) == "channel_not_found"
        assert _taken(slack) == [("chat.postMessage", "channel_not_found")]


def test_chat_update_finds_a_message_by_its_channel_and_its_ts(fake_slack):
    client = WebClient(token=BOT_TOKEN, base_url=fake_slack.api_url)
    ts = client.chat_postMessage(channel="C0STRICT1", text="card")["ts"]
    other = client.chat_postMessage(channel="C0STRICT2", text="another card")["ts"]

    update = client.chat_update
    assert _error(lambda: update(channel="C0STRICT2", ts=ts, text="x")) == "message_not_found"
    assert _error(lambda: update(channel="C0STRICT1", ts="1.000001", text="x")) == "message_not_found"
    assert _error(lambda: update(channel="", ts=ts, text="x")) == "channel_not_found"
    assert _error(lambda: update(channel=ALICE, ts=ts, text="x")) == "channel_not_found"  # not a channel
    fake_slack.channels.remove("C0STRICT1")
    assert _error(lambda: update(channel="C0STRICT1", ts=ts, text="x")) == "channel_not_found"
    assert [m.text for m in fake_slack.messages] == ["card", "another card"]  # nothing changed
    assert _taken(fake_slack) == [
        ("chat.update", "message_not_found"),
        ("chat.update", "message_not_found"),
        ("chat.update", "channel_not_found"),
        ("chat.update", "channel_not_found"),
        ("chat.update", "channel_not_found"),
    ]

    assert update(channel="C0STRICT2", ts=other, text="updated")["ts"] == other
    assert fake_slack.message(other).text == "updated" and fake_slack.message(other).updates == 1


def test_a_refused_channel_is_kept_so_the_test_that_made_the_bot_send_it_fails(fake_slack):
    client = WebClient(token=BOT_TOKEN, base_url=fake_slack.api_url)
    _error(lambda: client.chat_update(channel="C0STRICT1", ts="1.000001", text="x"))
    assert fake_slack.refusals == [Refusal("chat.update", "message_not_found", "C0STRICT1 1.000001")]
    with pytest.raises(AssertionError, match="message_not_found"):
        assert_nothing_refused(fake_slack)
    fake_slack.refusals.clear()


# -- the fake sFOX: sFOX's documented limits, on by default ---------------------------------


def _lookups(sfox: FakeSfox, n: int) -> list[int]:
    with httpx.Client(base_url=sfox.url, headers={"Authorization": f"Bearer {SFOX_KEY}"}) as http:
        return [http.get("/v1/enterprise/users/client_1").status_code for _ in range(n)]


def test_the_fake_sfox_answers_429_past_250_calls_in_10_seconds_by_default(fake_sfox):
    calls, seconds = sfox_limits.OVERALL
    assert (calls, seconds) == (250, 10.0)
    started = time.monotonic()
    statuses = _lookups(fake_sfox, calls + 1)
    assert time.monotonic() - started < seconds, "too slow a machine to fill the window"
    assert statuses == [200] * calls + [429]
    assert fake_sfox.rate_limited == 1 and len(fake_sfox.requests()) == calls + 1


def test_the_fake_sfox_keeps_the_balance_routes_own_limit_by_default(fake_sfox):
    calls, seconds = sfox_limits.BALANCE_ROUTE
    assert (calls, seconds) == (5, 10.0)
    with httpx.Client(base_url=fake_sfox.url) as http:
        made = http.post(
            "/v1/enterprise/user-tokens/client_1", headers={"Authorization": f"Bearer {SFOX_KEY}"}
        )
        token = made.json()["data"]["token"]
        reads = [
            http.get("/v1/user/balance", headers={"Authorization": f"Bearer {token}"})
            for _ in range(calls + 1)
        ]
    assert [r.status_code for r in reads] == [200] * calls + [429]
    assert reads[-1].headers["Retry-After"] == str(fake_sfox.retry_after)
    assert len(fake_sfox.balance_reads) == calls and fake_sfox.rate_limited == 1
    assert _lookups(fake_sfox, 1) == [200]  # the route's limit, not every call's


def test_sfoxs_limits_are_switched_off_only_with_a_reason():
    with pytest.raises(sfox_limits.Unlimited):
        FakeSfox(api_key=SFOX_KEY, limited=False)
    fake = FakeSfox(api_key=SFOX_KEY)
    with pytest.raises(sfox_limits.Unlimited):
        fake.unlimited(why=" ")
    with pytest.raises(sfox_limits.Unlimited):
        fake.rate_limit = None  # type: ignore[assignment]  # not behind unlimited's back
    assert fake.rate_limit == (250, 10.0) and fake.balance_limit == (5, 10.0)
    with FakeSfox(api_key=SFOX_KEY, limited=False, why="this test sends past the limit on purpose") as free:
        assert free.unlimited_why and free.rate_limit is None and free.balance_limit is None
        assert set(_lookups(free, 260)) == {200}


def test_the_most_arrivals_in_any_window_counts_as_sfox_does():
    """A call exactly one window after another is in a new window, as the fake admits it."""
    from bot.fakes.sfox_limits import most_in_any_window

    assert most_in_any_window([], 10.0) == 0
    assert most_in_any_window([5.0, 0.0, 9.99], 10.0) == 3  # order does not matter
    assert most_in_any_window([0.0, 10.0, 20.0], 10.0) == 1
    assert most_in_any_window([0.0, 1.0, 10.5, 10.9], 10.0) == 3


def test_the_fake_sfox_window_says_how_many_calls_it_still_counts():
    """What a burst that starts now is added to (the benchmarks wait for it to be zero)."""
    now = [100.0]
    window = sfox_limits.Window((3, 10.0), clock=lambda: now[0])
    assert window.counted_within(10.0) == 0
    assert window.admit() and window.admit()
    now[0] += 6.0
    assert window.admit()
    assert window.counted_within(10.0) == 3
    now[0] += 4.0  # the first two left the window; the third has not
    assert window.counted_within(10.0) == 1
    assert window.counted_within(3.0) == 0
