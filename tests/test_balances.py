"""Issue 11: the target's balances are read before any card, through real HTTP (the fake sFOX):
funds block the request (no card, a private answer, a `blocked` record); zero balances show on
the card; a failed read fails open ("not checked"); advisory and off; the user token never leaves
the call; the balance route is paced under 5 reads per 10 s while every command is acked at once."""

from __future__ import annotations

import json
import logging
import traceback
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import partial

import pytest

from bot.cli.main import build_parser
from bot.fakes.sfox_api import Fault
from bot.fakes.sfox_users import currency
from bot.requests.history import history_row
from bot.sfox.balances import BalanceCheck, card_line, describe_funds, parse_balances
from tests.conftest import ALICE, BOB
from tests.helpers import card_text, open_request, wait_status, wait_until
from tests.support import (
    Gate,
    ack_text,
    drain,
    dump_database,
    event_kinds,
    everything_sent_to_slack,
    later_ephemerals,
)
from tests.threads import run_concurrently

BALANCE = "/v1/user/balance"


def ask(bot, user: str, text: str) -> list[str]:
    """Run the command and return what the bot told the requester privately after the ack."""
    response = bot.driver.command(user, text)
    assert ack_text(response).startswith("Looking up")
    return later_ephemerals(bot, response)


def latest(bot):
    return next(iter(bot.store.history(limit=1)))


def balance_reads(fake_sfox) -> list[float]:
    return [r.at for r in fake_sfox.requests("GET") if r.raw_path == BALANCE]


# -- required (the default) ----------------------------------------------------------------------


def test_funds_block_the_request_before_any_card(bot, fake_sfox):
    [answer] = ask(bot, ALICE, "client_2 closing")
    record = latest(bot)
    assert record.status == "blocked" and record.sfox_user_id == "client_2"
    assert "`client_2` still holds funds on sFOX: USD 1250 (100 held), BTC 0.5." in answer
    assert "sFOX refuses to deactivate an account with funds" in answer
    assert f"request #{record.id}, blocked" in answer
    # Nothing was posted, nobody asked, no DELETE.
    assert bot.slack.cards() == [] and fake_sfox.deletes["client_2"] == 0
    # Recorded: a final state with the balances in its error, the trail, and what was read.
    assert "USD 1250 (100 held), BTC 0.5" in record.error
    assert record.message_ts is None and record.completed_at is not None
    assert event_kinds(bot, record.id) == ["requested", "blocked"]
    assert json.loads(bot.store.events_for(record.id)[-1].detail) == {"funds": "USD 1250 (100 held), BTC 0.5"}
    row = history_row(record)
    assert row["status"] == "blocked"
    assert row["balances"] == [
        {"currency": "usd", "balance": 1250},
        {"currency": "btc", "balance": 0.5},
        {"currency": "eth", "balance": 0},
    ]
    # No card, so no button; a forged click (on a message Slack holds) changes nothing, says why.
    forged_on = bot.slack.lost_post(bot.driver.channel_id, "a message with the request's button")
    click = bot.driver.click(BOB, "sfox_approve", str(record.id), forged_on)
    [said] = later_ephemerals(bot, click)
    assert f"Request #{record.id} was closed before any card: the account holds funds" in said
    assert bot.store.get(record.id).status == "blocked" and fake_sfox.deletes["client_2"] == 0
    assert [r.id for r in bot.store.history(status="blocked")] == [record.id]
    assert build_parser().parse_args(["history", "--status", "blocked"]).status == "blocked"
    # Blocked is final: the user is free for a new request once the funds are gone.
    assert bot.store.open_request_for("client_2") is None
    fake_sfox.users["client_2"]["balances"] = [currency("usd", 0)]
    again, card = open_request(bot, BOB, "client_2 withdrawn now")
    assert again.status == "pending" and "Balances: all zero (checked " in card_text(card)


