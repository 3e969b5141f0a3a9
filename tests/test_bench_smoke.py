"""The benchmark's smoke run: `bench/run.py --quick` completes and its correctness checks hold
(every DELETE sent exactly once, every outcome recorded; the script exits non-zero otherwise),
on SQLite and on PostgreSQL (tests/postgres.py says which server). No figure is checked here:
timings belong to the benchmark, never to a test."""

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests import postgres

ROOT = Path(__file__).resolve().parent.parent


def _run_quick(*more: str) -> tuple[int, str, str]:
    # On a timeout, interrupt run.py so that its `finally`s stop the bot servers it started (each
    # in a session of its own): killed outright, it would leave them running, holding their ports.
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--quick", *more],
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
    return proc.returncode, stdout, stderr


@pytest.mark.slow
def test_quick_benchmark_completes_with_exactly_once_deletes():
    # PostgreSQL decided here as the benchmark decides it: required and unreachable fails (the
    # benchmark would fail too, but only after its SQLite sections); not required, its runs are
    # left out and the test ends skipped, saying why, once the SQLite ones passed.
    on_postgres = postgres.reachable()
    if not on_postgres and postgres.required():
        pytest.fail(postgres.required_but_unreachable())
    code, stdout, stderr = _run_quick(*([] if on_postgres else ["--no-postgres"]))
    report = stdout + stderr
    assert code == 0, report[-4000:]
    assert "## Targets" in stdout, report[-4000:]
    assert "DELETEs, each exactly once" in stdout  # section 1
    assert "Every request got exactly one DELETE" in stdout  # section 2
    assert "SQLite: 1 DELETE for 10 clicks" in stdout  # section 3
    assert "`audit verify` on 20,000 events" in stdout  # section 6
    assert "## 7. Card latency" in stdout and "| required " in stdout  # section 7
    assert re.search(r"met: batch \([^)]*\): 0 429s", stdout), report[-4000:]  # section 8
    if not on_postgres:
        assert "skipped: every PostgreSQL run (--no-postgres)" in stdout
        pytest.skip(f"the benchmark ran on SQLite only: {postgres.unreachable_reason()}")
    assert "Databases: SQLite and PostgreSQL" in stdout and "skipped" not in stdout
    assert "PostgreSQL: 1 DELETE for 10 clicks" in stdout  # section 3, on PostgreSQL
    assert "PostgreSQL, 2 writer(s): the chain adds" in stdout  # section 6's appends
    assert "## 8. A batch of 40 users at sFOX's pace (two replicas, one database)" in stdout
    assert re.search(r"met: batch \(PostgreSQL, [^)]*\): 0 429s", stdout)  # section 8 on PostgreSQL


def test_the_benchmark_fails_when_postgresql_is_required_and_unreachable(tmp_path):
    """Before it starts anything: a run told PostgreSQL is required never quietly drops it."""
    env = {
        **os.environ,
        postgres.REQUIRED_SETTING: "1",
        postgres.URL_SETTING: "postgresql+psycopg://postgres:hunter2@127.0.0.1:1/test",
    }
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--quick", "--only", "4"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=120,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "BENCHMARK CHECK FAILED: PostgreSQL is required here (SFOX_BOT_REQUIRE_POSTGRES=1)" in done.stderr
    assert "127.0.0.1:1/test is unreachable" in done.stderr and "hunter2" not in done.stderr + done.stdout
