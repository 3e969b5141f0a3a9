"""The benchmark's smoke run: `bench/run.py --quick` completes and its correctness checks hold
(every DELETE sent exactly once, every outcome recorded; the script exits non-zero otherwise).
No figure is checked here: timings belong to the benchmark, never to a test."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_quick_benchmark_completes_with_exactly_once_deletes():
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--quick"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        check=False,
    )
    report = proc.stdout + proc.stderr
    assert proc.returncode == 0, report[-4000:]
    assert "## Targets" in proc.stdout, report[-4000:]
    assert "DELETEs, each exactly once" in proc.stdout  # section 1
    assert "Every request got exactly one DELETE" in proc.stdout  # section 2
    assert "SQLite: 1 DELETE for 10 clicks" in proc.stdout  # section 3
    assert "`audit verify` on 20,000 events" in proc.stdout  # section 6
    assert "## 7. Card latency" in proc.stdout and "| required " in proc.stdout  # section 7
    assert "## 8. A batch of 40 users" in proc.stdout and "met: batch: 0 429s" in proc.stdout  # section 8
