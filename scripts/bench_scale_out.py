#!/usr/bin/env python3
"""Scale-out on moto: 1, 2, 3... `floe run` tasks sharing one stream.

For each task count (alternating the order between runs): a fresh moto
(Kinesis + DynamoDB), a --shards stream holding --events generated events
(keyed by event_uuid, as producers should), a lease table, and a fresh
local warehouse; the tasks start together, and the clock stops when the
snapshots' `floe.records-read` counters add up to every record put. Then
every task is stopped with SIGTERM (it hands its leases over and exits).

Per task count, medians over --runs: wall seconds to commit everything,
events/s in all and per task, CPU seconds per 1M events (user + system of
all tasks, from their own rusage), commits, and the commit conflict rate
(conflicts reported by the tasks' run summaries / commits).

moto serves every request of every task in one Python thread, so the
figures bound Floe against moto, not against AWS; the per-task CPU and
the conflict rate are Floe's own. Compare figures of one run only.

Usage (from the repository root, with the test venv):
  .venv/bin/python scripts/bench_scale_out.py [--bin target/release/floe]
      [--events 200000] [--shards 8] [--tasks 1,2,3] [--runs 3] [--flush-interval 2s]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from support.aws import MotoServer  # noqa: E402
from support.streams import lines_of, put  # noqa: E402

STREAM = "events"
LEASES = "floe-leases"


def committed(warehouse: Path) -> tuple[int, int]:
    """(records committed, events snapshots), from the events table's metadata."""
    db = warehouse / "catalog.db"
    if not db.exists():
        return 0, 0
    import sqlite3

    with sqlite3.connect(db) as conn:
        row = conn.execute(
            "SELECT metadata_location FROM iceberg_tables WHERE table_namespace = 'analytics' AND table_name = 'events'"
        ).fetchone()
    if not row:
        return 0, 0
    with open(row[0].removeprefix("file://")) as f:
        snapshots = json.load(f).get("snapshots", [])
    return sum(int(s["summary"].get("floe.records-read", 0)) for s in snapshots), len(snapshots)


def one(binary: str, lines: list[bytes], shards: int, tasks: int, flush_interval: str) -> dict:
    warehouse = Path(tempfile.mkdtemp(prefix="floe-bench-scale-"))
    try:
        with MotoServer() as server:
            server.create_stream(STREAM, shards=shards)
            put(server, lines)
            server.create_lease_table(LEASES)
            env = {k: v for k, v in os.environ.items() if not k.startswith("FLOE_")}
            env.update(server.env(), FLOE_LOG="floe=warn", FLOE_PROGRESS="never")
            procs = []
            started = time.perf_counter()
            for i in range(tasks):
                procs.append(subprocess.Popen(
                    [binary, "run", "--stream", STREAM, "--warehouse", str(warehouse),
                     "--lease-table", LEASES, "--worker-id", f"task-{i}", "--lease-duration", "5s",
                     "--flush-interval", flush_interval],
                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env,
                ))
            while committed(warehouse)[0] < len(lines):
                if any(p.poll() is not None for p in procs):
                    sys.exit("a floe task exited before everything was committed")
                time.sleep(0.2)
            wall = time.perf_counter() - started
            cpu, conflicts = 0.0, 0
            for p in procs:
                p.send_signal(signal.SIGTERM)
            for p in procs:
                out = p.stdout.read().decode()
                _, status, usage = os.wait4(p.pid, 0)
                if os.waitstatus_to_exitcode(status) != 0:
                    sys.exit(f"a floe task exited {os.waitstatus_to_exitcode(status)}")
                cpu += usage.ru_utime + usage.ru_stime
                m = re.search(r"commit conflicts\s+([\d,]+)", out)
                conflicts += int(m.group(1).replace(",", "")) if m else 0
            records, commits = committed(warehouse)
            assert records == len(lines), (records, len(lines))
            return {"wall": wall, "cpu": cpu, "commits": commits, "conflicts": conflicts}
    finally:
        shutil.rmtree(warehouse, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bin", default=str(ROOT / "target" / "release" / "floe"))
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--tasks", default="1,2,3")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--flush-interval", default="2s")
    args = parser.parse_args()
    counts = [int(t) for t in args.tasks.split(",")]

    work = Path(tempfile.mkdtemp(prefix="floe-bench-scale-in-"))
    path = work / "events.jsonl"
    start = str(int(time.time()) - 2 * 86_400)
    subprocess.run([args.bin, "generate", "--events", str(args.events), "--seed", "7", "--start", start,
                    "--days", "2", "--bad-rate", "0", "--out", str(path)], check=True, capture_output=True)
    lines = lines_of(path)
    results: dict[int, list[dict]] = {k: [] for k in counts}
    for run in range(args.runs):
        order = counts if run % 2 == 0 else list(reversed(counts))
        for k in order:
            r = one(args.bin, lines, args.shards, k, args.flush_interval)
            results[k].append(r)
            print(f"  run {run + 1}, {k} task(s): {r['wall']:.1f} s, {r['cpu']:.1f} CPU-s, "
                  f"{r['commits']} commits, {r['conflicts']} conflicts", flush=True)
    shutil.rmtree(work, ignore_errors=True)

    n = len(lines)
    print(f"\n{n:,} events on a {args.shards}-shard stream (moto), flush interval {args.flush_interval}, "
          f"medians of {args.runs}")
    print(f"{'tasks':>5} {'wall s':>8} {'events/s':>10} {'per task':>10} {'CPU-s/1M':>9} {'commits':>8} {'conflicts':>10}")
    for k in counts:
        rs = results[k]
        wall = statistics.median(r["wall"] for r in rs)
        cpu = statistics.median(r["cpu"] for r in rs)
        commits = statistics.median(r["commits"] for r in rs)
        rate = statistics.median(r["conflicts"] / max(r["commits"], 1) for r in rs)
        print(f"{k:>5} {wall:>8.1f} {n / wall:>10,.0f} {n / wall / k:>10,.0f} {cpu / n * 1e6:>9.2f} "
              f"{commits:>8.0f} {rate:>9.0%}")


if __name__ == "__main__":
    main()
