"""Batches through real HTTP: asking (inline and the form), what is left out, the approval rules,
every user DELETEd once at the shared pace, pause/resume/cancel, a 429 storm."""

from __future__ import annotations

import csv
import io
import json
import subprocess
from datetime import UTC, datetime

from bot.batches import running
from bot.fakes.sfox_api import Fault
from bot.slack.batch_card import BATCH_APPROVE, BATCH_CANCEL, BATCH_DENY, BATCH_PAUSE, BATCH_RESUME
from bot.store.batches import BatchStore
from bot.store.outcomes import Outcome
from tests.conftest import ALICE, BOB, CAROL, MALLORY
from tests.helpers import buttons, card_text, open_request, wait_until
from tests.ops_support import cli
from tests.support import Gate


def batch_cards(bot):
    return [c for c in bot.slack.cards() if c.text.startswith("sFOX batch deactivation")]


def ask(bot, requester, text):
    before = len(batch_cards(bot))
    response = bot.driver.command(requester, text)
    assert response.status_code == 200, response.text
    name = response.extensions["response_name"]
    # The pre-flight's balance reads wait for the route's slots (about 5 per 10 s).
    answer = wait_until(
        lambda: [
            t
            for t in bot.driver.ephemeral_for(name, timeout=30)
            if "Batch #" in t or "Nobody" in t or ":warning:" in t
        ],
        timeout=30,
    )[-1]
    cards = batch_cards(bot)[before:]
    return answer, (cards[0] if cards else None), response


def batch_id_of(card):
    return int(card.text.split("#", 1)[1].split(" ", 1)[0])


def add_users(sfox, n, prefix="cohort"):
    ids = [f"{prefix}_{i:03d}" for i in range(n)]
    for uid in ids:
        sfox.add_user(uid, first_name="User", last_name=uid)
    return ids


def test_inline_batch_names_what_it_leaves_out_and_posts_one_card(make_bot, fake_sfox):
    bot = make_bot()
    ids = add_users(fake_sfox, 3)
    single, _card = open_request(bot, ALICE, "client_3 already asked")
    text = f"batch {ids[0]},{ids[1]},bad/id,{ids[0]},nobody_here,client_3,client_2,{ids[2]} cohort closed"
    answer, card, _ = ask(bot, ALICE, text)
    assert "Batch #" in answer and "3 users to deactivate" in answer
    assert "malformed (1)" in answer and "bad/id" in answer
    assert "duplicated (1)" in answer
    assert f"already in an open request (1): `client_3` (#{single.id})" in answer
    assert "unknown on sFOX (1)" in answer and "nobody_here" in answer
    assert "holding funds (1)" in answer and "client_2" in answer
    shown = card_text(card)
    assert "*3* to deactivate" in shown and "*1* unknown on sFOX" in shown and "*1* holding funds" in shown
    assert "cohort closed" in shown and f"{ids[0]}@example.com" in shown
    assert buttons(card) == [BATCH_APPROVE, BATCH_DENY]
    listing = wait_until(lambda: bot.slack.thread(card.ts))
    assert all(uid in listing[0].text for uid in ids)
    rows = list(bot.store.history(limit=None, batch_id=batch_id_of(card)))
    assert sorted(r.sfox_user_id for r in rows) == ids and {r.status for r in rows} == {"pending"}
    # A user of an open batch cannot be asked for again, alone or in another batch.
    answer2, card2, _ = ask(bot, BOB, f"batch {ids[0]}")
    assert card2 is None and "already in an open request" in answer2
    assert fake_sfox.deletes == {}


def test_batch_refusals_change_nothing(make_bot, fake_sfox):
    bot = make_bot(SFOX_BATCH_MAX="3")
    response = bot.driver.command(MALLORY, "batch a1,a2 reason")
    assert "not on the sFOX approver list" in response.json()["text"]
    response = bot.driver.command(ALICE, "batch a1,a2,a3,a4")
    assert "more than a batch may hold (3" in response.json()["text"]
    response = bot.driver.command(ALICE, "batch bad/one,<@U123>")
    assert "No valid sFOX user id" in response.json()["text"]
    assert bot.store.engine and not list(bot.store.history(limit=None))


