"""sFOX misbehaving, injected through the real HTTP fake: retries and their limits, odd answers,
slow answers, and outcomes that cannot be known (reconciled by a read, never a second DELETE)."""

from __future__ import annotations

import email.utils
import json
import socket
import threading
import time

import pytest

from bot.fakes.sfox_api import FakeSfox, Fault
from bot.sfox import client as sfox_module
from bot.sfox import errors as sfox_errors
from bot.sfox.client import SfoxClient
from bot.sfox.errors import SfoxError
from tests.conftest import ALICE, BOB, CAROL, MALLORY, SFOX_KEY
from tests.helpers import buttons, card_text, open_request, wait_status, wait_until

RETRYABLE = (429, 500, 502, 503, 504)
NEVER_RETRIED = (400, 401, 403, 404, 422)


class Sleeps:
    """Records the waits the client asks for (sleeping only if `real`); can act on the first one."""

    def __init__(self, on_first: object = None, real: bool = False) -> None:
        self.delays: list[float] = []
        self.on_first = on_first
        self.real = real

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        if self.real:
            time.sleep(seconds)
        if len(self.delays) == 1 and callable(self.on_first):
            self.on_first()


def client(url: str, sleeps: Sleeps | None = None, **kw: object) -> SfoxClient:
    options: dict = {"timeout_seconds": 60.0, "max_attempts": 4}
    options.update(kw)
    return SfoxClient(url, SFOX_KEY, sleep=sleeps or Sleeps(), **options)


# -- retries: what, how often, how long ------------------------------------------------------------


@pytest.mark.parametrize("status", RETRYABLE)
def test_read_is_retried_on_retryable_statuses(fake_sfox, status):
    fake_sfox.script(*[Fault("GET", status=status, body={"error": "busy"})] * 2)
    sleeps = Sleeps()
    user = client(fake_sfox.url, sleeps).get_user("client_1")
    assert user.email == "ada@example.com"
    assert len(fake_sfox.requests("GET")) == 3
    assert len(sleeps.delays) == 2


@pytest.mark.parametrize("status", NEVER_RETRIED)
@pytest.mark.parametrize("method", ["GET", "DELETE"])
def test_client_errors_are_never_retried(fake_sfox, status, method):
    fake_sfox.script(Fault(method, status=status, body={"error": "no"}))
    sleeps = Sleeps()
    c = client(fake_sfox.url, sleeps)
    with pytest.raises(SfoxError) as caught:
        c.get_user("client_1") if method == "GET" else c.deactivate("client_1")
    assert caught.value.status == status
    assert not caught.value.unknown
    assert len(fake_sfox.requests(method)) == 1
    assert sleeps.delays == []


def test_attempts_are_bounded_by_max_attempts(fake_sfox):
    fake_sfox.script(*[Fault("GET", status=503)] * 10)
    with pytest.raises(SfoxError) as caught:
        client(fake_sfox.url, max_attempts=3).get_user("client_1")
    assert caught.value.status == 503
    assert caught.value.attempts == 3
    assert len(fake_sfox.requests("GET")) == 3


def test_backoff_is_exponential_capped_and_jittered(fake_sfox):
    fake_sfox.script(*[Fault("GET", status=500)] * 9)
    sleeps = Sleeps()
    with pytest.raises(SfoxError):
        client(fake_sfox.url, sleeps, max_attempts=9, timeout_seconds=600).get_user("client_1")
    assert len(sleeps.delays) == 8
    for n, delay in enumerate(sleeps.delays, start=1):
        ceiling = min(sfox_module.BACKOFF_CAP_SECONDS, sfox_module.BACKOFF_BASE_SECONDS * 2 ** (n - 1))
        assert ceiling / 2 <= delay <= ceiling, (n, delay)
    assert max(sleeps.delays) <= sfox_module.BACKOFF_CAP_SECONDS
    assert sleeps.delays[-1] >= sfox_module.BACKOFF_CAP_SECONDS / 2  # reached the cap
    # Jitter: the waits are not the bare exponential sequence.
    bare = [min(8.0, 0.25 * 2 ** (n - 1)) for n in range(1, 9)]
    assert sleeps.delays != bare


