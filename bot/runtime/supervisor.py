"""`sfox-bot run` on one host: the web process and SFOX_WORKERS workers, kept running (issue 26).

Each role is its own `sfox-bot run --role …` process, so nothing a worker does competes with an
ack for a GIL. The supervisor only starts, restarts and stops them:

- a child that dies (a crash, the OOM killer, `kill -9`) is started again, at once the first
  time and then after a pause that doubles while it keeps dying young, so a worker that cannot
  start does not spin;
- SIGTERM (or SIGINT) stops them in order: the web process first, so nothing new is acked, then
  the workers, each finishing the sFOX calls in flight and recording them;
- the children die with the supervisor (PR_SET_PDEATHSIG on Linux), so a supervisor killed with
  -9 leaves no process behind holding database connections; what they had acked is in the
  journals, and the next start's workers take it.

Deployments that scale the roles apart (several web replicas behind a load balancer, workers
sized to sFOX's limit) run `sfox-bot run --role web` and `--role worker` under their own
supervisor (systemd, Kubernetes) instead; see the README's Deploy section.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any

from bot.runtime.roles import WEB, WORKER

log = logging.getLogger("sfox_bot.supervisor")

# A child that lived this long before dying is restarted at once; one that died younger waits
# RESTART_PAUSE_SECONDS, doubled for each such death in a row, up to MAX_RESTART_PAUSE_SECONDS.
HEALTHY_AFTER_SECONDS = 30.0
RESTART_PAUSE_SECONDS = 0.5
MAX_RESTART_PAUSE_SECONDS = 30.0
# How long each tier may take to stop on SIGTERM before it is killed.
STOP_GRACE_SECONDS = 60.0
CHECK_EVERY_SECONDS = 0.2
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    # Not Linux: the children outlive a killed supervisor, as under any other one.
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


@dataclass
class Child:
    role: str
    index: int
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    young_deaths: int = 0
    restart_at: float = 0.0

    @property
    def name(self) -> str:
        return self.role if self.role == WEB else f"worker-{self.index}"


class Supervisor:
    def __init__(self, workers: int, argv: list[str] | None = None) -> None:
        self.argv = argv or [sys.executable, "-m", "bot", "run", "--no-migrate"]
        self.children = [Child(WEB, 0)] + [Child(WORKER, i + 1) for i in range(workers)]
        self.stopping = threading.Event()

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        for child in self.children:
            self._start(child)
        log.info("supervising", extra={"workers": len(self.children) - 1})
        while not self.stopping.wait(CHECK_EVERY_SECONDS):
            now = time.monotonic()
            for child in self.children:
                try:
                    self._check(child, now)
                except Exception:  # e.g. no fork for now: try again at the next look
                    log.exception(
                        "child not checked or restarted; will try again", extra={"child": child.name}
                    )
        self._stop_all()
        log.info("stopped")
        return 0

    def _on_signal(self, _signum: int, _frame: Any) -> None:
        self.stopping.set()

    def _start(self, child: Child) -> None:
        env = {**os.environ, "SFOX_PROCESS_NAME": child.name}
        child.proc = subprocess.Popen(
            [*self.argv, "--role", child.role], env=env, preexec_fn=_die_with_parent
        )
        child.started_at = time.monotonic()
        log.info("started", extra={"child": child.name, "pid": child.proc.pid})

    def _check(self, child: Child, now: float) -> None:
        if child.proc is not None:
            code = child.proc.poll()
            if code is None:
                return
            lived = now - child.started_at
            child.young_deaths = child.young_deaths + 1 if lived < HEALTHY_AFTER_SECONDS else 0
            pause = 0.0
            if child.young_deaths:
                pause = min(RESTART_PAUSE_SECONDS * 2 ** (child.young_deaths - 1), MAX_RESTART_PAUSE_SECONDS)
            child.proc = None
            child.restart_at = now + pause
            log.warning(
                "child died; restarting",
                extra={
                    "child": child.name,
                    "exit_code": code,
                    "lived_seconds": round(lived, 1),
                    "pause": pause,
                },
            )
        if now >= child.restart_at:
            self._start(child)

    def _stop_all(self) -> None:
        """The web tier first (no new acks), then the workers (each finishes what it holds)."""
        for tier in (WEB, WORKER):
            procs = [c.proc for c in self.children if c.role == tier and c.proc is not None]
            for proc in procs:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + STOP_GRACE_SECONDS
            for proc in procs:
                try:
                    proc.wait(max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    log.warning("child did not stop in time; killed", extra={"child_pid": proc.pid})
                    proc.kill()
                    proc.wait()
