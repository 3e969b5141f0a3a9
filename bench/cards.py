"""Section 6: card latency, from the slash command to the card posted in Slack, with and without
the balance read (issue 11), at two sFOX latencies.

Without it (`SFOX_BALANCE_CHECK=off`) the bot makes one sFOX call before the card (the user
lookup); with it (`required`, the default) three: the lookup, a user token and the balance read.
The fake sFOX answers every call after the given delay. One command at a time, each for a new
user; with the balance read the commands are spaced so the route's own limiter (4 reads per
10 s) always has a slot. A last case sends a burst past that limit: a read that could not get a
slot within 3 s gives up at once (the limiter knows when its next slot frees), so those cards come
as fast as the others and say "not checked".
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any

from bench import harness as h
from bot.sfox.balances import ROUTE_LIMIT, ROUTE_WINDOW_SECONDS

HEADERS = ["balance read", "sFOX ms", "n", "card p50 ms", "card max ms", "cards say"]
SPACING = ROUTE_WINDOW_SECONDS / ROUTE_LIMIT + 0.1
_USER = re.compile(r"of `([^`]+)`")


@dataclass
class CardRow:
    mode: str
    delay: float
    latencies: list[float]
    says: str

    def cells(self) -> list[Any]:
        return [
            self.mode,
            f"{self.delay * 1000:.0f}",
            len(self.latencies),
            h.ms(h.percentile(self.latencies, 50)),
            h.ms(max(self.latencies)),
            self.says,
        ]


def run(n: int, rig: h.Rig, delays: tuple[float, ...] = (0.0, 0.2)) -> list[CardRow]:
    rows: list[CardRow] = []
    work = h.workdir("cards")
    try:
        for mode in ("off", "required"):
            url = f"sqlite:///{work / f'cards-{mode}.db'}"
            bot = h.start_bot(f"bot-cards-{mode}", rig, url, work, SFOX_BALANCE_CHECK=mode)
            try:
                h.warm_up(rig, bot)
                for delay in delays:
                    rig.sfox.delay = delay
                    spacing = SPACING if mode == "required" else 0.0
                    latencies, says = _commands(rig, bot, f"{mode}_{int(delay * 1000)}", n, spacing)
                    rows.append(CardRow(mode, delay, latencies, says))
                if mode == "required":
                    rig.sfox.delay = 0.0
                    time.sleep(ROUTE_WINDOW_SECONDS)  # an empty window, then more than it allows
                    latencies, says = _commands(rig, bot, "burst", ROUTE_LIMIT + 4, 0.0, burst=True)
                    rows.append(CardRow("required, burst past the route limit", 0.0, latencies, says))
            finally:
                rig.sfox.delay = 0.0
                bot.stop()
                rig.reset()
    finally:
        rig.sfox.delay = 0.0
    return rows


def _commands(
    rig: h.Rig, bot: h.Server, tag: str, n: int, spacing: float, burst: bool = False
) -> tuple[list[float], str]:
    users = [f"card_{tag}_{i}" for i in range(n)]
    for uid in users:
        rig.sfox.add_user(uid)
    bodies = [rig.driver.command_body(h.ALICE, uid)[0] for uid in users]
    started: dict[str, float] = {}
    if burst:
        for uid, sample in zip(users, rig.gen.burst([(bot.url, b) for b in bodies]), strict=True):
            started[uid] = sample.started
    else:
        for uid, body in zip(users, bodies, strict=True):
            [sample] = rig.gen.burst([(bot.url, body)])
            started[uid] = sample.started
            if sample.status != 200:
                raise h.BenchError(f"{bot.name} answered a command with HTTP {sample.status}")
            h.wait_for(lambda u=uid: _card(rig, u), 30, f"the card for {uid}")
            time.sleep(spacing)
    h.wait_for(lambda: all(_card(rig, u) for u in users), 60, f"{len(users)} cards")
    latencies, says = [], set()
    with rig.slack.lock:
        for uid in users:
            text, at = _card(rig, uid)
            latencies.append(at - started[uid])
        for m in rig.slack.messages:
            if m.thread_ts is None and any(f"`{u}`" in str(m.blocks) for u in users):
                says |= {_balance_line(m.blocks)}
    return latencies, " / ".join(sorted(says))


def _card(rig: h.Rig, uid: str) -> tuple[str, float] | None:
    for text, at in list(rig.slack.cards_at.items()):
        match = _USER.search(text)
        if match and match.group(1) == uid:
            return text, at
    return None


def _balance_line(blocks: list[dict[str, Any]]) -> str:
    for block in blocks:
        for element in block.get("elements", []):
            text = element.get("text")
            if isinstance(text, str) and text.startswith("Balances:"):
                if "rate limit" in text:
                    return "not checked (route limit)"
                return "all zero" if "all zero" in text else text[:40]
    return "no balance line"