def test_approval_rules_two_distinct_approvers_never_the_requester(make_bot, fake_sfox):
    bot = make_bot(SFOX_REQUIRED_APPROVALS="2", SFOX_BALANCE_CHECK="off")
    ids = add_users(fake_sfox, 4)
    _answer, card, _ = ask(bot, ALICE, "batch " + ",".join(ids) + " two needed")
    bid = str(batch_id_of(card))
    own = bot.driver.click(ALICE, BATCH_APPROVE, bid, card.ts)
    assert "cannot approve it" in bot.driver.ephemeral_for(own.extensions["response_name"])[0]
    outsider = bot.driver.click(MALLORY, BATCH_APPROVE, bid, card.ts)
    assert (
        "not on the sFOX approver list" in bot.driver.ephemeral_for(outsider.extensions["response_name"])[0]
    )
    first = bot.driver.click(BOB, BATCH_APPROVE, bid, card.ts)
    assert "1 more approval(s) needed" in bot.driver.ephemeral_for(first.extensions["response_name"])[0]
    again = bot.driver.click(BOB, BATCH_APPROVE, bid, card.ts)
    assert "already approved" in bot.driver.ephemeral_for(again.extensions["response_name"])[0]
    assert fake_sfox.deletes == {}
    bot.driver.click(CAROL, BATCH_APPROVE, bid, card.ts)
    rows = wait_until(
        lambda: (
            (rs := list(bot.store.history(limit=None, batch_id=int(bid))))
            and all(r.status == "succeeded" for r in rs)
            and rs
        )
    )
    assert all(set(r.approved_by) == {BOB, CAROL} for r in rows)
    assert dict(fake_sfox.deletes) == {uid: 1 for uid in ids}


def test_deny_closes_every_user(make_bot, fake_sfox):
    bot = make_bot(SFOX_BALANCE_CHECK="off")
    ids = add_users(fake_sfox, 3)
    _answer, card, _ = ask(bot, ALICE, "batch " + ",".join(ids))
    bid = batch_id_of(card)
    bot.driver.click(BOB, BATCH_DENY, str(bid), card.ts)
    wait_until(lambda: {r.status for r in bot.store.history(limit=None, batch_id=bid)} == {"denied"})
    wait_until(lambda: "Denied" in card_text(bot.slack.message(card.ts)))
    assert buttons(bot.slack.message(card.ts)) == []
    late = bot.driver.click(CAROL, BATCH_APPROVE, str(bid), card.ts)
    assert "was denied" in bot.driver.ephemeral_for(late.extensions["response_name"])[0]
    assert fake_sfox.deletes == {}


def test_fifty_users_each_deleted_exactly_once_with_summary_and_csv(make_bot, fake_sfox):
    bot = make_bot()
    ids = add_users(fake_sfox, 50)
    _answer, card, _ = ask(bot, ALICE, "batch " + ",".join(ids) + " retire product")
    assert "Balances were *not read*" in card_text(card)
    bid = batch_id_of(card)
    bot.driver.click(BOB, BATCH_APPROVE, str(bid), card.ts)
    summary = wait_until(lambda: [m for m in bot.slack.thread(card.ts) if "finished" in m.text], timeout=30)[
        0
    ]
    assert f"*Batch #{bid} finished*: 50 deactivated, 0 failed" in summary.text
    assert dict(fake_sfox.deletes) == {uid: 1 for uid in ids}
    final = bot.slack.message(card.ts)
    assert "done 50 · failed 0 · remaining 0" in card_text(final) and buttons(final) == []
    upload = next(iter(bot.slack.uploads.values()))
    assert upload["thread_ts"] == card.ts
    table = list(csv.DictReader(io.StringIO(upload["content"].decode())))
    assert sorted(r["sfox_user_id"] for r in table) == ids and {r["status"] for r in table} == {"succeeded"}
    events = [e.kind for e in bot.store.events_for(next(iter(bot.store.history(limit=1, batch_id=bid))).id)]
    assert events[:2] == ["requested", "approved"] and "claimed" in events and "sfox_delete" in events


