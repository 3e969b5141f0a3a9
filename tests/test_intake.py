"""The intake API (issue 20) through real HTTP: signed POSTs and GETs to the bot's WSGI app, the
card in the fake Slack, the approval to one DELETE on the fake sFOX, the callback to a receiver."""

from __future__ import annotations

import json
import ssl
import threading
import time
import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update

from bot.store.intake_schema import intake
from bot.store.schema import commands, requests
from bot.webhooks.signing import signed_request_headers
from tests.conftest import BOB
from tests.helpers import card_text, wait_status, wait_until
from tests.threads import run_concurrently

SECRET = "intake-secret-0123456789abcdefghijklmnop"
CHANNEL = "C0INTAKE1"
INTAKE = {"SFOX_INTAKE_SECRET": SECRET, "SFOX_DEFAULT_CHANNEL": CHANNEL}
# A signature is accepted once (bot/intake/replay.py), so every send is signed afresh, as an
# integrator's retry is: the same request sent twice gets a timestamp of its own each time (this
# second, or one further back within the window).
_SIGNED: set[tuple[str, int]] = set()
_SIGNING = threading.Lock()


def _fresh_time(*request: object) -> float:
    now = int(time.time())
    with _SIGNING:
        for back in range(240):
            if (repr(request), now - back) not in _SIGNED:
                _SIGNED.add((repr(request), now - back))
                return now - back
    raise AssertionError("the same request signed 240 times in 4 minutes")


def post(
    bot: Any,
    body: dict[str, Any] | bytes,
    key: str | None = "auto",
    *,
    secret: str = SECRET,
    at: float | None = None,
    sign: bool = True,
) -> httpx.Response:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers["Idempotency-Key"] = uuid.uuid4().hex if key == "auto" else key
    if sign:
        key_sent = headers.get("Idempotency-Key", "")
        signed = signed_request_headers(
            secret,
            "POST",
            "/api/v1/requests",
            raw,
            key_sent,
            now=_fresh_time(raw, key_sent) if at is None else at,
        )
        headers.update(signed)
    return httpx.post(bot.url + "/api/v1/requests", content=raw, headers=headers, timeout=30)


def get(bot: Any, path: str, *, sign: bool = True) -> httpx.Response:
    headers = signed_request_headers(SECRET, "GET", path, now=_fresh_time(path)) if sign else {}
    return httpx.get(bot.url + path, headers=headers, timeout=10)


def recorded(bot: Any) -> tuple[int, ...]:
    """How many requests, journalled commands and idempotency keys the database holds."""
    with bot.store.engine.connect() as conn:
        return tuple(
            conn.execute(select(func.count()).select_from(table)).scalar_one()
            for table in (requests, commands, intake)
        )


def ask(user: str = "acct_intake_1", **more: Any) -> dict[str, Any]:
    return {"sfox_user_id": user, "reason": "closed in the partner app", "requested_by": "backoffice", **more}


@pytest.fixture
def intake_bot(make_bot: Any, fake_sfox: Any) -> Any:
    fake_sfox.add_user("acct_intake_1")
    return make_bot(**INTAKE)


def test_a_signed_request_opens_a_card_via_its_system_and_an_approver_approves_it_to_one_delete(intake_bot):
    bot = intake_bot
    response = post(bot, ask())
    assert response.status_code == 202, response.text
    answer = response.json()
    assert answer["status"] == "pending" and answer["url"].startswith("https://")
    record = bot.store.get(answer["request_id"])
    assert record.requested_by == "intake-api" and record.requested_via == "backoffice"
    assert record.channel_id == CHANNEL
    card = bot.slack.wait_for(lambda: bot.slack.cards() or None)[0]
    assert "via backoffice" in card_text(card)
    assert "Any approver may approve" in card_text(card)
    bot.driver.click(BOB, "sfox_approve", str(record.id), card.ts)
    done = wait_status(bot, record.id, "succeeded")
    assert done.approved_by == (BOB,)
    assert len(bot.sfox.requests("DELETE")) == 1
    bot.runtime.workflow.deliver()  # the card, the thread reply: and no DM to a system
    assert not [m for m, _ in bot.slack.calls if m == "conversations.open"]
    shown = get(bot, f"/api/v1/requests/{record.id}")
    assert shown.status_code == 200
    assert shown.json()["status"] == "succeeded" and shown.json()["requested_via"] == "backoffice"


