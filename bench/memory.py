"""Section 5: resident memory (VmRSS from /proc/<pid>/status) of `sfox-bot run`: the gunicorn master
and its worker, idle right after start, and after the load the other sections put on it.

The other sections note every server they ran; on its own, this section starts a bot, reads it
idle, sends it a little traffic of both kinds and reads it again.
"""

from __future__ import annotations

from typing import Any

from bench import harness as h
from bot.slack.blocks import APPROVE
from bot.store.db import Store

HEADERS = [
    "process",
    "idle master MiB",
    "idle worker MiB",
    "after load: master MiB",
    "worker MiB",
    "worker peak MiB",
]


def cells(entry: dict[str, Any]) -> list[Any]:
    idle = entry.get("idle") or {}
    loaded = entry["loaded"]
    return [
        entry["server"],
        h.mib(idle["master"]) if idle else "—",
        h.mib(idle["worker"]) if idle else "—",
        h.mib(loaded["master"]),
        h.mib(loaded["worker"]),
        h.mib(loaded["worker_peak"]),
    ]


def standalone(rig: h.Rig, memory: list[dict[str, Any]], n: int) -> None:
    work = h.workdir("memory")
    url = f"sqlite:///{work / 'memory.db'}"
    bot = h.start_bot("bot-memory", rig, url, work, SFOX_BALANCE_CHECK="off")  # as in section 1
    store = Store.from_url(url)
    driver = rig.driver
    try:
        idle = bot.rss_kib()
        users = [f"mem_c_{i}" for i in range(n)]
        for uid in users:
            rig.sfox.add_user(uid)
        seeded = h.seed_pending(store, rig, [f"mem_a_{i}" for i in range(n)])
        bodies = [driver.command_body(h.ALICE, f"{uid} memory")[0] for uid in users]
        bodies += [driver.click_body(h.BOB, APPROVE, str(s.request_id), s.ts)[0] for s in seeded]
        clients = 10
        rig.gen.closed_loop(bot.url, [bodies[i::clients] for i in range(clients)])
        ids = [s.request_id for s in seeded]
        h.wait_for(
            lambda: h.status_counts(store, ids).get("succeeded", 0) == len(ids), 60, "the approvals to finish"
        )
        h.assert_deleted_once(rig.sfox, [s.sfox_user_id for s in seeded])
        memory.append({"server": bot.name, "idle": idle, "loaded": bot.rss_kib()})
    finally:
        store.close()
        bot.stop()
        rig.reset()