def test_a_429_storm_slows_the_batch_and_fails_nobody(make_bot, fake_sfox):
    bot = make_bot(SFOX_BALANCE_CHECK="off")
    ids = add_users(fake_sfox, 12)
    _answer, card, _ = ask(bot, ALICE, "batch " + ",".join(ids))
    fake_sfox.script(*[Fault("DELETE", status=429, headers={"Retry-After": "1"}) for _ in range(8)])
    bot.driver.click(BOB, BATCH_APPROVE, str(batch_id_of(card)), card.ts)
    summary = wait_until(lambda: [m for m in bot.slack.thread(card.ts) if "finished" in m.text], timeout=40)
    assert "12 deactivated, 0 failed" in summary[0].text
    assert dict(fake_sfox.deletes) == {uid: 1 for uid in ids}
    assert len(fake_sfox.requests("DELETE")) == 12 + 8


def test_pause_resume_and_cancel(make_bot, fake_sfox, monkeypatch):
    # The DELETEs are held by the fake sFOX while the test clicks, and let through when it says:
    # each click lands while the runner is mid-batch, however slow the machine (the bot's sFOX
    # timeout is longer than any hold, so a held DELETE is never given up on). The runner looks
    # for a pause every TICK_SECONDS while its users are in flight: made short, it has seen the
    # pause by the time the card says so, and the DELETEs let through then are the last ones.
    monkeypatch.setattr(running, "TICK_SECONDS", 0.02)
    bot = make_bot(SFOX_BALANCE_CHECK="off", SFOX_TIMEOUT_SECONDS="60")
    ids = add_users(fake_sfox, 60)
    _answer, card, _ = ask(bot, ALICE, "batch " + ",".join(ids))
    bid = batch_id_of(card)
    with Gate(fake_sfox, "DELETE", hold_seconds=60) as deletes:
        bot.driver.click(BOB, BATCH_APPROVE, str(bid), card.ts)
        wait_until(lambda: buttons(bot.slack.message(card.ts)) == [BATCH_PAUSE, BATCH_CANCEL])
        outsider = bot.driver.click(MALLORY, BATCH_PAUSE, str(bid), card.ts)
        assert (
            "not on the sFOX approver list"
            in bot.driver.ephemeral_for(outsider.extensions["response_name"])[0]
        )
        deletes.wait_holding()  # the run has really started: its first DELETEs are in flight
        bot.driver.click(CAROL, BATCH_PAUSE, str(bid), card.ts)
        wait_until(lambda: "Paused" in card_text(bot.slack.message(card.ts)))
        deletes.open()  # those in flight finish; no other is sent while paused
        wait_until(lambda: BatchStore(bot.store).get(bid).runner is None)  # its workers all stopped
        sent = len(fake_sfox.requests("DELETE"))
        assert 0 < sent < 60
        assert BatchRows(bot, bid).counts() == {"succeeded": sent, "pending": 60 - sent}
        deletes.close()
        bot.driver.click(CAROL, BATCH_RESUME, str(bid), card.ts)
        deletes.wait_holding()  # running again: new DELETEs, held
        assert len(fake_sfox.requests("DELETE")) > sent
        bot.driver.click(ALICE, BATCH_CANCEL, str(bid), card.ts)
        wait_until(lambda: BatchRows(bot, bid).counts().get("cancelled", 0) > 0)
        deletes.open()  # the held ones finish; the cancelled users are never sent
        summary = wait_until(
            lambda: [m for m in bot.slack.thread(card.ts) if "finished" in m.text], timeout=30
        )
    counts = BatchRows(bot, bid).counts()
    assert counts.get("cancelled", 0) > 0 and counts.get("succeeded", 0) == len(fake_sfox.deletes)
    assert set(counts) <= {"cancelled", "succeeded"}
    assert f"{counts['cancelled']} cancelled" in summary[0].text
    assert all(n == 1 for n in fake_sfox.deletes.values())


