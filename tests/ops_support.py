"""Helpers for the operations tests: the real `sfox-bot` command in subprocesses."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx

from bot.config import setting_names

BIN = Path(sys.executable).parent
SFOX_BOT = str(BIN / "sfox-bot")
GUNICORN = str(BIN / "gunicorn")
REPO = Path(__file__).resolve().parent.parent


def gunicorn_argv(port: int, target: str, *options: str) -> list[str]:
    """A `gunicorn` command line for a bring-your-own-server deployment of `target`."""
    from gunicorn.config import KNOWN_SETTINGS

    argv = [GUNICORN, "--bind", f"127.0.0.1:{port}", *options]
    if any(s.name == "control_socket_disable" for s in KNOWN_SETTINGS):
        argv.append("--no-control-socket")  # gunicorn >= 24 would share one socket in $HOME
    return [*argv, target]


def clean_env(settings: Mapping[str, str]) -> dict[str, str]:
    """The test process's environment without any bot setting of its own, plus `settings`."""
    names = set(setting_names())
    env = {k: v for k, v in os.environ.items() if k not in names}
    env.update(settings)
    # One process that records and carries out, as these tests were written for, unless a test
    # asks for the web and worker tiers (tests/test_roles.py).
    env.setdefault("SFOX_WORKERS", "0")
    env["PYTHONUNBUFFERED"] = "1"
    # A process that hangs can be asked for every thread's stack (SIGABRT: see Process.terminate).
    env["PYTHONFAULTHANDLER"] = "1"
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cli(
    *args: str, env: Mapping[str, str], cwd: Path, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SFOX_BOT, *args], env=clean_env(env), cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


class Process:
    """A long-running subprocess whose stderr goes to a file the test can read at any time."""

    def __init__(self, argv: list[str], env: Mapping[str, str], cwd: Path, name: str = "bot") -> None:
        self.log_path = cwd / f"{name}-{time.monotonic_ns()}.stderr"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            argv, env=clean_env(env), cwd=cwd, stdout=self._log, stderr=subprocess.STDOUT
        )

    @property
    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_output(self, text: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.output:
            if self.proc.poll() is not None:
                raise AssertionError(f"process exited ({self.proc.returncode}):\n{self.output}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} not seen in time:\n{self.output}")
            time.sleep(0.05)

    def terminate(self, timeout: float = 60.0) -> int:
        """SIGTERM, as a platform sends on deploy/scale-down; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            # Still running: its threads' stacks say where it hangs (faulthandler, on SIGABRT).
            self.proc.send_signal(signal.SIGABRT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(10)
            self._log.flush()
            raise AssertionError(
                f"not stopped {timeout:g} s after SIGTERM:\n{self.output[-12000:]}"
            ) from None
        finally:
            self._log.close()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._log.close()


class HttpBot(Process):
    """`sfox-bot run` (or any server) listening on 127.0.0.1:`port`."""

    def __init__(self, argv: list[str], env: Mapping[str, str], cwd: Path, port: int, name: str = "bot"):
        super().__init__(argv, env, cwd, name)
        self.url = f"http://127.0.0.1:{port}"

    def wait_ready(self, path: str = "/healthz", timeout: float = 30.0) -> httpx.Response:
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"bot exited ({self.proc.returncode}):\n{self.output}")
            try:
                response = httpx.get(self.url + path, timeout=2)
                if response.status_code == 200:
                    return response
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"bot not ready in time:\n{self.output}")
            time.sleep(0.02)


def start_run(env: Mapping[str, str], cwd: Path, *args: str, name: str = "bot") -> HttpBot:
    """`sfox-bot run` in HTTP mode on a free port, once it answers /healthz."""
    port = free_port()
    bot = HttpBot([SFOX_BOT, "run", *args], {**env, "HOST": "127.0.0.1", "PORT": str(port)}, cwd, port, name)
    try:
        bot.wait_ready()
    except BaseException:
        bot.kill()
        raise
    return bot


def json_lines(text: str) -> list[dict[str, Any]]:
    """Every line parsed as one JSON object (fails on any line that is not)."""
    out = []
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except ValueError:
            raise AssertionError(f"not a JSON log line: {line!r}") from None
    return out


# -- Slack's side over Socket Mode -------------------------------------------------------------


def socket_command(socket_mode: Any, driver: Any, user: str, text: str, channel: str | None = None) -> dict:
    """Send `/sfox-deactivate text` as a Socket Mode envelope; returns the bot's acknowledgement."""
    from urllib.parse import parse_qs

    body, _ = driver.command_body(user, text, channel)
    payload = {k: v[0] for k, v in parse_qs(body.decode(), keep_blank_values=True).items()}
    return socket_mode.request("slash_commands", payload)


def socket_click(
    socket_mode: Any, driver: Any, user: str, action_id: str, value: str, ts: str
) -> tuple[dict, str]:
    """Click a card button over Socket Mode; returns the bot's acknowledgement and the name of
    the click's response_url (for `driver.ephemeral_for`)."""
    from urllib.parse import parse_qs

    body, name = driver.click_body(user, action_id, value, ts)
    payload = json.loads(parse_qs(body.decode())["payload"][0])
    return socket_mode.request("interactive", payload), name