def test_signature_missing_wrong_or_stale_is_401_and_changes_nothing(intake_bot):
    bot = intake_bot
    assert post(bot, ask(), sign=False).status_code == 401
    assert post(bot, ask(), secret="another-secret-0123456789abcdefghijkl").status_code == 401
    stale = post(bot, ask(), at=time.time() - 302)
    assert stale.status_code == 401 and "minutes" in stale.json()["error"]
    assert post(bot, ask(), at=time.time() + 302).status_code == 401
    assert post(bot, ask(), at=time.time() - 250).status_code == 202  # inside the window
    assert get(bot, "/api/v1/requests/1", sign=False).status_code == 401


def test_without_a_secret_the_api_is_off(make_bot):
    bot = make_bot()
    assert post(bot, ask()).status_code == 404
    assert get(bot, "/api/v1/openapi.json").status_code == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"not json", "body"),
        (b"[1]", "body"),
        ({"reason": "x", "requested_by": "b"}, "sfox_user_id"),
        ({"sfox_user_id": "a/b", "requested_by": "b"}, "sfox_user_id"),
        ({"sfox_user_id": "acct_1", "requested_by": "b", "reason": "x" * 501}, "reason"),
        ({"sfox_user_id": "acct_1", "reason": "x"}, "requested_by"),
        (
            {"sfox_user_id": "acct_1", "requested_by": "b", "callback_url": "http://example.com/x"},
            "callback_url",
        ),
        ({"sfox_user_id": "acct_1", "requested_by": "b", "extra": 1}, "extra"),
    ],
)
def test_a_bad_body_is_400_naming_its_field(intake_bot, body, field):
    response = post(intake_bot, body)
    assert response.status_code == 400
    assert response.json()["error"].startswith(field + ":")
    assert intake_bot.store.history(limit=1) == [] or not list(intake_bot.store.history(limit=1))


def test_the_idempotency_key_is_required_and_the_same_key_with_another_body_is_409(intake_bot):
    bot = intake_bot
    missing = post(bot, ask(), key=None)
    assert missing.status_code == 400 and missing.json()["error"].startswith("Idempotency-Key:")
    first = post(bot, ask(), key="k-1")
    again = post(bot, ask(), key="k-1")
    assert first.status_code == again.status_code == 202 and again.json() == first.json()
    other = post(bot, ask(reason="another reason"), key="k-1")
    assert other.status_code == 409
    assert len(list(bot.store.history())) == 1


def test_the_same_json_however_spaced_and_ordered_is_the_same_request_and_another_value_is_409(intake_bot):
    """One Idempotency-Key, one body as JSON means it: spacing, key order and escapes change
    nothing (a retry re-encoded by another library is still the first request); any field's
    value does."""
    bot = intake_bot
    body = {**ask(reason="café closed"), "slack_user_id": "UALICE01"}
    compact = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
    first = post(bot, compact, key="k-json")
    assert first.status_code == 202, first.text
    respaced = json.dumps(dict(reversed(body.items())), indent=4, ensure_ascii=True).encode()
    assert respaced != compact and b"\\u00e9" in respaced and respaced.index(b"slack_user_id") < 10
    again = post(bot, b"\r\n  " + respaced.replace(b": ", b"  :\t") + b"\n", key="k-json")
    assert again.status_code == 202 and again.json() == first.json()
    for field, other in (
        ("sfox_user_id", "acct_intake_2"),
        ("reason", "cafe closed"),
        ("requested_by", "backoffice-2"),
        ("slack_user_id", "UBOB0002"),
    ):
        changed = post(bot, json.dumps({**body, field: other}).encode(), key="k-json")
        assert changed.status_code == 409, (field, changed.text)
    with_more = post(
        bot, json.dumps({**body, "callback_url": "https://partner.example/x"}).encode(), key="k-json"
    )
    assert with_more.status_code == 409
    assert len(list(bot.store.history())) == 1


