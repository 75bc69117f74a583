#!/usr/bin/env python3
"""Small files at 1k events/hour, before and after `floe maintain`.

Feeds `floe run --input -` one minute's worth of events (1000/60, about 17)
per flush, as a stream at 1k events/hour with a 60 s flush interval would,
for --hours hours of event time (default 24: 1,440 flushes), then counts the
live files per partition-day (`floe inspect`), runs `floe maintain
--compact`, counts again, and runs `--expire --remove-orphans` with zero
ages to see what the compaction left to delete. Reports wall and CPU
seconds of each maintenance run (the child's own rusage).

The stream is simulated faster than real time: each minute's events are
written, then the driver waits --pause seconds (longer than the 100 ms flush
interval Floe is given) so that every minute is its own commit.

Usage: scripts/bench_maintenance.py [--bin target/release/floe] [--hours 24] [--pause 0.2]
Only the standard library is used.
"""

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import timed

ROOT = Path(__file__).resolve().parent.parent
PER_HOUR = 1000


def floe(args: list[str]) -> tuple[str, float, float]:
    """Runs a floe command (warnings only in its log): stdout, wall seconds,
    CPU seconds of the child."""
    r = timed(args, dict(os.environ, FLOE_LOG="warn"))
    return r["stdout"], r["wall"], r["cpu"]


def files_per_partition(binary: str, warehouse: Path) -> dict[str, tuple[int, int]]:
    """(data files, delete files) per partition, from `floe inspect`."""
    out, _, _ = floe([binary, "inspect", "--warehouse", str(warehouse)])
    section = out.split("Files per partition:", 1)[1].split("\n\n", 1)[0]
    rows = {}
    for line in section.splitlines()[2:]:
        m = re.match(r"\s+(\S+)\s+(\d+)\s+[\d,]+\s+[\d,]+\s+(\d+)\s*$", line)
        if m:
            rows[m.group(1)] = (int(m.group(2)), int(m.group(3)))
    return rows


def describe(label: str, rows: dict[str, tuple[int, int]]) -> None:
    data = [d for d, _ in rows.values()]
    deletes = sum(x for _, x in rows.values())
    print(
        f"{label:<18} {len(rows):>10} {sum(data):>11} {statistics.median(data):>8.0f} "
        f"{max(data):>8} {deletes:>12}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bin", default=str(ROOT / "target" / "release" / "floe"))
    parser.add_argument("--hours", type=int, default=24)
    parser.add_argument("--pause", type=float, default=0.2)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="floe-bench-maint-"))
    events = args.hours * PER_HOUR
    start = int(time.time()) - 2 * 86_400
    source = work / "events.jsonl"
    subprocess.run(
        [args.bin, "generate", "--events", str(events), "--seed", "7", "--days", "1", "--start", str(start), "--out", str(source)],
        check=True,
        capture_output=True,
    )
    lines = source.read_bytes().splitlines(keepends=True)
    warehouse = work / "warehouse"
    proc = subprocess.Popen(
        [args.bin, "run", "--input", "-", "--warehouse", str(warehouse), "--flush-interval", "100ms", "--progress", "never"],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=dict(os.environ, FLOE_LOG="warn"),
    )
    minutes = args.hours * 60
    print(f"streaming {len(lines):,} events as {minutes:,} one-minute flushes into {warehouse} ...", flush=True)
    for minute in range(minutes):
        batch = lines[minute * len(lines) // minutes : (minute + 1) * len(lines) // minutes]
        proc.stdin.write(b"".join(batch))
        proc.stdin.flush()
        time.sleep(args.pause)
    proc.stdin.close()
    if proc.wait() != 0:
        sys.exit("floe run failed")

    before = files_per_partition(args.bin, warehouse)
    maintain = [args.bin, "maintain", "--warehouse", str(warehouse)]
    compact_out, compact_wall, compact_cpu = floe([*maintain, "--compact"])
    after = files_per_partition(args.bin, warehouse)
    again_out, again_wall, again_cpu = floe([*maintain, "--compact"])
    clean_out, clean_wall, clean_cpu = floe(
        [*maintain, "--expire", "--remove-orphans", "--expire-older-than", "0s", "--keep-snapshots", "1", "--orphan-older-than", "0s"]
    )

    print(f"\n{events:,} events over {args.hours} h at {PER_HOUR:,}/h, one commit per minute")
    print(f"{'':<18} {'partitions':>10} {'data files':>11} {'median':>8} {'max':>8} {'delete files':>12}")
    describe("before compaction", before)
    describe("after compaction", after)
    print()
    for label, out, wall, cpu in (
        ("compact", compact_out, compact_wall, compact_cpu),
        ("compact again", again_out, again_wall, again_cpu),
        ("expire + orphans", clean_out, clean_wall, clean_cpu),
    ):
        said = "; ".join(l.split(": ", 1)[1] for l in out.splitlines() if l.startswith("analytics.events:"))
        print(f"{label:<18} wall {wall:6.2f} s  cpu {cpu:6.2f} s  {said}")
    print(f"\n(warehouse left in {work})")


if __name__ == "__main__":
    main()