def test_form_with_a_file_opens_a_batch(make_bot, fake_sfox, fake_slack):
    bot = make_bot(SFOX_BALANCE_CHECK="off")
    ids = add_users(fake_sfox, 4)
    response = bot.driver.command(ALICE, "batch")
    assert response.status_code == 200
    opened = wait_until(lambda: fake_slack.opened_views)[0]
    assert opened["view"]["callback_id"] == "sfox_batch_form"
    fake_slack.user_files["F1"] = (
        "users.csv",
        ("user_id,name\n" + "\n".join(f"{u},x" for u in ids[2:])).encode(),
    )
    values = {
        "ids": {"value": {"type": "plain_text_input", "value": f"{ids[0]}\n{ids[1]} bad/id"}},
        "file": {"value": {"type": "file_input", "files": [{"id": "F1"}]}},
        "reason": {"value": {"type": "plain_text_input", "value": "from the form"}},
    }
    # A missing reason is named on the form, and nothing is recorded.
    no_reason = {**values, "reason": {"value": {"type": "plain_text_input", "value": ""}}}
    answer = bot.driver.view_submission(ALICE, opened["view"], no_reason)
    assert json.loads(answer.text)["errors"]["reason"]
    answer = bot.driver.view_submission(ALICE, opened["view"], values)
    assert answer.status_code == 200
    card = wait_until(lambda: batch_cards(bot))[0]
    assert "*4* to deactivate" in card_text(card) and "from the form" in card_text(card)
    told = wait_until(lambda: [e["text"] for e in fake_slack.ephemeral if "Batch #" in e.get("text", "")])
    assert "malformed (1)" in told[0]


class BatchRows:
    def __init__(self, bot, bid):
        self.rows = list(bot.store.history(limit=None, batch_id=bid))

    def in_flight(self):
        return [r for r in self.rows if r.status in ("executing", "unknown")]

    def counts(self):
        out: dict[str, int] = {}
        for r in self.rows:
            out[r.status] = out.get(r.status, 0) + 1
        return out


