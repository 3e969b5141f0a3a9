"""Benchmarks of sfox-deactivate-bot, served the production way (`sfox-bot run`, gunicorn gthread)
against the fake Slack and fake sFOX on 127.0.0.1. Prints Markdown tables.

    .venv/bin/python bench/run.py              # everything (a few minutes)
    .venv/bin/python bench/run.py --quick      # a short smoke run of every section
    .venv/bin/python bench/run.py --only 2,4   # some sections: 1 ack, 2 throughput, 3 contention,
                                               # 4 history, 5 memory, 6 audit, 7 card latency,
                                               # 8 a batch at sFOX's pace on two replicas

Correctness is asserted (every DELETE exactly once, every outcome recorded); a failed check exits
non-zero. The figures are never asserted: they are for reading, and the machine may be noisy.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `bench` and `bot` importable from the checkout
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import ack, cards, contention, history, memory, throughput  # noqa: E402
from bench import audit as audit_bench  # noqa: E402
from bench import batch as batch_bench  # noqa: E402
from bench import harness as h  # noqa: E402
from tests import postgres  # noqa: E402

SECTIONS = {
    1: "ack",
    2: "throughput",
    3: "contention",
    4: "history",
    5: "memory",
    6: "audit",
    7: "cards",
    8: "batch",
}
BATCH_RATE_TARGET = 0.95
BATCH_GAP_TARGET_S = 5.0
ACK_TARGET_S = 0.100
RATIO_TARGET = 1.5
THROUGHPUT_TARGET_S = 3.0
VERIFY_TARGET_S = 20.0
APPEND_TARGET_MS = 1.0


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem_kib = int(Path("/proc/meminfo").read_text().split()[1])
        ram = f"{mem_kib / 1024 / 1024:.1f} GiB RAM"
    except (OSError, ValueError, IndexError):
        ram = "unknown RAM"
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"{os.cpu_count()} CPUs ({cpu}), {ram}, Linux {platform.release()}, "
        f"Python {platform.python_version()}; load average {load}"
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small counts: a smoke run of every section")
    parser.add_argument(
        "--only",
        default="1,2,3,4,5,6,7,8",
        help="comma-separated sections: 1 ack, 2 throughput, 3 contention, 4 history, 5 memory, "
        "6 audit, 7 card latency with and without the balance read, 8 a batch at sFOX's pace",
    )
    parser.add_argument("--no-postgres", action="store_true", help="skip every PostgreSQL run")
    parser.add_argument(
        "--keep", action="store_true", help="keep the work directory (databases, server logs)"
    )
    args = parser.parse_args(argv)
    try:
        args.sections = sorted({int(s) for s in args.only.split(",") if s.strip()})
    except ValueError:
        parser.error(f"--only takes section numbers 1-8, got {args.only!r}")
    if not args.sections or any(s not in SECTIONS for s in args.sections):
        parser.error(f"--only takes section numbers 1-8, got {args.only!r}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    base = Path(tempfile.mkdtemp(prefix="sfox-bench-"))
    h.set_base(base)
    try:
        return run(args)
    except h.BenchError as exc:
        print(f"\nBENCHMARK CHECK FAILED: {exc}", file=sys.stderr)
        args.keep = True
        return 1
    except BaseException:
        args.keep = True  # the server logs say why
        raise
    finally:
        if args.keep:
            print(f"\nWork directory (databases, server logs): {base}", file=sys.stderr)
        else:
            shutil.rmtree(base, ignore_errors=True)


def databases(no_postgres: bool) -> tuple[tuple[str, ...], str | None]:
    """The databases the sections run on, and why PostgreSQL is left out (None: it is not). An
    unreachable server is a failed run where it is required (SFOX_BOT_REQUIRE_POSTGRES=1, as under
    the smoke test in CI), and a skip said in the report otherwise, never a silent one."""
    if no_postgres:
        return ("sqlite",), "--no-postgres"
    if postgres.reachable():
        return ("sqlite", "postgres"), None
    if postgres.required():
        raise h.BenchError(postgres.required_but_unreachable())
    return ("sqlite",), postgres.unreachable_reason()


def run(args: argparse.Namespace) -> int:
    quick = args.quick
    backends, without_postgres = databases(args.no_postgres)
    print(f"# sfox-deactivate-bot benchmarks{' (quick)' if quick else ''}\n")
    print(f"Machine: {machine()}\n", flush=True)
    print(
        f"Databases: SQLite and PostgreSQL ({postgres.shown()})"
        if without_postgres is None
        else f"Databases: SQLite only, PostgreSQL skipped ({without_postgres})",
        end="\n\n",
        flush=True,
    )
    rig = h.start_rig()
    servers: list[dict[str, Any]] = []
    verdicts: list[str] = []
    started = time.monotonic()
    try:
        if 1 in args.sections:
            cfg = ack.QUICK if quick else ack.FULL
            # --quick: one database (PostgreSQL when it is there), as section 8.
            result = ack.run(cfg, rig, servers, backends[-1:] if quick else backends)
            section(
                "1. Ack latency over HTTP (ms, wall time per request, closed loop per client)",
                h.table(ack.HEADERS, [r.cells() for r in result.rows]),
                [
                    "Each command names a new sFOX user; each click approves a different pending request.",
                    "Each request on a new connection, its connect timed with it (Slack promises no "
                    "keep-alive).",
                    "Baseline: a bare Bolt app acking the same requests, same gunicorn settings, same run.",
                    *result.drains,
                ],
            )
            verdicts += ack_verdicts(result)
        if 2 in args.sections:
            rows2 = [throughput.run(20 if quick else 200, rig, servers, b == "postgres") for b in backends]
            section(
                f"2. Approval throughput (sFOX answers each DELETE after {throughput.DELAY * 1000:.0f} ms)",
                h.table(throughput.HEADERS, [r.cells() for r in rows2]),
                [
                    "Pending requests seeded through the Store API (no sFOX lookups before the window).",
                    "Every request got exactly one DELETE and recorded `succeeded` (asserted).",
                ],
            )
            verdicts += [
                verdict(
                    f"{r.database}, {r.requests} approvals: last outcome recorded after {r.wall:.2f} s",
                    r.wall < THROUGHPUT_TARGET_S,
                    f"< {THROUGHPUT_TARGET_S:g} s",
                )
                for r in rows2
            ]
        if 3 in args.sections:
            rows3 = contention.run(10 if quick else 100, rig, servers, backends)
            section(
                "3. Contention: simultaneous Approve clicks on one request, two bot processes, one database",
                h.table(contention.HEADERS, [r.cells() for r in rows3]),
                [
                    "Loser answer: from the click until its ephemeral answer reaches the fake Slack "
                    "(response_url). A silent loser's approval raced the winner's claim; the card shows the state.",
                ],
            )
            for r in rows3:
                verdicts.append(
                    verdict(f"{r.backend}: {r.deletes} DELETE for {r.clicks} clicks", True, "= 1")
                )
        if 4 in args.sections:
            sizes = (1_000, 10_000) if quick else (10_000, 100_000)
            rows4, plans = history.run(sizes, repeats=1 if quick else 3)
            notes = [f"Query plan of `--user` at {n:,} rows: " + " / ".join(p) for n, p in plans.items()]
            notes.append(
                "wall: best of the repeats, Python start-up included; peak RSS: VmHWM of the "
                "`sfox-bot history` process itself (see bench/peak.py for why not ru_maxrss)."
            )
            section(
                "4. History at scale (`sfox-bot history`, SQLite)",
                h.table(history.HEADERS, [r.cells() for r in rows4]),
                notes,
            )
            verdicts += history_verdicts(rows4, sizes)
        if 5 in args.sections:
            if not servers:
                memory.standalone(rig, servers, 50 if quick else 200)
            section(
                "5. Resident memory of `sfox-bot run` (gunicorn master + one gthread worker)",
                h.table(memory.HEADERS, [memory.cells(s) for s in servers]),
                ["idle: right after it answered /healthz; after load: at the end of its section."],
            )
        if 6 in args.sections:
            verdicts += audit_section(quick, backends)
        if 7 in args.sections:
            rows7 = cards.run(2 if quick else 10, rig)
            section(
                "7. Card latency: slash command → card posted, with and without the balance read",
                h.table(cards.HEADERS, [r.cells() for r in rows7]),
                [
                    "off: one sFOX call before the card (the user lookup); required: three (lookup, "
                    "user token, balance read). The fake sFOX answers each after `sFOX ms`.",
                    f"One command at a time; with the read, {cards.SPACING:.1f} s apart so the route's "
                    "limiter always has a slot. Burst: more commands at once than the limiter allows in "
                    "10 s; a read whose slot is more than 3 s away gives up at once: not checked.",
                ],
            )
        if 8 in args.sections:
            # --quick: the busy case once (its code path) and nothing else, so that the test suite's
            # smoke run is short; the full run: idle, then busy on every database.
            verdicts += batch_section(40 if quick else 500, rig, backends[-1:] if quick else backends, quick)
    finally:
        rig.stop()
    print("## Targets\n")
    if quick:
        print("(--quick: small counts and at most 10 clients; a smoke run, not the targets' conditions)\n")
    for line in verdicts:
        print(f"- {line}")
    if without_postgres is not None:
        print(f"- skipped: every PostgreSQL run ({without_postgres})")
    print(
        f"\nDone in {time.monotonic() - started:.0f} s; load average now {' '.join(f'{x:.2f}' for x in os.getloadavg())}."
    )
    return 0


def batch_section(users: int, rig: h.Rig, backends: tuple[str, ...], busy_only: bool = False) -> list[str]:
    """The batch on an idle machine (PostgreSQL when it is there; not when `busy_only`), then with
    every core kept busy on each database of `backends` (issue 26's case)."""
    results = [] if busy_only else [batch_bench.run(users, rig, "postgres" in backends)]
    results += [batch_bench.run(users, rig, b == "postgres", busy=True) for b in backends]
    section(
        f"8. A batch of {users} users at sFOX's pace (two replicas, one database)",
        h.table(batch_bench.HEADERS, [r.cells() for r in results]),
        [
            f"The fake sFOX answers 429 (Retry-After 60) past {batch_bench.LIMIT} calls in any "
            f"{batch_bench.WINDOW:g} s, lookups included; SFOX_RATE_LIMIT_PER_10S={batch_bench.LIMIT}.",
            "Asked on replica A, approved on replica B (which runs it); the rate limiter is shared "
            "through the database. Every user got exactly one DELETE and recorded `succeeded` (asserted).",
            "DELETE/s: (DELETEs − 1) / (last − first), as the fake sFOX received them (above 100 % "
            "when the first DELETEs use the window's whole allowance at once; the most calls in any "
            "10 s, lookups included, is what sFOX counts). Progress gap: "
            "the longest time between card updates from the first DELETE to the last.",
            "Busy loops: one `while True: pass` process per core, from the command to the summary.",
        ],
    )
    floor = BATCH_RATE_TARGET * batch_bench.LIMIT / batch_bench.WINDOW
    out = []
    for r in results:
        label = f"batch ({r.backend}, {r.load})"
        out += [
            verdict(f"{label}: {r.rate_limited} 429s from sFOX", r.rate_limited == 0, "0"),
            verdict(f"{label}: {r.rate:.2f} DELETE/s sustained", r.rate >= floor, f">= {floor:.2f}"),
            verdict(f"{label}: progress every {r.gap:.1f} s at most", r.gap <= BATCH_GAP_TARGET_S, "<= 5 s"),
        ]
    return out


def section(title: str, body: str, notes: list[str]) -> None:
    print(f"## {title}\n\n{body}\n")
    for note in notes:
        print(f"- {note}")
    print(flush=True)


def verdict(text: str, met: bool, target: str) -> str:
    return f"{'met' if met else 'MISSED'}: {text} (target {target})"


def audit_section(quick: bool, backends: tuple[str, ...]) -> list[str]:
    appends = audit_bench.run_appends(200 if quick else 4000, backends, repeats=1 if quick else 3)
    sizes = (2_000, 20_000) if quick else (100_000, 1_000_000)
    verifies = audit_bench.run_verifies(sizes)
    section(
        "6. Audit trail: append cost and `sfox-bot audit verify` at scale",
        h.table(audit_bench.APPEND_HEADERS, [r.cells() for r in appends])
        + "\n\n"
        + h.table(audit_bench.VERIFY_HEADERS, [r.cells() for r in verifies]),
        [
            "Append: `Store.record_event` (one write transaction, one chained event) in a loop per "
            "writer process; `before (0001)`: the same transaction inserting the same row into the "
            "schema before the chain. Two writers: two processes on one database, appending "
            "back to back (far more contention than the bot ever sees). Best of the repeats.",
            "Verify and export: SQLite, a valid chain bulk-inserted after the real migrations; wall "
            "time and VmHWM of the `sfox-bot audit verify` / `audit export` process (Python start-up "
            "included; the export written to a file).",
        ],
    )
    out = []
    for backend in {r.backend for r in appends}:
        for writers in (1, 2):
            pair = {r.schema: r for r in appends if r.backend == backend and r.writers == writers}
            if len(pair) == 2:
                added = pair["chained"].ms_per_append - pair["before (0001)"].ms_per_append
                out.append(
                    verdict(
                        f"{backend}, {writers} writer(s): the chain adds {added:.3f} ms per state change "
                        f"({pair['chained'].rate:,.0f} events/s)",
                        added < APPEND_TARGET_MS,
                        f"< {APPEND_TARGET_MS:g} ms",
                    )
                )
    small, large = verifies[0], verifies[-1]
    out.append(
        verdict(
            f"`audit verify` on {large.events:,} events: {large.wall:.1f} s",
            large.wall < VERIFY_TARGET_S,
            f"< {VERIFY_TARGET_S:g} s",
        )
    )
    for label, a, b in (
        ("verify", small.peak_rss_kib, large.peak_rss_kib),
        ("export", small.export_peak_kib, large.export_peak_kib),
    ):
        out.append(
            verdict(
                f"`audit {label}` peak RSS {h.mib(a)} → {h.mib(b)} MiB from {small.events:,} to {large.events:,} events",
                b / a < 1.2,
                "memory flat (< +20 %)",
            )
        )
    return sorted(out)


def ack_verdicts(result: ack.AckResult) -> list[str]:
    """Issue 26's target at every level of clients: p99 at most 1.5 times the bare app's; and,
    at the most clients, under 100 ms."""
    most = max(r.clients for r in result.rows)
    out = []
    for r in result.rows:
        p99 = h.percentile(r.ours, 99)
        ratio = p99 / h.percentile(r.bare, 99)
        label = f"{r.database}, {r.kind}, sFOX {r.delay * 1000:.0f} ms, {r.clients} clients"
        if r.clients == most:
            out.append(verdict(f"{label}: p99 ack {p99 * 1000:.1f} ms", p99 < ACK_TARGET_S, "< 100 ms"))
        out.append(
            verdict(f"{label}: p99 ratio ours/bare {ratio:.2f}", ratio <= RATIO_TARGET, f"<= {RATIO_TARGET}")
        )
    return out


def history_verdicts(rows: list[history.HistoryRow], sizes: tuple[int, ...]) -> list[str]:
    small, large = sizes[0], sizes[-1]
    out = []
    for label, _ in history.CASES:
        a = next(r for r in rows if r.rows == small and r.case == label)
        b = next(r for r in rows if r.rows == large and r.case == label)
        growth = b.peak_rss_kib / a.peak_rss_kib
        out.append(
            verdict(
                f"`{label}`: peak RSS {h.mib(a.peak_rss_kib)} → {h.mib(b.peak_rss_kib)} MiB, wall "
                f"{a.wall * 1000:.0f} → {b.wall * 1000:.0f} ms from {small:,} to {large:,} rows",
                growth < 1.2,
                "memory flat (< +20 %)",
            )
        )
    return out


if __name__ == "__main__":
    raise SystemExit(main())