def test_only_held_funds_block_too(bot, fake_sfox):
    [answer] = ask(bot, ALICE, "client_held")
    assert "USD 40 (40 held)" in answer and "BTC" not in answer
    record = latest(bot)
    assert record.status == "blocked" and "USD 40 (40 held)" in record.error
    assert bot.slack.cards() == []


def test_zero_balances_are_shown_on_the_card(bot, fake_sfox):
    before = datetime.now(UTC).replace(second=0, microsecond=0)
    record, card = open_request(bot, ALICE, "client_1 left")
    line = next(line for line in card_text(card).splitlines() if line.startswith("Balances:"))
    checked = datetime.strptime(line, "Balances: all zero (checked %H:%M UTC)")
    assert checked.hour * 60 + checked.minute in {
        (before + timedelta(minutes=m)).hour * 60 + (before + timedelta(minutes=m)).minute for m in (0, 1)
    }
    assert history_row(record)["balances"] == [
        {"currency": "usd", "balance": 0},
        {"currency": "btc", "balance": 0},
    ]
    # The line stays on the card through its updates.
    bot.driver.click(BOB, "sfox_approve", str(record.id), card.ts)
    wait_status(bot, record.id, "succeeded")
    final = wait_until(lambda: (m := bot.slack.message(card.ts)) and "Deactivated" in card_text(m) and m)
    assert line in card_text(final)


@pytest.mark.parametrize(
    ("setup", "reason"),
    [
        ("read 500", "not checked (the balance read failed: sFOX had an internal error (500)"),
        ("token refused", "not checked (sFOX gave no user token: sFOX did not allow the enterprise key"),
        ("token expired", "not checked (the balance read failed: sFOX refused the user token (401))"),
        ("garbage", "not checked (sFOX answered with a balance list the bot cannot read"),
        ("html", "not checked (the balance read failed: sFOX answered 200 with a body that is not JSON)"),
        ("timeout", "not checked (the balance read failed: sFOX did not answer in time"),
    ],
)
def test_a_failed_read_posts_the_card_saying_not_checked(make_bot, fake_sfox, setup, reason):
    bot = make_bot(SFOX_TIMEOUT_SECONDS="1")
    user = "client_2"  # holds funds: a failed read must still not block (fail open)
    if setup == "read 500":
        user = "client_unreadable"
    elif setup == "token refused":
        fake_sfox.script(Fault(method="POST", status=403, body={"error": "Forbidden"}))
    elif setup == "token expired":
        fake_sfox.token_lifetime = timedelta(0)
    elif setup == "garbage":
        fake_sfox.script(Fault(method="GET", path=BALANCE, status=200, body={"data": "no list"}))
    elif setup == "html":
        fake_sfox.script(
            Fault(
                method="GET",
                path=BALANCE,
                status=200,
                body="<html>hi</html>",
                headers={"Content-Type": "text/html"},
            )
        )
    elif setup == "timeout":
        fake_sfox.script(Fault(method="GET", path=BALANCE, delay=1.5))
    record, card = open_request(bot, ALICE, f"{user} closing")
    assert record.status == "pending"
    text = card_text(card)
    assert f"Balances: {reason}" in text, text
    assert history_row(record)["balances"] is None
    # The read is tried once (the route's allowance is small); the DELETE path is unchanged.
    assert len(balance_reads(fake_sfox)) == (0 if setup == "token refused" else 1)


def test_funds_that_arrive_after_the_card_still_get_the_422(bot, fake_sfox):
    record, card = open_request(bot, ALICE, "client_late")
    assert "Balances: all zero (checked " in card_text(card)
    bot.driver.click(BOB, "sfox_approve", str(record.id), card.ts)
    done = wait_status(bot, record.id, "failed")
    assert done.http_status == 422
    reply = wait_until(lambda: bot.slack.thread(card.ts))[-1].text
    assert "The user must withdraw every balance first; then request again." in reply


# -- advisory and off ----------------------------------------------------------------------------


