#!/usr/bin/env python3
"""Benchmarks of `floe run`, file to committed Iceberg table.

1. Throughput: 1M generated events (2% exact and 1% changed duplicates, 0.1%
   malformed) against the same number of duplicate-free events, alternating,
   each into a fresh warehouse. Per input: wall seconds, events/s, CPU
   seconds per 1M events (user + system of the floe process), peak RSS, data
   files and bytes; then the dedup overhead as a ratio of medians. A third
   variant reads the input with duplicates under a schema chain that promotes
   five payload fields (long, double, string, a struct, a list) to typed
   columns: the cost of typed columns, as a ratio of medians. A fourth runs
   the input with duplicates with the operations port (/metrics, /health/*,
   catalog probe) and EMF lines on: their cost, as a ratio of medians.
2. Key index: ingest --rebuild-events duplicate-free events, then start
   `floe run` on an empty input and read how long rebuilding the index took,
   how many keys it holds and what the process's peak RSS was.

Events are dated within the last days, as in a live stream, so the key
index (not the table probe for late events) handles duplicates. Compare
figures of the same run only: the machine is shared and noisy.

3. Backfill: the same kind of events a month old (older than the dedup
   window), so every flush takes the late-event path: its CPU against the
   recent input's, as a ratio of medians.
4. Scale (--scale-events 10000000): one run over many more events of the
   same days, for peak RSS when the key index holds them all.

Every run also reports its minor page faults (pages the kernel zeroed for
it) and its kernel CPU time.

Usage: scripts/bench.py [--bin target/release/floe] [--runs 5] [--events 1000000]
                        [--rebuild-events 1000000] [--only NAMES]
                        [--scale-events 10000000 [--scale-args '--index-memory 256MiB']]
Only the standard library is used.
"""

import argparse
import json
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
DAY = 86_400


def generate(binary: str, path: Path, events: int, start: int, **rates: float) -> Path:
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    args = [binary, "generate", "--events", str(events), "--seed", "1", "--start", str(start), "--days", "3"]
    for name, value in rates.items():
        args += [f"--{name.replace('_', '-')}", str(value)]
    subprocess.run([*args, "--out", str(tmp)], check=True, stderr=subprocess.DEVNULL)
    tmp.rename(path)
    return path


# Five payload fields of the generated events as typed columns (schema file 0002).
TYPED_COLUMNS = [
    {"id": 12, "name": "quantity", "required": False, "type": "long"},
    {"id": 13, "name": "price", "required": False, "type": "double"},
    {"id": 14, "name": "currency", "required": False, "type": "string"},
    {"id": 15, "name": "device", "required": False, "type": {"type": "struct", "fields": [
        {"id": 16, "name": "os", "required": False, "type": "string"},
        {"id": 17, "name": "os_version", "required": False, "type": "string"},
        {"id": 18, "name": "mobile", "required": False, "type": "boolean"},
        {"id": 19, "name": "screen_width", "required": False, "type": "long"}]}},
    {"id": 20, "name": "tags", "required": False,
     "type": {"type": "list", "element-id": 21, "element-required": False, "element": "string"}},
]


def typed_schema_dir(path: Path) -> Path:
    """The shipped schemas plus a second events file promoting TYPED_COLUMNS."""
    if not path.exists():
        shutil.copytree(ROOT / "schemas", path)
        schema = json.loads((path / "events" / "0001-initial.json").read_text())
        schema["fields"] += TYPED_COLUMNS
        (path / "events" / "0002-bench-typed-columns.json").write_text(json.dumps(schema, indent=2))
    return path