def test_retry_after_seconds_is_honoured(fake_sfox):
    fake_sfox.script(Fault("GET", status=429, headers={"Retry-After": "7"}))
    sleeps = Sleeps()
    client(fake_sfox.url, sleeps).get_user("client_1")
    assert len(sleeps.delays) == 1 and sleeps.delays[0] >= 7


def test_retry_after_http_date_is_honoured(fake_sfox):
    when = email.utils.formatdate(time.time() + 20, usegmt=True)
    fake_sfox.script(Fault("GET", status=503, headers={"Retry-After": when}))
    sleeps = Sleeps()
    client(fake_sfox.url, sleeps).get_user("client_1")
    assert len(sleeps.delays) == 1 and 15 <= sleeps.delays[0] <= 21


def test_retry_after_is_capped(fake_sfox):
    fake_sfox.script(Fault("GET", status=429, headers={"Retry-After": "86400"}))
    sleeps = Sleeps()
    client(fake_sfox.url, sleeps, timeout_seconds=600).get_user("client_1")
    assert sleeps.delays == [sfox_module.RETRY_AFTER_CAP_SECONDS]


def test_retry_after_past_the_time_budget_gives_up_at_once(fake_sfox):
    fake_sfox.script(Fault("GET", status=429, headers={"Retry-After": "20"}))
    sleeps = Sleeps()
    with pytest.raises(SfoxError) as caught:
        client(fake_sfox.url, sleeps, timeout_seconds=5).get_user("client_1")
    assert caught.value.status == 429
    assert sleeps.delays == []
    assert len(fake_sfox.requests("GET")) == 1


def test_total_time_is_bounded_by_the_budget(fake_sfox):
    """Every wait fits in the budget: the sum of the backoffs never exceeds SFOX_TIMEOUT_SECONDS."""
    fake_sfox.script(*[Fault("GET", status=500)] * 20)
    sleeps = Sleeps(real=True)
    with pytest.raises(SfoxError):
        client(fake_sfox.url, sleeps, max_attempts=20, timeout_seconds=1).get_user("client_1")
    assert sum(sleeps.delays) < 1
    assert len(fake_sfox.requests("GET")) < 20


def test_read_timeout_on_a_read_is_retried(fake_sfox):
    """A hung read may use at most half the budget, so there is room for a second try."""
    fake_sfox.script(Fault("GET", delay=30))
    user = client(fake_sfox.url, timeout_seconds=4).get_user("client_1")
    assert user.user_id == "client_1"
    assert len(fake_sfox.requests("GET")) == 2


@pytest.mark.parametrize("fault", [Fault("GET", drop=True), Fault("GET", reset=True)], ids=["drop", "reset"])
def test_broken_connection_on_a_read_is_retried(fake_sfox, fault):
    fake_sfox.script(fault)
    user = client(fake_sfox.url).get_user("client_1")
    assert user.user_id == "client_1"
    assert len(fake_sfox.requests("GET")) == 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("method", ["GET", "DELETE"])
def test_refused_connection_is_retried_even_for_delete(method):
    """Nothing reached sFOX when the connection was refused, so even a DELETE may be sent again."""
    port = _free_port()
    started: list[FakeSfox] = []
    sleeps = Sleeps(on_first=lambda: started.append(FakeSfox(api_key=SFOX_KEY, port=port).start()))
    c = client(f"http://127.0.0.1:{port}", sleeps)
    try:
        if method == "GET":
            assert c.get_user("client_1").user_id == "client_1"
        else:
            assert c.deactivate("client_1").status == 200
            assert started[0].deletes["client_1"] == 1
        assert len(sleeps.delays) == 1
    finally:
        for fake in started:
            fake.stop()