def test_advisory_shows_the_funds_and_never_blocks(make_bot, fake_sfox):
    bot = make_bot(SFOX_BALANCE_CHECK="advisory")
    record, card = open_request(bot, ALICE, "client_2 closing")
    assert record.status == "pending"
    text = card_text(card)
    assert "Balances: USD 1250 (100 held), BTC 0.5 (checked " in text
    assert "sFOX refuses to deactivate an account with funds" in text
    held, held_card = open_request(bot, ALICE, "client_held")
    assert held.status == "pending" and "Balances: USD 40 (40 held) (checked " in card_text(held_card)
    zero, zero_card = open_request(bot, ALICE, "client_1")
    assert "Balances: all zero (checked " in card_text(zero_card)


def test_off_reads_nothing_and_shows_nothing(make_bot, fake_sfox):
    bot = make_bot(SFOX_BALANCE_CHECK="off")
    record, card = open_request(bot, ALICE, "client_2 closing")
    assert record.status == "pending" and "Balances" not in card_text(card)
    assert [r.raw_path for r in fake_sfox.requests()] == ["/v1/enterprise/users/client_2"]
    assert record.balances is None and history_row(record)["balances"] is None
    bot.driver.click(BOB, "sfox_approve", str(record.id), card.ts)
    assert wait_status(bot, record.id, "failed").http_status == 422  # today's behaviour


# -- the token -----------------------------------------------------------------------------------


def log_text(caplog) -> str:
    parts = []
    for rec in caplog.records:
        parts += [rec.getMessage(), repr(rec.args), *(repr(v) for v in rec.__dict__.values())]
        if rec.exc_info:
            parts.append("".join(traceback.format_exception(*rec.exc_info)))
    return "\n".join(parts)


def test_the_user_token_is_used_for_the_one_read_and_appears_nowhere(make_bot, fake_sfox, caplog):
    caplog.set_level(logging.DEBUG)
    bot = make_bot(SFOX_TIMEOUT_SECONDS="1")
    # A proxy that echoes the request, token included, in its error page.
    echoed: list[str] = []

    def echo(seen):
        if seen.raw_path == BALANCE and not echoed:
            echoed.append(seen.headers["authorization"])
            fake_sfox.script(
                Fault(method="GET", path=BALANCE, status=502, body=f"proxy: {seen.headers['authorization']}")
            )

    fake_sfox.on_request = echo
    echo_record, echo_card = open_request(bot, ALICE, "client_1 echo")
    fake_sfox.on_request = None
    assert "proxy: Bearer [REDACTED]" in card_text(echo_card)
    ok, ok_card = open_request(bot, ALICE, "client_3 zero")
    ask(bot, ALICE, "client_2 funds")
    failed, _ = open_request(bot, ALICE, "client_unreadable")
    bot.driver.click(BOB, "sfox_approve", str(ok.id), ok_card.ts)
    wait_status(bot, ok.id, "succeeded")
    drain(bot)

    tokens = list(fake_sfox.tokens)
    assert len(tokens) == 4
    # Each token went to sFOX once, as the Authorization of one balance read, and nowhere else.
    reads = [r for r in fake_sfox.requests() if r.raw_path == BALANCE]
    assert sorted(r.headers["authorization"] for r in reads) == sorted(f"Bearer {t}" for t in tokens)
    for seen in fake_sfox.requests():
        others = {k: v for k, v in seen.headers.items() if k != "authorization"}
        for token in tokens:
            assert token not in seen.raw_path and token not in repr(others)
            if seen.raw_path != BALANCE:
                assert token not in seen.headers["authorization"]
    sent, logs, database = everything_sent_to_slack(bot), log_text(caplog), dump_database(bot.store)
    assert "USD 1250" in sent and "USD 1250" in database and "not_checked" in database  # real dumps
    for token in tokens:
        assert token not in sent, "user token sent to Slack"
        assert token not in logs, "user token in the logs"
        assert token not in database, "user token in the database"


