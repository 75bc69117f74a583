#!/usr/bin/env python3
"""A soak: one long-running `floe run --input -` fed a steady trickle with a
short flush interval (thousands of commits in minutes: days of one-minute
commits), with `floe maintain` running beside it from each checkpoint on
(--maintain: the writer keeps committing meanwhile, as a scheduled
maintenance task races a live stream) and once at the end.

At every --every commits it prints: the manifests of the current snapshot,
the bytes of the current metadata.json, the files in the table's metadata
folder, the commit latency p50/p99 of that stretch (from Floe's JSON log),
the time PyIceberg takes to plan a one-partition query, DuckDB's time for
the same count, and Floe's peak RSS so far. Flat columns mean the table
ages well; run without --maintain to see what maintenance keeps flat.

Usage: .venv/bin/python scripts/soak.py [--bin target/release/floe]
       [--commits 3000] [--every 500] [--maintain] [--max-minutes 20]
       [--index-memory 64MiB]
Needs the test virtualenv (`just test` once): PyIceberg and DuckDB.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from support import readers  # noqa: E402

EVENTS = "analytics.events"
TYPES = 20
PER_WRITE = 20


def floe_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOE_") and k != "RUST_BACKTRACE"}
    env.update(FLOE_LOG="info", FLOE_PROGRESS="never")
    return env


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))] if ordered else 0.0


def look(wh: readers.Warehouse, pid: int) -> dict:
    """The table's state now, and Floe's peak RSS."""
    with sqlite3.connect(wh.catalog_db) as con:
        (location,) = con.execute(
            "SELECT metadata_location FROM iceberg_tables WHERE table_namespace = 'analytics' AND table_name = 'events'"
        ).fetchone()
    path = Path(readers.local_path(location))
    table = readers.pyiceberg_catalog(wh).load_table(EVENTS)
    started = time.perf_counter()
    table.scan(row_filter="event_type == 'type3'").plan_files()
    plan = time.perf_counter() - started
    started = time.perf_counter()
    readers.duckdb_query(wh, EVENTS, "SELECT count(*) AS n FROM t WHERE event_type = 'type3'")
    duck = time.perf_counter() - started
    rss = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            rss = int(line.split()[1]) // 1024
    return {
        "manifests": len(table.inspect.manifests()),
        "metadata_bytes": path.stat().st_size,
        "metadata_files": sum(1 for _ in path.parent.iterdir()),
        "plan_s": plan,
        "duckdb_s": duck,
        "rss_mib": rss,
    }


def maintain(binary: str, wh: readers.Warehouse) -> str:
    started = time.perf_counter()
    r = subprocess.run(
        [binary, "maintain", "--warehouse", str(wh.root), "--expire-older-than", "10s", "--keep-snapshots", "10",
         "--orphan-older-than", "1h"],
        env=floe_env(), capture_output=True, text=True,
    )
    said = [line.strip() for line in r.stdout.splitlines() if line.startswith("analytics.events:")]
    if r.returncode != 0:
        said.append(f"FAILED (exit {r.returncode}): {r.stderr.strip().splitlines()[-1:]}")
    return f"maintain {time.perf_counter() - started:.1f} s: " + " | ".join(said)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin", default=str(ROOT / "target/release/floe"))
    ap.add_argument("--commits", type=int, default=3000)
    ap.add_argument("--every", type=int, default=500)
    ap.add_argument("--maintain", action="store_true", help="run floe maintain after every checkpoint")
    ap.add_argument("--max-minutes", type=float, default=20)
    ap.add_argument("--index-memory", default="64MiB", help="floe run's key index budget (every event is new: it fills)")
    args = ap.parse_args()

    wh = readers.Warehouse(Path(tempfile.mkdtemp(prefix="floe-soak-")) / "warehouse")
    wh.root.mkdir(parents=True)
    proc = subprocess.Popen(
        [args.bin, "run", "--input", "-", "--warehouse", str(wh.root), "--flush-interval", "100ms",
         "--index-memory", args.index_memory, "--log-format", "json"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=floe_env(),
    )
    latencies: list[float] = []

    def read_log() -> None:
        for line in proc.stderr:
            try:
                fields = json.loads(line).get("fields", {})
            except ValueError:
                continue
            if fields.get("message") == "committed events":
                latencies.append(float(fields.get("commit_ms", 0)))

    threading.Thread(target=read_log, daemon=True).start()
    header = f"{'commits':>8} {'manifests':>9} {'metadata.json':>13} {'metadata/':>9} {'commit p50/p99 ms':>18} " \
             f"{'plan PyIceberg':>14} {'DuckDB':>7} {'peak RSS':>9}"
    print(header, flush=True)
    rows = []
    now = int(time.time())
    sent = 0
    deadline = time.monotonic() + args.max_minutes * 60
    next_look = args.every
    maintaining: threading.Thread | None = None
    while len(latencies) < args.commits and time.monotonic() < deadline:
        batch = "".join(
            json.dumps({"event_uuid": f"soak-{sent + k}", "event_name": f"type{(sent + k) % TYPES}:x",
                        "created_at": now - ((sent + k) % 3) * 86_400 - 5, "n": sent + k}) + "\n"
            for k in range(PER_WRITE)
        )
        sent += PER_WRITE
        proc.stdin.write(batch.encode())
        proc.stdin.flush()
        time.sleep(0.01)
        if len(latencies) >= next_look:
            stretch = latencies[next_look - args.every:next_look]
            state = look(wh, proc.pid)
            rows.append(state)
            print(f"{next_look:>8} {state['manifests']:>9} {state['metadata_bytes']:>13,} {state['metadata_files']:>9} "
                  f"{percentile(stretch, 0.5):>8.1f}/{percentile(stretch, 0.99):<9.1f} {state['plan_s']:>13.2f}s "
                  f"{state['duckdb_s']:>6.2f}s {state['rss_mib']:>6} MiB", flush=True)
            if args.maintain and (maintaining is None or not maintaining.is_alive()):
                def beside() -> None:
                    print(f"{'':>8} {maintain(args.bin, wh)}", flush=True)
                maintaining = threading.Thread(target=beside, daemon=True)
                maintaining.start()
            next_look += args.every
    if maintaining is not None:
        maintaining.join()
    proc.stdin.close()
    proc.wait(timeout=300)
    print(f"floe run exited {proc.returncode} after {len(latencies)} commits of {sent} events")
    print(maintain(args.bin, wh))
    if len(rows) >= 2:
        first, last = rows[0], rows[-1]
        ratios = ", ".join(
            f"{k} x{last[k] / first[k]:.2f}" for k in ("manifests", "metadata_bytes", "metadata_files", "plan_s") if first[k]
        )
        print(f"last / first checkpoint: {ratios}; commit p50 over all {statistics.median(latencies):.1f} ms")
    sys.exit(proc.returncode)


if __name__ == "__main__":
    main()
