"""Run `sfox-bot` as a separate process the way a newcomer would: in a directory of its own, with
an environment that holds nothing but PATH and HOME (plus what a test adds on purpose)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

SFOX_BOT = Path(sys.executable).with_name("sfox-bot")


def bare_env(home: Path, **extra: str) -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), **extra}


def sfox_bot(
    cwd: Path, *args: str, stdin: str | None = None, timeout: float = 120, **extra_env: str
) -> subprocess.CompletedProcess[str]:
    command = [str(SFOX_BOT)] if SFOX_BOT.exists() else [sys.executable, "-m", "bot"]
    return subprocess.run(
        [*command, *args],
        cwd=cwd,
        env=bare_env(cwd, **extra_env),
        input=stdin if stdin is not None else "",
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=timeout,
    )


def history(cwd: Path) -> list[dict[str, Any]]:
    """What `sfox-bot history` (default database, nothing configured) says is recorded."""
    done = sfox_bot(cwd, "history", "--format", "json", "--limit", "0")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)