def test_a_body_past_64_kib_is_413_before_its_signature_is_checked(intake_bot):
    """MAX_BODY_BYTES, before the signature or the JSON is looked at; one of exactly that size is
    read (and refused for what it says)."""
    from bot.intake.http import MAX_BODY_BYTES

    def sized(n: int) -> bytes:
        """A body of `n` bytes: its reason padded to fit."""
        pad = n - len(json.dumps(ask(reason="")))
        return json.dumps(ask(reason="x" * pad)).encode()

    assert len(sized(MAX_BODY_BYTES)) == MAX_BODY_BYTES
    too_big = post(intake_bot, sized(MAX_BODY_BYTES + 1))
    assert too_big.status_code == 413 and too_big.json()["error"] == "body: at most 65536 bytes"
    unsigned = post(intake_bot, sized(MAX_BODY_BYTES + 1), sign=False)
    assert unsigned.status_code == 413  # the size first: nothing else is looked at
    at_most = post(intake_bot, sized(MAX_BODY_BYTES))
    assert at_most.status_code == 400 and at_most.json()["error"].startswith("reason: too long")
    assert recorded(intake_bot) == (0, 0, 0)


def test_an_unknown_user_is_422_and_opens_nothing(intake_bot):
    response = post(intake_bot, ask("acct_nobody"))
    assert response.status_code == 422 and "No such sFOX user" in response.json()["error"]
    assert not list(intake_bot.store.history())


def _twenty_at_once(bot: Any) -> None:
    answers = run_concurrently([lambda: post(bot, ask(), key="one-key")] * 20)
    assert len(answers) == 20 and [r.status_code for r in answers] == [202] * 20, answers
    assert len({json.dumps(r.json(), sort_keys=True) for r in answers}) == 1
    assert answers[0].json()["status"] == "pending"
    assert len(list(bot.store.history())) == 1
    assert len(bot.slack.cards()) == 1


def test_twenty_concurrent_posts_with_one_key_open_one_request(intake_bot):
    _twenty_at_once(intake_bot)


@pytest.mark.postgres
def test_twenty_concurrent_posts_with_one_key_open_one_request_on_postgresql(
    make_bot, fake_sfox, postgres_url
):
    fake_sfox.add_user("acct_intake_1")
    _twenty_at_once(make_bot(DATABASE_URL=postgres_url, **INTAKE))


def test_get_of_an_unknown_or_slash_command_request_is_404(intake_bot):
    assert get(intake_bot, "/api/v1/requests/999").status_code == 404