def test_refused_connection_forever_gives_up_after_max_attempts():
    sleeps = Sleeps()
    with pytest.raises(SfoxError) as caught:
        client(f"http://127.0.0.1:{_free_port()}", sleeps, max_attempts=3).deactivate("client_1")
    assert caught.value.attempts == 3
    assert not caught.value.unknown
    assert "could not connect" in caught.value.message


@pytest.mark.parametrize("status", [429, 500, 503])
def test_delete_rejected_before_acting_is_retried(fake_sfox, status):
    fake_sfox.script(Fault("DELETE", status=status, body={"error": "later"}))
    result = client(fake_sfox.url).deactivate("client_1")
    assert result.status == 200 and result.attempts == 2
    assert fake_sfox.deletes["client_1"] == 1  # the fake counts only DELETEs it acted on
    assert len(fake_sfox.requests("DELETE")) == 2


@pytest.mark.parametrize(
    "fault",
    [
        Fault("DELETE", status=502, body="<html>bad gateway</html>", headers={"Content-Type": "text/html"}),
        Fault("DELETE", status=504, body=""),
        Fault("DELETE", drop=True),
        Fault("DELETE", reset=True),
        Fault("DELETE", delay=30),
    ],
    ids=["502", "504", "drop", "reset", "read-timeout"],
)
def test_delete_that_may_have_arrived_is_never_sent_twice(fake_sfox, fault):
    fake_sfox.script(fault)
    with pytest.raises(SfoxError) as caught:
        client(fake_sfox.url, timeout_seconds=1.5).deactivate("client_1")
    assert caught.value.unknown
    assert "may or may not have happened" in caught.value.message
    assert len(fake_sfox.requests("DELETE")) == 1


def test_delete_retried_after_5xx_that_did_act_reports_unknown_not_404(fake_sfox):
    """sFOX deactivates, then fails with 500; the safe retry then says 404. That 404 is probably
    our own success, so the outcome is unknown (to be settled by a read), not 'no such account'."""
    fake_sfox.script(Fault("DELETE", status=500, apply=True))
    with pytest.raises(SfoxError) as caught:
        client(fake_sfox.url).deactivate("client_1")
    assert caught.value.unknown and caught.value.status == 404
    assert len(fake_sfox.requests("DELETE")) == 2


# -- odd answers, end to end -----------------------------------------------------------------------


def _approve(bot, text="client_1 offboarding"):
    record, card = open_request(bot, ALICE, text)
    assert bot.driver.click(BOB, "sfox_approve", str(record.id), card.ts).status_code == 200
    return record, card


def _replies(bot, card, count=1):
    return [
        m.text
        for m in bot.slack.wait_for(
            lambda: len(bot.slack.thread(card.ts)) >= count and bot.slack.thread(card.ts)
        )
    ]


@pytest.mark.parametrize(
    "body",
    [b'{"data": {"ok": true}}', b"\x00\xff garbage \xfe", b"<html>fine</html>"],
    ids=["json", "garbage", "html"],
)
def test_delete_200_with_any_body_is_success(bot, body):
    bot.sfox.script(Fault("DELETE", status=200, body=body, apply=True))
    record, card = _approve(bot)
    assert wait_status(bot, record.id, "succeeded", "failed", "unknown").status == "succeeded"
    assert "is deactivated" in _replies(bot, card)[0]


@pytest.mark.parametrize(
    ("fault", "words"),
    [
        (
            Fault(
                "DELETE",
                status=500,
                body="<html><body>Oops</body></html>",
                headers={"Content-Type": "text/html"},
            ),
            "HTML page (probably from a proxy, not sFOX)",
        ),
        (Fault("DELETE", status=503, body=""), "down for maintenance (503), with an empty body"),
    ],
    ids=["html-500", "empty-503"],
)
def test_odd_error_answers_are_said_in_plain_words(make_bot, fault, words):
    bot = make_bot(SFOX_MAX_ATTEMPTS="2")
    bot.sfox.script(fault, fault)
    record, card = _approve(bot)
    done = wait_status(bot, record.id, "failed")
    assert done.retryable
    reply = _replies(bot, card)[0]
    assert words in reply
    assert "<html" not in reply and "&lt;html" not in reply
    assert "Retry" in reply
    final = bot.slack.wait_for(
        lambda: "sfox_retry" in buttons(bot.slack.message(card.ts)) and bot.slack.message(card.ts)
    )
    assert words in card_text(final)
    assert len(bot.sfox.requests("DELETE")) == 2


