"""`python -m bench.peak ARGS…` runs `sfox-bot ARGS…` (the same code as `python -m bot`) and, as it
exits, writes the process's own peak resident memory (VmHWM, KiB) to $SFOX_BENCH_PEAK_FILE.

Why not ru_maxrss from wait4/getrusage(RUSAGE_CHILDREN): Linux carries the parent's peak across
fork and exec, so a child of a big benchmark process reports the benchmark's memory (a 300 MB
parent makes `python -c pass` report 313 MB). VmHWM belongs to the exec'd process alone.
"""

from __future__ import annotations

import atexit
import os
import runpy
import sys
from pathlib import Path


def _report() -> None:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            Path(os.environ["SFOX_BENCH_PEAK_FILE"]).write_text(line.split()[1])


if __name__ == "__main__":
    atexit.register(_report)
    sys.argv = ["sfox-bot", *sys.argv[1:]]
    runpy.run_module("bot", run_name="__main__", alter_sys=True)