class _Receiver:
    """A callback receiver on 127.0.0.1 that answers 503 to its first `fail` POSTs; over TLS with
    `tls` (a server context), at `https://{name}:{port}/outcome`. `entry` is what
    SFOX_INTAKE_CALLBACK_HOSTS must list for the bot to call it. With `hold`, the first `hold`
    POSTs are read whole and then never answered until `release` is set (`holding` says one is)."""

    def __init__(
        self, fail: int, *, tls: ssl.SSLContext | None = None, name: str = "127.0.0.1", hold: int = 0
    ) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.fail = fail
        self.hold = hold
        self.holding = threading.Event()
        self.release = threading.Event()
        self.seen: list[tuple[int, dict[str, str], bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status = 503 if len(receiver.seen) < receiver.fail else 200
                held = len(receiver.seen) < receiver.hold
                receiver.seen.append((status, dict(self.headers), body))
                if held:
                    receiver.holding.set()
                    receiver.release.wait(30)
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except OSError:
                    pass  # the sender is gone (killed mid-POST)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()
        self.entry = f"{name}:{self.server.server_port}"
        self.url = f"{'https' if tls else 'http'}://{self.entry}/outcome"

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


def test_the_outcome_is_called_back_once_after_its_receiver_failed_twice(make_bot, fake_sfox):
    from bot.webhooks.signing import signature_problem

    fake_sfox.add_user("acct_funded", balance=12.5)
    receiver = _Receiver(fail=2)
    try:
        bot = make_bot(**INTAKE, SFOX_INTAKE_CALLBACK_HOSTS=receiver.entry)
        loop = bot.runtime.intake.callbacks
        loop.poll_seconds = 0.1
        loop.start()
        response = post(bot, ask("acct_funded", callback_url=receiver.url))
        assert response.status_code == 202 and response.json()["status"] == "blocked"
        assert response.json()["url"] is None  # no card for a blocked request
        wait_until(lambda: any(status == 200 for status, _, _ in receiver.seen), timeout=15)
        time.sleep(0.3)  # nothing more arrives
        assert [status for status, _, _ in receiver.seen] == [503, 503, 200]
        _, headers, body = receiver.seen[-1]
        assert signature_problem(SECRET, headers, body) is None
        outcome = json.loads(body)
        assert outcome["status"] == "blocked" and outcome["request_id"] == response.json()["request_id"]
        assert outcome["record"]["requested_via"] == "backoffice"
        assert not [m for m, _ in bot.slack.calls if m == "conversations.open"]  # a system has no DM
    finally:
        receiver.close()


def test_the_api_is_served_on_the_ops_port_too(intake_bot):
    from bot.fakes.local import serve_wsgi, stop, url_of
    from bot.runtime.web import make_ops_app

    server = serve_wsgi(make_ops_app(intake_bot.runtime))
    try:
        ops = type("Ops", (), {"url": url_of(server)})()
        response = post(ops, ask())
        assert response.status_code == 202 and response.json()["status"] == "pending"
        assert get(ops, "/api/v1/openapi.json").json()["openapi"].startswith("3.")
    finally:
        stop(server)


def test_a_request_answered_before_it_was_carried_out_is_carried_out_by_a_sweep(intake_bot, monkeypatch):
    """The process died after the journal write (here: carrying it out failed): the answer says
    accepted, the command's lease runs out, a sweep opens the request, and the key answers it."""
    bot = intake_bot
    commands = bot.runtime.commands

    def died(accepted: Any) -> None:
        commands._release(accepted.id)
        raise RuntimeError("the process died here")

    monkeypatch.setattr(commands, "run", died)
    first = post(bot, ask(), key="k-died")
    assert first.status_code == 202
    assert first.json() == {"request_id": None, "status": "accepted", "url": None}
    monkeypatch.undo()
    later = bot.runtime.workflow.now() + commands.journal.lease * 2
    monkeypatch.setattr(bot.runtime.workflow, "now", lambda: later)
    assert commands.resume() == 1
    assert bot.runtime.wait_idle()
    again = post(bot, ask(), key="k-died")
    assert again.status_code == 202 and again.json()["status"] == "pending"
    assert len(list(bot.store.history())) == 1


def test_an_owed_callback_survives_a_restart_and_is_taken_by_one_replica(make_bot, fake_sfox):
    """The first process records the outcome and dies before calling back (its receiver was down);
    the next one, on the same database, delivers it, once: a take is a compare-and-set."""
    from bot.store.intake import IntakeStore

    fake_sfox.add_user("acct_funded", balance=3)
    receiver = _Receiver(fail=0)
    receiver.close()  # down: its port refuses
    first = make_bot(**INTAKE, SFOX_INTAKE_CALLBACK_HOSTS=receiver.entry)
    response = post(first, ask("acct_funded", callback_url=receiver.url))
    assert response.status_code == 202 and response.json()["status"] == "blocked"
    first.stop()
    receiver = _Receiver(fail=0)
    try:
        second = make_bot(**INTAKE, SFOX_INTAKE_CALLBACK_HOSTS=receiver.entry)
        keys = IntakeStore(second.store)
        with second.store.engine.begin() as conn:  # the callback names the receiver now up
            conn.execute(update(intake).values(callback_url=receiver.url))
        owed = keys.due_callbacks(second.runtime.workflow.now())
        assert len(owed) == 1
        now = second.runtime.workflow.now()
        from bot.intake.callbacks import LEASE

        assert keys.take_callback(owed[0], now, LEASE) and not keys.take_callback(owed[0], now, LEASE)
        # The taker died before it sent anything: the callback is nobody's until the lease ends,
        # then any replica's (the lease running out on the senders' clock; a real process killed
        # mid-POST: tests/test_intake_callback_crash.py).
        callbacks = second.runtime.intake.callbacks.callbacks
        callbacks.now = lambda: now + LEASE - timedelta(seconds=1)
        assert callbacks.deliver_due() == 0 and receiver.seen == []
        callbacks.now = lambda: now + LEASE
        assert callbacks.deliver_due() == 1 and len(receiver.seen) == 1
        assert keys.due_callbacks(now + LEASE * 10) == []
        assert keys.callback_of(response.json()["request_id"]).as_dict()["attempts"] == 2
    finally:
        receiver.close()