def timed(argv: list[str], env: dict | None = None) -> dict:
    """Runs a child to its end; CPU time and peak RSS come from its own
    rusage (wait4), so neither this process nor other runs blur them. Exits
    with the child's stderr if it fails."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=out, stderr=err, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode(errors="replace")
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{' '.join(argv[:3])} failed:\n{stderr}")
    return {
        "wall": wall,
        "cpu": usage.ru_utime + usage.ru_stime,
        # Kernel time: mostly zeroing pages faulted in anew.
        "sys": usage.ru_stime,
        # Linux reports ru_maxrss in KiB.
        "rss_mib": usage.ru_maxrss / 1024,
        # Minor page faults: pages the kernel handed over (and zeroed) anew.
        "minflt": usage.ru_minflt,
        "stdout": stdout,
        "stderr": stderr,
    }


def floe_run(binary: str, input_path: Path, warehouse: Path, extra: list[str]) -> dict:
    """One `floe run`, timed."""
    env = dict(os.environ, FLOE_LOG="floe=info", FLOE_LOG_FORMAT="json", FLOE_PROGRESS="never")
    r = timed([binary, "run", "--input", str(input_path), "--warehouse", str(warehouse), *extra], env)
    stdout, stderr = r["stdout"], r["stderr"]
    records = int(re.search(r"records read\s+([\d,]+)", stdout).group(1).replace(",", ""))
    files = list((warehouse / "analytics" / "events" / "data").rglob("*.parquet"))
    logs = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    return {
        "wall": r["wall"],
        "cpu": r["cpu"],
        "rss_mib": r["rss_mib"],
        "sys": r["sys"],
        "minflt": r["minflt"],
        "records": records,
        "files": len(files),
        "bytes": sum(f.stat().st_size for f in files),
        "logs": logs,
    }


def fresh_run(binary: str, input_path: Path, extra: list[str]) -> dict:
    warehouse = Path(tempfile.mkdtemp(prefix="floe-bench-"))
    try:
        return floe_run(binary, input_path, warehouse, extra)
    finally:
        shutil.rmtree(warehouse, ignore_errors=True)


def median(rs: list, key: str) -> float:
    return statistics.median(r[key] for r in rs)


def throughput(binary: str, runs: int, events: int, start: int, only: list[str]) -> None:
    bench = ROOT / "target" / "bench"
    day = start // DAY
    with_dups = bench / f"dups-{events}-d{day}.jsonl"
    typed = ["--schema-dir", str(typed_schema_dir(bench / "schemas-typed"))]
    # The same kind of events a month old: older than the dedup window, so
    # every flush takes the late-event path (a backfill).
    late_start = start - 26 * DAY
    # Each input: how to make its file (once a day, reused), and its flags.
    inputs = {
        "with duplicates": (lambda: generate(binary, with_dups, events, start), []),
        "duplicate-free": (
            lambda: generate(
                binary,
                bench / f"unique-{events}-d{day}.jsonl",
                events,
                start,
                dup_rate=0,
                changed_dup_rate=0,
                bad_rate=0,
            ),
            [],
        ),
        "5 typed columns": (lambda: generate(binary, with_dups, events, start), typed),
        "ops port + EMF": (
            lambda: generate(binary, with_dups, events, start),
            ["--metrics-addr", "127.0.0.1:0", "--emf-namespace", "Floe"],
        ),
        "30 days old": (
            lambda: generate(binary, bench / f"dups-{events}-d{late_start // DAY}.jsonl", events, late_start),
            [],
        ),
    }
    # "with duplicates" always runs: the other inputs' ratios are against it.
    inputs = {
        name: (make(), extra)
        for name, (make, extra) in inputs.items()
        if not only or name in only or name == "with duplicates"
    }
    results = {name: [] for name in inputs}
    for i in range(runs):
        for name, (path, extra) in inputs.items():
            r = fresh_run(binary, path, extra)
            results[name].append(r)
            print(
                f"run {i + 1}/{runs} {name:>16}: {r['wall']:.2f} s wall, {r['cpu']:.2f} CPU-s, "
                f"{r['rss_mib']:.0f} MiB peak, {r['files']} files, {r['bytes'] / 1048576:.1f} MiB, "
                f"{r['minflt']:,} minor faults",
                flush=True,
            )
    print(f"\nmedians of {runs} runs, {events:,} events each")
    print(f"{'input':>16} {'MB':>6} {'wall s':>7} {'events/s':>10} {'CPU-s/1M':>9} {'sys':>5} {'peak RSS MiB':>13} "
          f"{'files':>6} {'output MiB':>11} {'faults/1M':>10}")
    for name, rs in results.items():
        wall, records = median(rs, "wall"), rs[0]["records"]
        print(
            f"{name:>16} {inputs[name][0].stat().st_size / 1e6:>6.0f} {wall:>7.2f} {records / wall:>10,.0f} "
            f"{median(rs, 'cpu') / (records / 1e6):>9.2f} {median(rs, 'sys') / (records / 1e6):>5.2f} "
            f"{median(rs, 'rss_mib'):>13.0f} {median(rs, 'files'):>6.0f} {median(rs, 'bytes') / 1048576:>11.1f} "
            f"{median(rs, 'minflt') / (records / 1e6):>10,.0f}"
        )
    dups = results["with duplicates"]
    print(f"peak RSS at {events:,} events, default settings: {median(dups, 'rss_mib'):.0f} MiB (target <= 512 at 1M)")
    if "30 days old" in results:
        late_rs = results["30 days old"]
        print(
            f"backfill: CPU ratio {median(late_rs, 'cpu') / median(dups, 'cpu'):.2f} "
            f"(30 days old / recent, same kind of events; target <= 1.20), "
            f"peak RSS ratio {median(late_rs, 'rss_mib') / median(dups, 'rss_mib'):.2f}"
        )
    if "duplicate-free" not in results:
        return
    clean = results["duplicate-free"]
    print(
        f"dedup overhead: throughput ratio {median(clean, 'wall') / median(dups, 'wall'):.2f} "
        f"(with duplicates / duplicate-free, events/s), CPU ratio {median(dups, 'cpu') / median(clean, 'cpu'):.2f}"
    )
    if "5 typed columns" not in results:
        return
    typed_rs = results["5 typed columns"]
    print(
        f"typed columns: CPU ratio {median(typed_rs, 'cpu') / median(dups, 'cpu'):.2f} "
        f"(5 typed columns / none, same input), peak RSS ratio {median(typed_rs, 'rss_mib') / median(dups, 'rss_mib'):.2f}"
    )
    if "ops port + EMF" not in results:
        return
    ops = results["ops port + EMF"]
    print(
        f"operations port: CPU ratio {median(ops, 'cpu') / median(dups, 'cpu'):.2f} "
        f"(--metrics-addr and --emf-namespace / neither, same input)"
    )


def rebuild(binary: str, events: int, start: int) -> None:
    bench = ROOT / "target" / "bench"
    source = generate(
        binary, bench / f"unique-{events}-d{start // DAY}.jsonl", events, start, dup_rate=0, changed_dup_rate=0, bad_rate=0
    )
    empty = bench / "empty.jsonl"
    empty.write_bytes(b"")
    warehouse = Path(tempfile.mkdtemp(prefix="floe-bench-index-"))
    try:
        floe_run(binary, source, warehouse, [])
        baseline = fresh_run(binary, empty, [])
        r = floe_run(binary, empty, warehouse, [])
    finally:
        shutil.rmtree(warehouse, ignore_errors=True)
    line = next(l["fields"] for l in r["logs"] if "rebuilt the key index" in l["fields"].get("message", ""))
    keys, seconds = line["keys"], line["seconds"]
    grown = (r["rss_mib"] - baseline["rss_mib"]) * 1048576
    print(
        f"\nkey index rebuild: {keys:,} keys from {line['data_files']} files in {seconds:.2f} s "
        f"({keys / max(seconds, 1e-9):,.0f} keys/s); estimated {line['bytes'] / max(keys, 1):.0f} bytes/key, "
        f"peak RSS {r['rss_mib']:.0f} MiB vs {baseline['rss_mib']:.0f} MiB on an empty table "
        f"({grown / max(keys, 1):.0f} bytes/key measured, including read buffers)"
    )


def scale(binary: str, events: int, start: int, extra: list[str]) -> None:
    """One run over `events` events of the same three days: peak RSS when
    the key index holds many more keys than one batch."""
    bench = ROOT / "target" / "bench"
    source = generate(binary, bench / f"dups-{events}-d{start // DAY}.jsonl", events, start)
    r = fresh_run(binary, source, extra)
    index = [l["fields"] for l in r["logs"] if "key index" in l["fields"].get("message", "")]
    print(
        f"\npeak RSS at {r['records']:,} events: {r['rss_mib']:.0f} MiB (target <= 600 at 10M), "
        f"{r['cpu'] / (r['records'] / 1e6):.2f} CPU-s/1M, {r['files']} files, {r['bytes'] / 1048576:.1f} MiB"
        f"{' (' + ' '.join(extra) + ')' if extra else ', default settings'}"
    )
    if index:
        print(f"  key index: {index[-1]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bin", default=str(ROOT / "target" / "release" / "floe"))
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--rebuild-events", type=int, default=1_000_000)
    parser.add_argument("--only", default="",
                        help="comma-separated inputs to run (\"with duplicates\" always runs: the others' ratios "
                             "are against it), e.g. --only '30 days old'")
    parser.add_argument("--scale-events", type=int, default=0,
                        help="also one run over this many events (e.g. 10000000): peak RSS at scale")
    parser.add_argument("--scale-args", default="", help="extra `floe run` flags for the --scale-events run")
    args = parser.parse_args()
    # Whole days, so the generated files are reused within a day.
    start = (int(time.time()) // DAY - 4) * DAY
    if args.runs:
        throughput(args.bin, args.runs, args.events, start, [o for o in args.only.split(",") if o])
    if args.scale_events:
        scale(args.bin, args.scale_events, start, args.scale_args.split())
    if args.rebuild_events:
        rebuild(args.bin, args.rebuild_events, start)


if __name__ == "__main__":
    main()
