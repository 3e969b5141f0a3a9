"""Real `sfox-bot run` processes that a test can kill, or that kill themselves at a named crash
point (bot/crashpoints.py), and a view of their database and fakes for the shared helpers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from bot.crashpoints import CRASH_PAUSE_VAR, CRASH_POINT_VAR
from bot.fakes.slack_driver import SlackDriver
from bot.store.db import Store
from tests.conftest import SIGNING_SECRET
from tests.ops_support import clean_env, free_port

SFOX_BOT = str(Path(sys.executable).with_name("sfox-bot"))


class BotProcess:
    """`sfox-bot run` in its own process group, so a kill takes the gunicorn master and worker.

    With `crash` set, the process SIGKILLs itself (and its group) on reaching that point, after
    `pause` seconds."""

    def __init__(
        self,
        env: dict[str, str],
        workdir: Path,
        name: str,
        *,
        crash: str | None = None,
        pause: float = 0.0,
        wait_ready: bool = True,
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = workdir / f"{name}.log"
        full_env = clean_env({**env, "HOST": "127.0.0.1", "PORT": str(self.port)})
        full_env.pop(CRASH_POINT_VAR, None)
        full_env.pop(CRASH_PAUSE_VAR, None)
        if crash:
            full_env[CRASH_POINT_VAR] = crash
            full_env[CRASH_PAUSE_VAR] = str(pause)
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [SFOX_BOT, "run"],
                env=full_env,
                cwd=workdir,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        if wait_ready:
            self.wait_ready()

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"sfox-bot run exited: {self.output()}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                self.kill()
                raise AssertionError(f"sfox-bot run did not become ready: {self.output()}")
            time.sleep(0.02)

    def wait_crashed(self, point: str, timeout: float = 20.0) -> None:
        """Wait until the process killed itself at `point` (and nothing else ended it)."""
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"crash point {point} not reached: {self.output()}") from None
        assert f"crash point {point} reached" in self.output(), self.output()
        assert self.proc.returncode == -signal.SIGKILL, self.output()

    def kill(self) -> None:
        """SIGKILL the whole process group: nothing gets to clean up or finish its work."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


class View:
    """Just enough of tests.conftest.Bot for the helpers, for a bot that runs in another process."""

    def __init__(self, url: str, database_url: str, slack: Any, sfox: Any) -> None:
        self.url = url
        self.slack = slack
        self.sfox = sfox
        self.store = Store.from_url(database_url)
        self.driver = SlackDriver(url, SIGNING_SECRET, slack)

    def point_at(self, url: str) -> None:
        """Send Slack's requests to another process from now on (e.g. after a restart)."""
        self.url = url
        self.driver.close()
        self.driver = SlackDriver(url, SIGNING_SECRET, self.slack)
