"""The fake Slack keeps Slack's pace for chat.postMessage, per channel: a short burst, then HTTP
429 `ratelimited` with Retry-After in whole seconds, then allowed again once a second has passed;
other channels (a DM's too) are not held back; switched off, it refuses nothing."""

from __future__ import annotations

import httpx
import pytest

from bot.fakes.slack_api import FakeSlack
from bot.fakes.slack_rate import BURST, ChannelRate
from tests.conftest import BOT_TOKEN


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def http():
    with httpx.Client(headers={"Authorization": f"Bearer {BOT_TOKEN}"}) as client:
        yield client


@pytest.fixture
def clocked_slack(http):
    clock = Clock()
    with FakeSlack(token=BOT_TOKEN) as slack:
        slack.rate.clock = clock
        yield (
            slack,
            clock,
            lambda channel, text="hi": http.post(
                slack.api_url + "chat.postMessage", json={"channel": channel, "text": text}
            ),
        )


def test_a_burst_then_429_with_retry_after_then_allowed_again(clocked_slack, http):
    slack, clock, post = clocked_slack
    for n in range(BURST):
        answer = post("C0RATE001", f"burst {n}")
        assert answer.status_code == 200 and answer.json()["ok"] is True
    refused = post("C0RATE001", "one too many")
    assert refused.status_code == 429
    assert refused.json() == {"ok": False, "error": "ratelimited"}
    assert refused.headers["Retry-After"] == "1"
    assert [m.text for m in slack.messages] == [f"burst {n}" for n in range(BURST)]  # not posted
    assert post("C0RATE002").status_code == 200  # another channel has its own pace
    http.post(slack.api_url + "conversations.open", json={"users": "UALICE01"})
    assert post("DUALICE01").status_code == 200  # and so has a DM

    clock.now += 0.5
    again = post("C0RATE001")
    assert again.status_code == 429 and again.headers["Retry-After"] == "1"  # half a token: wait
    clock.now += 0.5
    assert post("C0RATE001", "after a second").status_code == 200
    assert post("C0RATE001").status_code == 429
    assert slack.rate.refused == {"C0RATE001": 3} and slack.rate.refusals() == 3

    clock.now += 60  # a quiet minute refills the burst, no more
    assert [post("C0RATE001").status_code for _ in range(BURST + 1)] == [200] * BURST + [429]


def test_retry_after_says_how_long_until_a_message_fits():
    clock = Clock()
    slow = ChannelRate(per_second=0.25, burst=1, clock=clock)  # one message every 4 s
    assert slow.admit("C0RATE001") is None
    assert slow.admit("C0RATE001") == 4
    clock.now += 2.5
    assert slow.admit("C0RATE001") == 2  # 1.5 s left, in whole seconds
    clock.now += 1.5
    assert slow.admit("C0RATE001") is None


def test_only_chat_post_message_is_paced(clocked_slack, http):
    slack, _, post = clocked_slack
    posted = [post("C0RATE001", f"m{n}").json() for n in range(BURST)]
    for _ in range(10):  # chat.update is not held to the per-channel pace
        answer = http.post(
            slack.api_url + "chat.update",
            json={"channel": "C0RATE001", "ts": posted[0]["ts"], "text": "edited"},
        )
        assert answer.status_code == 200 and answer.json()["ok"] is True


def test_switched_off_for_benchmarks(http):
    with FakeSlack(token=BOT_TOKEN, rate_limited=False) as slack:
        url = slack.api_url + "chat.postMessage"
        assert all(
            http.post(url, json={"channel": "C0RATE001", "text": "hi"}).status_code == 200 for _ in range(20)
        )
        assert slack.rate.refusals() == 0
