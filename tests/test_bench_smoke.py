"""The benchmark's smoke run: `bench/run.py --quick` completes and its correctness checks hold
(every DELETE sent exactly once, every outcome recorded; the script exits non-zero otherwise).
No figure is checked here: timings belong to the benchmark, never to a test."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_quick_benchmark_completes_with_exactly_once_deletes():
    # On a timeout, interrupt run.py so that its `finally`s stop the bot servers it started (each
    # in a session of its own): killed outright, it would leave them running, holding their ports.
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--quick"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        start_new_session=True,  # so that the SIGKILL of last resort takes its whole group
    )
    try:
        stdout, stderr = proc.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGINT)
        try:
            stdout, stderr = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            stdout, stderr = proc.communicate()
        pytest.fail(f"bench/run.py --quick did not finish in 300 s:\n{(stdout + stderr)[-4000:]}")
    report = stdout + stderr
    assert proc.returncode == 0, report[-4000:]
    assert "## Targets" in stdout, report[-4000:]
    assert "DELETEs, each exactly once" in stdout  # section 1
    assert "Every request got exactly one DELETE" in stdout  # section 2
    assert "SQLite: 1 DELETE for 10 clicks" in stdout  # section 3
    assert "`audit verify` on 20,000 events" in stdout  # section 6
    assert "## 7. Card latency" in stdout and "| required " in stdout  # section 7
    assert "## 8. A batch of 40 users" in stdout and "met: batch: 0 429s" in stdout  # section 8