def test_huge_error_body_is_read_in_part_and_truncated(bot):
    huge = json.dumps({"error": "Can not disable account. " + "x" * 5_000_000}).encode()
    bot.sfox.script(Fault("DELETE", status=422, body=huge))
    record, card = _approve(bot)
    done = wait_status(bot, record.id, "failed")
    assert not done.retryable
    assert len(done.error) <= sfox_errors.MAX_MESSAGE_CHARS
    reply = _replies(bot, card)[0]
    assert "Can not disable account." in reply
    assert len(reply) < 1500 and reply.count("x") < 1000 and "…" in reply


def test_endless_body_is_read_only_in_part():
    """An answer that claims 50 MB and then trickles: the client reads what it needs (64 KB) and
    stops, instead of holding memory or waiting out the whole budget for the rest."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    release = threading.Event()

    def serve() -> None:
        conn, _ = server.accept()
        conn.recv(65536)
        head = b"HTTP/1.1 422 Unprocessable Entity\r\nContent-Type: application/json\r\n"
        conn.sendall(head + b"Content-Length: 50000000\r\n\r\n")
        conn.sendall(b'{"error": "Can not disable account' + b"!" * 100_000)
        release.wait(30)  # ... and the remaining 49.9 MB never come
        conn.close()

    threading.Thread(target=serve, daemon=True).start()
    try:
        with pytest.raises(SfoxError) as caught:
            client(f"http://127.0.0.1:{server.getsockname()[1]}", timeout_seconds=20).deactivate("client_1")
    finally:
        release.set()
        server.close()
    assert caught.value.status == 422 and not caught.value.unknown
    assert "unexpected body" in caught.value.message and "Can not disable account" in caught.value.message
    assert len(caught.value.message) <= sfox_errors.MAX_MESSAGE_CHARS


@pytest.mark.parametrize(
    ("fault", "words"),
    [
        (Fault("GET", status=200, body=b"not json at all"), "not the expected user record"),
        (Fault("GET", status=200, body={"data": ["a list"]}), "not the expected user record"),
        (
            Fault(
                "GET",
                status=200,
                body=b'{"data": {"user_id": "client_1", "pad": "' + b"y" * 4_000_000 + b'"}}',
            ),
            "not the expected user record",
        ),
        (Fault("GET", status=400, body=b"<!DOCTYPE html><title>Blocked</title>"), "HTML page"),
    ],
    ids=["garbage", "wrong-shape", "huge", "html-400"],
)
def test_odd_lookup_answers_post_no_card_and_say_why(bot, fault, words):
    bot.sfox.script(fault)
    response = bot.driver.command(ALICE, "client_1 reason")
    assert response.status_code == 200
    texts = bot.driver.ephemeral_for(response.extensions["response_name"])
    assert words in texts[0] and "Nothing was posted" in texts[0]
    assert len(texts[0]) < 1000
    assert bot.slack.cards() == []
    assert list(bot.store.history()) == []


# -- a slow sFOX does not hold anyone else up ------------------------------------------------------


def test_slow_sfox_does_not_delay_other_commands_and_clicks(bot):
    """While #1's DELETE and twenty look-ups hang (held by the test, not by a timer), new commands
    are acked and get their cards, and clicks on another card are acked and take effect."""
    hold = threading.Event()
    in_delete = threading.Event()
    held_lookups: list[str] = []

    def on_request(seen):
        if seen.method == "DELETE" and "client_1" in seen.raw_path:
            in_delete.set()
            hold.wait(60)
        elif seen.method == "GET" and "slow_" in seen.raw_path:
            held_lookups.append(seen.raw_path)
            hold.wait(60)

    bot.sfox.on_request = on_request
    for n in range(20):
        bot.sfox.add_user(f"slow_{n}")
    bot.sfox.add_user("client_9")
    first, first_card = open_request(bot, ALICE, "client_1 first")
    second, second_card = open_request(bot, ALICE, "client_3 second")
    try:
        assert bot.driver.click(BOB, "sfox_approve", str(first.id), first_card.ts).status_code == 200
        assert in_delete.wait(10)
        for n in range(20):  # more slow work than there are listener threads
            # each in a channel of its own: Slack's per-channel pace is not what this test is about
            response = bot.driver.command(CAROL, f"slow_{n} stuck", channel_id=f"C0SLOW{n:02}")
            assert response.status_code == 200 and "Looking up" in response.json()["text"]
        wait_until(lambda: len(held_lookups) == 20)
        # sFOX is now sitting on #1's DELETE and on twenty look-ups. Everything else goes through:
        response = bot.driver.command(CAROL, "client_9 third")
        assert response.status_code == 200 and "Looking up" in response.json()["text"]
        bot.slack.wait_for(lambda: len(bot.slack.cards()) == 3)
        click = bot.driver.click(MALLORY, "sfox_deny", str(second.id), second_card.ts)
        assert click.status_code == 200
        assert (
            "not on the sFOX approver list" in bot.driver.ephemeral_for(click.extensions["response_name"])[0]
        )
        assert bot.driver.click(CAROL, "sfox_deny", str(second.id), second_card.ts).status_code == 200
        assert wait_status(bot, second.id, "denied").denied_by == CAROL
        assert bot.store.get(first.id).status == "executing"
        assert not hold.is_set()
    finally:
        hold.set()
    assert wait_status(bot, first.id, "succeeded", "failed", "unknown").status == "succeeded"
    bot.slack.wait_for(lambda: len(bot.slack.cards()) == 23)


# -- unknown outcomes and reconciliation ------------------------------------------------------------


def test_unknown_outcome_reconciled_as_succeeded_when_the_account_is_gone(make_bot):
    bot = make_bot(SFOX_TIMEOUT_SECONDS="1")
    bot.sfox.script(Fault("DELETE", apply=True, delay=20))  # acted, but the answer never comes in time
    record, card = _approve(bot)
    done = wait_status(bot, record.id, "succeeded", "failed")
    assert done.status == "succeeded"
    unknown_note, outcome = _replies(bot, card, 2)[:2]
    assert "no clear answer came back" in unknown_note and "will not be sent twice" in unknown_note
    assert "confirmed: sFOX no longer knows the account" in outcome
    kinds = [e.kind for e in bot.store.events_for(record.id)]
    assert kinds.index("sfox_delete") < kinds.index("reconciled")
    assert len(bot.sfox.requests("DELETE")) == 1
    assert [r.raw_path for r in bot.sfox.requests("GET")][-1] == "/v1/enterprise/users/client_1"


def test_unknown_outcome_still_present_offers_retry_to_another_approver_only(bot):
    bot.sfox.script(Fault("DELETE", drop=True))  # connection dropped, nothing done
    record, card = _approve(bot)
    failed = wait_status(bot, record.id, "failed", "succeeded")
    assert failed.status == "failed" and failed.retryable
    unknown_note, outcome = _replies(bot, card, 2)[:2]
    assert "no clear answer came back" in unknown_note
    assert "still exists" in outcome and "Retry" in outcome
    final = bot.slack.wait_for(
        lambda: "sfox_retry" in buttons(bot.slack.message(card.ts)) and bot.slack.message(card.ts)
    )
    assert buttons(final) == ["sfox_retry"]

    # Nothing sends a second DELETE on its own: not the sweep, not a refused click.
    assert bot.runtime.workflow.sweep()["reconciled"] == 0
    for who, words in [(ALICE, "second admin must retry"), (MALLORY, "Only sFOX approvers")]:
        r = bot.driver.click(who, "sfox_retry", str(record.id), card.ts)
        assert words in bot.driver.ephemeral_for(r.extensions["response_name"])[0]
    assert bot.store.get(record.id).status == "failed"
    assert len(bot.sfox.requests("DELETE")) == 1

    assert bot.driver.click(CAROL, "sfox_retry", str(record.id), card.ts).status_code == 200
    assert wait_status(bot, record.id, "succeeded").attempts == 2
    assert len(bot.sfox.requests("DELETE")) == 2
    assert "is deactivated" in _replies(bot, card, 3)[2]
    again = bot.driver.click(BOB, "sfox_retry", str(record.id), card.ts)
    assert "is done" in bot.driver.ephemeral_for(again.extensions["response_name"])[0]
    assert len(bot.sfox.requests("DELETE")) == 2


def test_retry_that_finds_the_account_gone_is_reconciled_not_failed(bot):
    """The first DELETE failed with 503 three times, but someone (or that DELETE) removed the
    account meanwhile: the Retry's 404 is settled by a read → succeeded."""
    bot.sfox.script(*[Fault("DELETE", status=503)] * 3)
    record, card = _approve(bot)
    assert wait_status(bot, record.id, "failed").retryable
    bot.sfox.deactivated.add("client_1")
    bot.driver.click(CAROL, "sfox_retry", str(record.id), card.ts)
    # The click is acked before its step runs: wait for the retry's own outcome (attempt 2).
    done = wait_until(
        lambda: (r := bot.store.get(record.id)).attempts == 2 and r.status in ("succeeded", "failed") and r
    )
    assert done.status == "succeeded"