def test_the_client_redacts_an_echoed_token_and_never_raises_it(fake_sfox):
    from bot.sfox.client import SfoxClient
    from bot.sfox.errors import SfoxError

    client = SfoxClient(fake_sfox.url, fake_sfox.api_key, timeout_seconds=2, max_attempts=1)
    token = client.create_user_token("client_1")
    fake_sfox.script(Fault(method="GET", path=BALANCE, status=500, body=f"debug: Bearer {token}"))
    with pytest.raises(SfoxError) as caught:
        client.get_user_balances(token)
    text = str(caught.value) + repr(caught.value) + "".join(traceback.format_exception(caught.value))
    assert token not in text and "[REDACTED]" in text
    assert client.get_user_balances(token)[0]["currency"] == "usd"
    client.close()


# -- pacing --------------------------------------------------------------------------------------


def test_a_burst_of_20_commands_is_acked_at_once_and_paced_under_5_reads_per_10s(make_bot, fake_sfox):
    bot = make_bot(SFOX_TIMEOUT_SECONDS="30")  # the lookups held below must not time out meanwhile
    users = [f"burst_{n:02}" for n in range(20)]
    for uid in users:
        fake_sfox.add_user(uid)

    def command(uid: str) -> str:
        # A channel each (Slack's pace is per channel): this test is about sFOX's pace, not Slack's.
        return ack_text(bot.driver.command(ALICE, uid, channel_id=f"C0{uid.upper().replace('_', '')}"))

    # Acked at once: every ack comes while sFOX holds every call, so none waited for a lookup or
    # a read, nor for the pace of the reads (no wall time: a loaded machine cannot break this).
    with Gate(fake_sfox, "GET", hold_seconds=60) as held:
        acks = run_concurrently([partial(command, uid) for uid in users])
        assert acks == [f"Looking up `{uid}` on sFOX…" for uid in users]
        held.wait_arrived()  # the lookups are asked, and held

    cards = bot.slack.wait_for(lambda: len(bot.slack.cards()) == 20 and bot.slack.cards())
    lines = [next(x for x in card_text(c).splitlines() if x.startswith("Balances:")) for c in cards]
    checked = [x for x in lines if x.startswith("Balances: all zero")]
    limited = [x for x in lines if "rate limit" in x]
    assert len(checked) + len(limited) == 20 and checked and limited
    assert all(x.startswith("Balances: not checked (the balance route's rate limit") for x in limited)
    reads = sorted(balance_reads(fake_sfox))
    assert len(reads) == len(checked)
    for i, at in enumerate(reads):
        assert sum(1 for t in reads[i:] if t - at < 10.0) < 5, reads


# -- parsing and formatting ----------------------------------------------------------------------


def test_parse_and_describe():
    rows = parse_balances(
        [
            currency("usd", 100, held=10),
            {"currency": "btc", "balance": "0.50000000", "held": 0},
            {"currency": "eth", "balance": 0},
            {"currency": "ltc", "balance": 1e-8},
        ]
    )
    assert describe_funds(rows) == "USD 100 (10 held), BTC 0.5, LTC 0.00000001"
    assert rows[1].balance == Decimal("0.5")
    for bad in (
        {"data": []},
        [{"currency": "usd"}],
        [{"currency": "usd", "balance": True}],
        [{"currency": "usd", "balance": "NaN"}],
        [{"currency": "<!channel>", "balance": 1}],
        ["usd"],
    ):
        with pytest.raises(ValueError):
            parse_balances(bad)


def test_card_line_of_what_is_stored():
    at = datetime(2026, 12, 1, 14, 2, 30, tzinfo=UTC)
    zero = BalanceCheck("required", at, parse_balances([currency("usd", 0)]))
    assert card_line(zero.to_json()) == "Balances: all zero (checked 14:02 UTC)"
    assert card_line(BalanceCheck("required", at, None, "sFOX timed out").to_json()) == (
        "Balances: not checked (sFOX timed out)"
    )
    assert card_line(None) is None and card_line("not json") is None
    funds = BalanceCheck("advisory", at, parse_balances([currency("usd", 5, held=5)]))
    assert not funds.blocks and BalanceCheck("required", at, funds.balances).blocks