def sfox_bot(tmp_path, database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """The real `sfox-bot` in a process of its own, with DATABASE_URL its only setting and an empty
    working directory: neither the developer's shell nor the checkout's `.env` reach it (in this
    process, `load_dotenv` would also have left the `.env` in os.environ for every later test)."""
    return cli(*args, env={"DATABASE_URL": database_url}, cwd=tmp_path)


def test_history_and_show_of_a_batch(make_bot, fake_sfox, database_url, tmp_path):
    bot = make_bot(SFOX_BALANCE_CHECK="off")
    ids = add_users(fake_sfox, 3)
    _answer, card, _ = ask(bot, ALICE, "batch " + ",".join(ids) + ",nobody_x records")
    bid = batch_id_of(card)
    bot.driver.click(BOB, BATCH_APPROVE, str(bid), card.ts)
    wait_until(lambda: [m for m in bot.slack.thread(card.ts) if "finished" in m.text], timeout=20)
    history = sfox_bot(tmp_path, database_url, "history", "--batch", str(bid), "--format", "json")
    assert history.returncode == 0, history.stderr
    rows = json.loads(history.stdout)
    assert sorted(r["sfox_user_id"] for r in rows) == ids and {r["batch_id"] for r in rows} == {bid}
    shown = sfox_bot(tmp_path, database_url, "show", f"batch:{bid}")
    assert shown.returncode == 0, shown.stderr
    out = shown.stdout
    assert "succeeded 3" in out and "unknown: nobody_x" in out and all(uid in out for uid in ids)
    unknown = sfox_bot(tmp_path, database_url, "show", "batch:999")
    assert unknown.returncode != 0 and "999" in unknown.stderr + unknown.stdout


def test_an_expired_batch_cannot_be_approved(make_bot, fake_sfox):
    bot = make_bot(SFOX_BALANCE_CHECK="off", SFOX_REQUEST_TTL_SECONDS="1")
    ids = add_users(fake_sfox, 2)
    _answer, card, _ = ask(bot, ALICE, "batch " + ",".join(ids))
    bid = batch_id_of(card)
    expires_at = BatchStore(bot.store).get(bid).expires_at
    wait_until(lambda: datetime.now(UTC) > expires_at, timeout=5)  # past the batch's expiry
    late = bot.driver.click(BOB, BATCH_APPROVE, str(bid), card.ts)
    assert "has expired" in bot.driver.ephemeral_for(late.extensions["response_name"])[0]
    wait_until(lambda: {r.status for r in bot.store.history(limit=None, batch_id=bid)} == {"expired"})
    wait_until(lambda: "Expired" in card_text(bot.slack.message(card.ts)))
    assert fake_sfox.deletes == {}


def test_a_failed_upload_is_said_and_the_cli_gives_the_same_file(
    make_bot, fake_sfox, fake_slack, database_url, tmp_path
):
    bot = make_bot(SFOX_BALANCE_CHECK="off")
    ids = add_users(fake_sfox, 3)
    _answer, card, _ = ask(bot, ALICE, "batch " + ",".join(ids))
    bid = batch_id_of(card)
    fake_slack.fail("files.getUploadURLExternal", "missing_scope")
    bot.driver.click(BOB, BATCH_APPROVE, str(bid), card.ts)
    summary = wait_until(lambda: [m for m in bot.slack.thread(card.ts) if "finished" in m.text], timeout=20)[
        0
    ]
    assert "could not be uploaded" in summary.text and "missing_scope" in summary.text
    assert f"sfox-bot history --batch {bid} --format csv" in summary.text
    history = sfox_bot(tmp_path, database_url, "history", "--batch", str(bid), "--format", "csv")
    assert history.returncode == 0, history.stderr
    table = list(csv.DictReader(io.StringIO(history.stdout)))
    assert sorted(r["sfox_user_id"] for r in table) == ids and {r["status"] for r in table} == {"succeeded"}


def test_a_user_whose_delete_may_have_gone_out_is_never_claimed_again(make_bot, fake_sfox):
    """The kind of each failure is a typed value: a 429 (sFOX did nothing) is claimed again and
    sent once more; a DELETE whose connection dropped may have reached sFOX, so it is reconciled
    by a read (the account is still listed) and left failed, never sent a second time."""
    bot = make_bot(SFOX_BALANCE_CHECK="off")
    ids = add_users(fake_sfox, 4, prefix="maybe")
    dropped, limited = ids[0], ids[1]
    _answer, card, _ = ask(bot, ALICE, "batch " + ",".join(ids))
    fake_sfox.script(
        Fault("DELETE", drop=True, path=f"/v1/enterprise/account/{dropped}"),
        Fault("DELETE", status=429, headers={"Retry-After": "1"}, path=f"/v1/enterprise/account/{limited}"),
    )
    bid = batch_id_of(card)
    bot.driver.click(BOB, BATCH_APPROVE, str(bid), card.ts)
    summary = wait_until(lambda: [m for m in bot.slack.thread(card.ts) if "finished" in m.text], timeout=40)
    assert f"*Batch #{bid} finished*: 3 deactivated, 1 failed" in summary[0].text
    rows = {r.sfox_user_id: r for r in bot.store.history(limit=None, batch_id=bid)}
    assert rows[dropped].status == "failed" and rows[dropped].outcome is Outcome.STILL_PRESENT
    assert rows[dropped].retryable  # an approver may still retry it; the batch does not
    assert rows[limited].status == "succeeded" and rows[limited].outcome is Outcome.DEACTIVATED
    sent = [r.raw_path.rsplit("/", 1)[1] for r in fake_sfox.requests("DELETE")]
    assert sent.count(dropped) == 1 and sent.count(limited) == 2  # the 429'd one, once more
    assert dict(fake_sfox.deletes) == {uid: 1 for uid in ids if uid != dropped}
    kinds = [e.kind for e in bot.store.events_for(rows[dropped].id)]
    assert kinds.count("sfox_call_started") == 1 and "reconciled" in kinds
