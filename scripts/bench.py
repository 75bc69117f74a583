#!/usr/bin/env python3
"""Benchmark: ingest generated events from a file into a fresh warehouse.

Prints, per run and as medians: wall seconds, events/s, CPU seconds per
1M events (user + system of the floe process), peak RSS, data files and
bytes written. Runs alternate between input sizes so that machine noise
spreads evenly; compare figures of the same run only.

Usage: scripts/bench.py [--bin target/release/floe] [--runs 5] [--sizes 1000000]
Only the standard library is used.
"""

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def generate(binary: str, events: int, path: Path) -> None:
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    subprocess.run(
        [binary, "generate", "--events", str(events), "--seed", "1", "--out", str(tmp)],
        check=True,
        stderr=subprocess.DEVNULL,
    )
    tmp.rename(path)


def run_once(binary: str, input_path: Path) -> dict:
    """One `floe run` into a fresh warehouse; CPU time and peak RSS come from
    the child's own rusage (wait4), so runs do not blur into each other."""
    warehouse = Path(tempfile.mkdtemp(prefix="floe-bench-"))
    try:
        env = dict(os.environ, FLOE_LOG="warn")
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            started = time.perf_counter()
            proc = subprocess.Popen(
                [binary, "run", "--input", str(input_path), "--warehouse", str(warehouse), "--progress", "never"],
                stdout=out,
                stderr=err,
                env=env,
            )
            _, status, usage = os.wait4(proc.pid, 0)
            wall = time.perf_counter() - started
            proc.returncode = os.waitstatus_to_exitcode(status)
            out.seek(0)
            err.seek(0)
            stdout, stderr = out.read().decode(), err.read().decode()
        if proc.returncode != 0:
            sys.exit(f"floe run failed:\n{stderr}")
        records = int(re.search(r"records read\s+([\d,]+)", stdout).group(1).replace(",", ""))
        files = list((warehouse / "analytics" / "events" / "data").rglob("*.parquet"))
        return {
            "wall": wall,
            "cpu": usage.ru_utime + usage.ru_stime,
            # Linux reports ru_maxrss in KiB.
            "rss_mib": usage.ru_maxrss / 1024,
            "records": records,
            "files": len(files),
            "bytes": sum(f.stat().st_size for f in files),
        }
    finally:
        shutil.rmtree(warehouse, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bin", default=str(ROOT / "target" / "release" / "floe"))
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--sizes", default="1000000", help="comma-separated event counts")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    inputs = {n: ROOT / "target" / "bench" / f"events-{n}-seed1.jsonl" for n in sizes}
    for n, path in inputs.items():
        generate(args.bin, n, path)

    results = {n: [] for n in sizes}
    for i in range(args.runs):
        for n in sorted(sizes):
            r = run_once(args.bin, inputs[n])
            results[n].append(r)
            print(
                f"run {i + 1}/{args.runs} {n:>9} events: {r['wall']:.2f} s wall, "
                f"{r['cpu']:.2f} CPU-s, {r['files']} files, {r['bytes'] / 1048576:.1f} MiB",
                flush=True,
            )

    print("\nmedians")
    print(f"{'events':>10} {'input MB':>9} {'wall s':>8} {'events/s':>10} {'CPU-s/1M':>9} {'peak RSS MiB':>13} {'files':>6} {'output MiB':>11}")
    for n in sorted(sizes):
        rs = results[n]
        wall = statistics.median(r["wall"] for r in rs)
        cpu = statistics.median(r["cpu"] for r in rs)
        records = rs[0]["records"]
        print(
            f"{n:>10} {inputs[n].stat().st_size / 1e6:>9.0f} {wall:>8.2f} {records / wall:>10,.0f} "
            f"{cpu / (records / 1e6):>9.2f} {statistics.median(r['rss_mib'] for r in rs):>13.0f} "
            f"{statistics.median(r['files'] for r in rs):>6.0f} {statistics.median(r['bytes'] for r in rs) / 1048576:>11.1f}"
        )


if __name__ == "__main__":
    main()
