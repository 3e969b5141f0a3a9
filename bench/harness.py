"""What every benchmark section needs: the rig, bot processes served the production way, signed
Slack traffic with wall-clock timing, seeded requests, and resident-memory readings.

The bot under test is always a real `sfox-bot run` subprocess (gunicorn gthread), talking over
127.0.0.1 to the fake Slack and fake sFOX that run in this process.
"""

from __future__ import annotations

import math
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from bench.loadgen import LoadGenerator
from bot.fakes.polling import poll
from bot.fakes.sfox_api import FakeSfox
from bot.fakes.slack_api import FakeSlack, Message
from bot.fakes.slack_driver import SlackDriver
from bot.store.db import Store

ROOT = Path(__file__).resolve().parent.parent
SIGNING_SECRET = "bench-signing-secret-0123456789"
BOT_TOKEN = "xoxb-bench-token"
SFOX_KEY = "sfox-bench-key-abcdef"
ALICE, BOB, CAROL = "UALICE01", "UBOB0002", "UCAROL03"
CHANNEL = "C0BENCH01"


class BenchError(AssertionError):
    """A correctness check of the benchmark failed (e.g. a DELETE sent twice)."""


# -- the fakes ----------------------------------------------------------------------------------


class BenchSlack(FakeSlack):
    """The fake Slack, also noting when each response_url post arrived (perf_counter clock).

    Without Slack's per-channel pace on chat.postMessage (`rate_limited=False`): every section
    measures the bot (acks, DELETE throughput, contention, card latency, sFOX pacing), and with
    hundreds of requests in one channel the pace alone would set the time of their messages."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**{"rate_limited": False, **kwargs})
        self.arrivals: dict[str, list[tuple[float, str]]] = {}
        # card text -> when its chat.postMessage arrived (perf_counter), for card latencies
        self.cards_at: dict[str, float] = {}
        self._ts_seq = 0

    def handle_api(
        self, method: str, args: dict[str, Any], auth: str | None
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        at = time.perf_counter()
        answer = super().handle_api(method, args, auth)
        if method == "chat.postMessage" and not args.get("thread_ts"):
            with self.lock:
                self.cards_at.setdefault(str(args.get("text", "")), at)
        return answer

    def handle_response_url(self, name: str, payload: dict[str, Any]) -> None:
        at = time.perf_counter()
        super().handle_response_url(name, payload)
        with self.lock:
            self.arrivals.setdefault(name, []).append((at, str(payload.get("text", ""))))

    def add_card(self, channel: str) -> str:
        """A card as if the bot had posted it, so seeded requests can be updated like real ones."""
        with self.lock:
            self._ts_seq += 1
            ts = f"{1800000000 + self._ts_seq}.000200"
            self.messages.append(Message(channel, ts, "seeded card"))
        return ts

    def reset(self) -> None:
        """Forget what was seen (keeps the fake's scans short between benchmark cases)."""
        with self.lock:
            self.messages.clear()
            self.ephemeral.clear()
            self.calls.clear()
            self.arrivals.clear()
            self.cards_at.clear()


class BenchSfox(FakeSfox):
    def reset(self) -> None:
        with self.lock:
            self.seen.clear()


@dataclass
class Rig:
    """The fake Slack and fake sFOX (in this process) and the load generator (its own process)."""

    slack: BenchSlack
    sfox: BenchSfox
    gen: LoadGenerator
    # One driver for the whole run: its counter names each request's response_url uniquely.
    driver: SlackDriver

    def reset(self) -> None:
        """Forget what both fakes saw, between benchmark cases (the fake sFOX still counts its
        window: `FakeSfox.counted_within`)."""
        self.slack.reset()
        self.sfox.reset()

    def stop(self) -> None:
        self.gen.close()
        self.slack.stop()
        self.sfox.stop()


def start_rig() -> Rig:
    slack = BenchSlack(token=BOT_TOKEN).start()
    driver = SlackDriver("http://unused", SIGNING_SECRET, slack, channel_id=CHANNEL)
    driver.close()  # only its body builders are used; the LoadGenerator sends the requests
    return Rig(slack, BenchSfox(api_key=SFOX_KEY, users=[]).start(), LoadGenerator(SIGNING_SECRET), driver)


# -- processes ------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def bot_env(rig: Rig, database_url: str, port: int, **overrides: str) -> dict[str, str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        # gunicorn 27 binds a control socket under $HOME/.gunicorn: keep ours out of the real HOME.
        "HOME": str(_base or tempfile.gettempdir()),
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": rig.slack.api_url,
        "SFOX_API_KEY": SFOX_KEY,
        "SFOX_API_URL": rig.sfox.url,
        "SFOX_APPROVERS": ",".join((ALICE, BOB, CAROL)),
        "DATABASE_URL": database_url,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "SFOX_SWEEP_INTERVAL_SECONDS": "3600",
        "LOG_LEVEL": "INFO",
    }
    # `SFOX_WORKERS=0 bench/run.py` measures the one process of before the split (issue 26).
    if "SFOX_WORKERS" in os.environ:
        env["SFOX_WORKERS"] = os.environ["SFOX_WORKERS"]
    env.update(overrides)
    return env