def test_reconcile_that_cannot_reach_sfox_stays_unknown_until_a_sweep_settles_it(bot):
    # DELETE reset (nothing done); the follow-up GET gets 503 on every attempt (SFOX_MAX_ATTEMPTS=3).
    record, card = open_request(bot, ALICE, "client_1 offboarding")
    bot.sfox.script(Fault("DELETE", reset=True), *[Fault("GET", status=503)] * 3)
    bot.driver.click(BOB, "sfox_approve", str(record.id), card.ts)
    wait_until(lambda: "reconcile_failed" in [e.kind for e in bot.store.events_for(record.id)])
    assert bot.store.get(record.id).status == "unknown"
    card_now = bot.slack.wait_for(
        lambda: "unknown" in card_text(bot.slack.message(card.ts)) and bot.slack.message(card.ts)
    )
    assert buttons(card_now) == []
    summary = bot.runtime.workflow.sweep()
    assert summary["reconciled"] == 1
    done = bot.store.get(record.id)
    assert done.status == "failed" and done.retryable
    assert len(bot.sfox.requests("DELETE")) == 1


def test_a_call_the_client_side_rate_limit_cannot_fit_is_not_sent_and_says_so(fake_sfox):
    client = SfoxClient(fake_sfox.url, SFOX_KEY, timeout_seconds=0.3, max_attempts=3, rate_limit_per_10s=1)
    try:
        client.get_user("client_1")  # takes the only slot of this 10 s window
        with pytest.raises(SfoxError) as caught:
            client.deactivate("client_1")
    finally:
        client.close()
    assert caught.value.attempts == 0 and caught.value.status is None and not caught.value.unknown
    assert (
        "SFOX_RATE_LIMIT_PER_10S" in caught.value.message and "nothing reached sFOX" in caught.value.message
    )
    assert fake_sfox.requests("DELETE") == []


def test_when_time_runs_out_between_attempts_the_last_answer_is_reported(fake_sfox):
    fake_sfox.script(Fault("GET", status=503, headers={"Retry-After": "0"}))
    client = SfoxClient(fake_sfox.url, SFOX_KEY, timeout_seconds=5, max_attempts=3, rate_limit_per_10s=1)
    try:
        with pytest.raises(SfoxError) as caught:
            client.get_user("client_1")  # the 503 used the slot; the retry cannot get one in time
    finally:
        client.close()
    assert caught.value.status == 503 and len(fake_sfox.requests("GET")) == 1