@dataclass
class Server:
    """A gunicorn master we started, and its one worker."""

    name: str
    proc: subprocess.Popen[bytes]
    url: str
    log_path: Path
    worker_pid: int | None = None
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def pids(self) -> list[int]:
        return [self.proc.pid] + ([self.worker_pid] if self.worker_pid else [])

    def rss_kib(self) -> dict[str, int]:
        """VmRSS of master and worker, and the worker's peak (VmHWM), in KiB."""
        out = {"master": proc_status_kib(self.proc.pid, "VmRSS")}
        if self.worker_pid:
            out["worker"] = proc_status_kib(self.worker_pid, "VmRSS")
            out["worker_peak"] = proc_status_kib(self.worker_pid, "VmHWM")
        return out

    def pause(self) -> None:
        """SIGSTOP master and worker, so their background work cannot disturb another measurement."""
        for pid in self.pids:
            os.kill(pid, signal.SIGSTOP)

    def resume(self) -> None:
        for pid in reversed(self.pids):
            os.kill(pid, signal.SIGCONT)

    def stop(self, timeout: float = 60.0) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def start_server(name: str, argv: Sequence[str], env: dict[str, str], workdir: Path) -> Server:
    """Start a gunicorn-served app and wait until it answers `GET /healthz`."""
    log_path = workdir / f"{name}.log"
    port = int(env["PORT"])
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            list(argv), env=env, cwd=workdir, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    server = Server(name, proc, f"http://127.0.0.1:{port}", log_path)
    deadline = time.monotonic() + 60
    with httpx.Client(timeout=2) as http:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}:\n{server.log_tail()}")
            try:
                if http.get(server.url + "/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                server.stop()
                raise RuntimeError(f"{name} did not become healthy:\n{server.log_tail()}")
            time.sleep(0.1)
    children = child_pids(proc.pid)
    server.worker_pid = children[0] if children else None
    return server


def start_bot(name: str, rig: Rig, database_url: str, workdir: Path, **overrides: str) -> Server:
    """`sfox-bot run` exactly as in production (migrates, then gunicorn gthread)."""
    env = bot_env(rig, database_url, free_port(), **overrides)
    return start_server(name, [sys.executable, "-m", "bot", "run"], env, workdir)


def start_bare(rig: Rig, workdir: Path) -> Server:
    env = bot_env(rig, "sqlite://", free_port(), PYTHONPATH=str(ROOT))
    return start_server("bare", [sys.executable, "-m", "bench.bare_app"], env, workdir)


def child_pids(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
        return [int(p) for p in text.split()]
    except OSError:
        out = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    stat = (entry / "stat").read_text()
                except OSError:
                    continue
                if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(entry.name))
        return out


def proc_status_kib(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


_base: Path | None = None


def set_base(path: Path) -> None:
    """Put every work directory (databases, server logs) under `path`, removed after the run."""
    global _base
    _base = path


def workdir(prefix: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=f"{prefix}-", dir=_base))


# -- Slack traffic --------------------------------------------------------------------------------


def warm_up(rig: Rig, server: Server) -> None:
    """One signed click (on a request that does not exist) and its private answer: what a bot that
    has been running a while has already done (Bolt's first request calls auth.test)."""
    body, name = rig.driver.click_body(BOB, "sfox_approve", "999999999")
    samples = rig.gen.burst([(server.url, body)])
    if samples[0].status != 200:
        raise BenchError(f"{server.name} answered the warm-up click with HTTP {samples[0].status}")
    wait_for(lambda: name in rig.slack.arrivals, 30, f"{server.name} to answer the warm-up click")


# -- seeding --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Seeded:
    request_id: int
    sfox_user_id: str
    ts: str


def seed_pending(
    store: Store, rig: Rig, user_ids: Sequence[str], requester: str = ALICE, ttl_hours: int = 2
) -> list[Seeded]:
    """Pending requests recorded through the Store API, each with its card in the fake Slack and its
    account on the fake sFOX: what `/sfox-deactivate` would have left, without its sFOX lookups
    (which would count against the rate limit the approvals are measured under)."""
    out = []
    now = datetime.now(UTC)
    for uid in user_ids:
        rig.sfox.add_user(uid)
        record = store.create_request(
            sfox_user_id=uid,
            reason="benchmark",
            requested_by=requester,
            channel_id=CHANNEL,
            required_approvals=1,
            target_name="Test User",
            target_email=f"{uid}@example.com",
            target_status="VERIFIED",
            now=now,
            ttl=timedelta(hours=ttl_hours),
        )
        ts = rig.slack.add_card(CHANNEL)
        store.set_card(record.id, ts, now)
        out.append(Seeded(record.id, uid, ts))
    return out


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, poll_every: float = 0.05) -> Any:
    value = poll(predicate, timeout, poll_every)
    if not value:
        raise BenchError(f"timed out after {timeout:g} s waiting for {what}")
    return value


def status_counts(store: Store, ids: Sequence[int]) -> dict[str, int]:
    from sqlalchemy import func, select

    from bot.store.schema import requests

    counts: dict[str, int] = {}
    with store.engine.connect() as conn:
        for start in range(0, len(ids), 500):
            chunk = list(ids[start : start + 500])
            rows = conn.execute(
                select(requests.c.status, func.count())
                .where(requests.c.id.in_(chunk))
                .group_by(requests.c.status)
            )
            for status, n in rows:
                counts[status] = counts.get(status, 0) + n
    return counts


def assert_deleted_once(sfox: FakeSfox, user_ids: Sequence[str]) -> None:
    """Exactly one DELETE per account: the bench's correctness check, never a timing one."""
    with sfox.lock:
        counts = {uid: sfox.deletes[uid] for uid in user_ids}
    wrong = {uid: n for uid, n in counts.items() if n != 1}
    if wrong:
        sample = dict(list(wrong.items())[:5])
        raise BenchError(f"{len(wrong)} account(s) did not get exactly one DELETE, e.g. {sample}")


# -- figures --------------------------------------------------------------------------------------


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (no interpolation: p99 of 100 samples is the 99th smallest)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def ms(seconds: float) -> str:
    if math.isnan(seconds):
        return "—"
    return f"{seconds * 1000:.1f}" if seconds < 0.1 else f"{seconds * 1000:.0f}"


def mib(kib: int) -> str:
    return f"{kib / 1024:.1f}"


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table (readable in a terminal, pasteable in the README)."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in cells]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)
