#!/usr/bin/env python3
"""Benchmarks of the production path on moto: Kinesis in, Glue and S3 out.

1. Throughput, Floe's own cost (--source replay): 1M generated events
   served as a 4-shard stream by a replay endpoint (scripts/kinesis_replay.py:
   pre-built GetRecords answers over HTTP to the real SDK client), drained
   by `floe run --stream --drain` into a local warehouse, against the same
   events from a file into a local warehouse, alternating. Medians of wall
   seconds, CPU-s per 1M events (kernel share apart), minor page faults and
   peak RSS, and the stream/file CPU ratio of the same run, under each
   allocator variant of --alloc (e.g. with transparent huge pages).
   Throughput on moto (--source moto): the same into a Glue table on S3
   against a file into the same kind of table; moto's own CPU is not
   counted, but its slow answers shape Floe's polling.
2. Commit latency: `commit_ms` of every events commit (Floe's log) in the
   stream runs: p50 and p99 against moto's Glue and S3.
3. Freshness: a producer puts --rate events/s for --seconds into the stream
   while `floe run` commits every --interval (default 60 s, the default flush
   interval; then the shorter ones given by --intervals). Freshness of a row
   is the commit time of the snapshot that added its file minus the time the
   producer put it; p50, p99 and max per interval. An interval is stable
   when the last third of its rows is no staler than the first third.

moto is in-process and single-threaded: its figures bound what Floe does
against it, not what it does against AWS. Compare figures of one run only.

Usage (from the repository root, with the test venv):
  .venv/bin/python scripts/bench_kinesis.py [--bin target/release/floe]
      [--source replay|moto|both] [--replay-events 1000000] [--events 200000]
      [--alloc default,thp] [--runs 3] [--rate 1000] [--seconds 150]
      [--intervals 60s,10s,2s,1s] [--skip-throughput]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from support.aws import MotoServer  # noqa: E402
from support.readers import glue_catalog  # noqa: E402
from support.streams import lines_of, put  # noqa: E402

from bench import timed  # noqa: E402
from kinesis_replay import Replay  # noqa: E402

STREAM = "events"
BUCKET = "lake"


def floe(binary: str, server: MotoServer, warehouse: str, *args: str, extra_env: dict | None = None) -> dict:
    """One `floe run` into Glue/S3 on moto: `timed`'s figures plus its JSON
    log lines as "logs"."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLOE_", "MALLOC_"))}
    env.update(server.env(), FLOE_LOG="floe=info", FLOE_LOG_FORMAT="json", FLOE_PROGRESS="never")
    env.update(extra_env or {})
    r = timed([binary, "run", "--catalog", "glue", "--warehouse", warehouse, "--s3-path-style", *args], env)
    r["logs"] = []
    for line in r["stderr"].splitlines():
        try:
            r["logs"].append(json.loads(line))
        except ValueError:
            pass
    return r


def commit_ms(logs: list[dict]) -> list[float]:
    return [
        float(l["fields"]["commit_ms"])
        for l in logs
        if l.get("fields", {}).get("message") == "committed events" and "commit_ms" in l.get("fields", {})
    ]


def recent() -> list[str]:
    """Events of the last two days, as in a live stream: duplicates are then
    found in the key index, not probed in the table (the late-event path)."""
    return ["--start", str(int(time.time()) - 2 * 86_400), "--days", "2"]


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def throughput(binary: str, events: int, runs: int, work: Path, variants: dict[str, dict]) -> None:
    """Kinesis on moto into Glue/S3 against the same events from a file into
    the same kind of table, alternating, under each allocator variant."""
    path = work / "events.jsonl"
    subprocess.run([binary, "generate", "--events", str(events), "--seed", "7", *recent(), "--out", str(path)],
                   check=True, capture_output=True)
    lines = lines_of(path)
    results: dict[tuple[str, str], list[dict]] = {}
    commits: list[float] = []
    for run in range(runs):
        for variant, alloc_env in variants.items():
            with MotoServer() as server:
                server.client("s3").create_bucket(Bucket=BUCKET)
                server.create_stream(STREAM, shards=4)
                put(server, lines)
                r = floe(binary, server, f"s3://{BUCKET}/stream", "--stream", STREAM, "--drain",
                         "--flush-interval", "5s", extra_env=alloc_env)
                results.setdefault(("Kinesis", variant), []).append(r)
                commits += commit_ms(r["logs"])
                r = floe(binary, server, f"s3://{BUCKET}/file", "--input", str(path), extra_env=alloc_env)
                results.setdefault(("file", variant), []).append(r)
        print(f"  run {run + 1} of {runs} done", flush=True)
    per_m = 1e6 / len(lines)
    print(f"moto: Kinesis -> Glue/S3 against file -> Glue/S3, {len(lines)} events, medians of {runs} "
          f"(CPU-s: Floe's own, per 1M events):")
    for variant in variants:
        for name in ("Kinesis", "file"):
            rs = results[(name, variant)]
            print(f"  {name:7} {variant:22} {_med(rs, 'wall'):6.2f} s  {len(lines) / _med(rs, 'wall'):>9,.0f} events/s  "
                  f"{_med(rs, 'cpu') * per_m:5.2f} CPU-s/1M (sys {_med(rs, 'sys') * per_m:5.2f})  "
                  f"{_med(rs, 'minflt') * per_m:>9,.0f} minor faults/1M")
        s, f = _med(results[("Kinesis", variant)], "cpu"), _med(results[("file", variant)], "cpu")
        print(f"  stream/file CPU ratio, {variant}: {s / f:.2f}")
    print(f"commit latency against moto Glue+S3 ({len(commits)} commits): "
          f"p50 {pct(commits, 50):.0f} ms, p99 {pct(commits, 99):.0f} ms")


def _med(rs: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in rs)


# Allocator settings a run can be measured under (`--alloc`), as environment.
# "default" is as shipped: the binary turns transparent huge pages off
# unless FLOE_ALLOW_THP is set, which "thp" does, and caps glibc's malloc
# arenas at one per core unless MALLOC_ARENA_MAX is set: "arenas-16" is
# glibc's own default on 2 cores.
ALLOC_VARIANTS = {
    "default": {},
    "thp": {"FLOE_ALLOW_THP": "1"},
    "arenas-16": {"MALLOC_ARENA_MAX": "16"},
}


def replay_throughput(binary: str, events: int, runs: int, work: Path, alloc: dict[str, dict]) -> None:
    """Floe's own CPU per event from a stream against the same events from a
    file, with only the source differing: both into a local warehouse, the
    stream served by the replay endpoint (pre-built GetRecords pages), so
    neither moto's nor the catalog's cost is in the figure. Each runs under
    each allocator variant."""
    generated = work / f"generated-{events}.jsonl"
    subprocess.run([binary, "generate", "--events", str(events), "--seed", "7", *recent(), "--out", str(generated)],
                   check=True, capture_output=True)
    # The file holds the very records the stream carries: no blank line, none
    # over Kinesis's 1 MiB. Streamed, so this process stays small.
    path, count = work / f"replay-{events}.jsonl", 0
    with generated.open("rb") as src, path.open("wb") as dst:
        for line in src:
            if line.strip() and len(line.rstrip(b"\n")) <= 1_000_000:
                dst.write(line if line.endswith(b"\n") else line + b"\n")
                count += 1
    base = {k: v for k, v in os.environ.items() if not k.startswith(("FLOE_", "AWS_", "MALLOC_"))}
    base.update(FLOE_LOG="warn", FLOE_PROGRESS="never")
    sources = {
        "stream": ["--stream", STREAM, "--drain"],
        "file": ["--input", str(path)],
    }
    results: dict[tuple[str, str], list[dict]] = {}
    with Replay(path) as replay:
        for run in range(runs):
            for variant, alloc_env in alloc.items():
                for name, flags in sources.items():
                    warehouse = work / f"w-{run}-{name}"
                    env = {**base, **replay.env(), **alloc_env}
                    r = timed([binary, "run", "--warehouse", str(warehouse), *flags], env)
                    records = int(r["stdout"].split("records read", 1)[1].split()[0].replace(",", ""))
                    if records != count:
                        sys.exit(f"{name} read {records} records, not {count}")
                    results.setdefault((name, variant), []).append(r)
                    subprocess.run(["rm", "-rf", str(warehouse)], check=True)
            print(f"  run {run + 1} of {runs} done", flush=True)
    per_m = 1e6 / count
    print(f"stream (replayed GetRecords) against file, {count} events, local warehouse, medians of {runs}:")
    for variant in alloc:
        for name in sources:
            rs = results[(name, variant)]
            print(f"  {name:6} {variant:22} {_med(rs, 'wall'):6.2f} s  {_med(rs, 'cpu') * per_m:5.2f} CPU-s/1M  "
                  f"(sys {_med(rs, 'sys') * per_m:5.2f})  {_med(rs, 'minflt') * per_m:>9,.0f} minor faults/1M  "
                  f"{_med(rs, 'rss_mib'):5.0f} MiB peak")
        s = _med(results[("stream", variant)], "cpu")
        f = _med(results[("file", variant)], "cpu")
        print(f"  stream/file CPU ratio, {variant}: {s / f:.2f} (target <= 1.30)")


def freshness(binary: str, rate: int, seconds: float, interval: str, work: Path) -> None:
    path = work / f"fresh-{interval}.jsonl"
    count = int(rate * seconds)
    subprocess.run([binary, "generate", "--events", str(count), "--seed", "9", *recent(), "--dup-rate", "0",
                    "--changed-dup-rate", "0", "--bad-rate", "0", "--out", str(path)], check=True,
                   capture_output=True)
    lines = lines_of(path)
    put_at: dict[str, float] = {}
    with MotoServer() as server:
        server.client("s3").create_bucket(Bucket=BUCKET)
        server.create_stream(STREAM, shards=4)
        env = {k: v for k, v in os.environ.items() if not k.startswith("FLOE_")}
        env.update(server.env(), FLOE_LOG="warn", FLOE_PROGRESS="never")
        proc = subprocess.Popen(
            [binary, "run", "--catalog", "glue", "--warehouse", f"s3://{BUCKET}/w", "--s3-path-style",
             "--stream", STREAM, "--flush-interval", interval],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
        )
        # The producer: batches every 100 ms, each timed at its put.
        batch = max(1, rate // 10)
        started = time.time()
        for i in range(0, len(lines), batch):
            due = started + i / rate
            time.sleep(max(0.0, due - time.time()))
            chunk = lines[i : i + batch]
            put(server, chunk)
            now = time.time()
            for line in chunk:
                put_at[json.loads(line)["event_uuid"]] = now
        # Let the last interval commit, then stop.
        deadline = time.time() + 120
        table = None
        while time.time() < deadline:
            try:
                table = glue_catalog(server).load_table("analytics.events")
                n = sum(int(s.summary.additional_properties.get("added-records", 0)) for s in table.snapshots())
                if n >= len(put_at):
                    break
            except Exception:
                pass
            time.sleep(1)
        proc.terminate()
        proc.communicate(timeout=120)
        table = glue_catalog(server).load_table("analytics.events")
        committed_at = {s.snapshot_id: s.timestamp_ms / 1000 for s in table.snapshots()}
        entries = table.inspect.entries().to_pylist()
        lags = []
        import pyarrow.parquet as pq

        for e in entries:
            if e["status"] != 1 or e["data_file"]["content"] != 0:
                continue
            path_ = e["data_file"]["file_path"]
            with table.io.new_input(path_).open() as f:
                uuids = pq.read_table(io.BytesIO(f.read()), columns=["event_uuid"]).column(0).to_pylist()
            for u in uuids:
                if u in put_at:
                    lags.append((put_at[u], committed_at[e["snapshot_id"]] - put_at[u]))
    lags.sort()
    values = [l for _, l in lags]
    third = max(1, len(lags) // 3)
    first = statistics.median(l for _, l in lags[:third])
    last = statistics.median(l for _, l in lags[-third:])
    stable = last <= first * 1.5 + 1
    print(f"freshness at {rate} events/s for {seconds:.0f} s, flush interval {interval}: "
          f"{len(values)} rows, p50 {pct(values, 50):.1f} s, p99 {pct(values, 99):.1f} s, max {max(values):.1f} s; "
          f"first third {first:.1f} s, last third {last:.1f} s: {'stable' if stable else 'FALLING BEHIND'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bin", default=str(ROOT / "target" / "release" / "floe"))
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--replay-events", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--rate", type=int, default=1_000)
    parser.add_argument("--seconds", type=float, default=150)
    parser.add_argument("--intervals", default="60s,10s,2s,1s")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--alloc", default="default,thp",
                        help=f"allocator variants to measure throughput under, of {','.join(ALLOC_VARIANTS)}")
    parser.add_argument("--source", choices=["replay", "moto", "both"], default="both",
                        help="throughput against the replay endpoint (Floe's own cost per event), "
                             "moto into Glue/S3 (commit latency), or both")
    args = parser.parse_args()
    unknown = [v for v in args.alloc.split(",") if v not in ALLOC_VARIANTS]
    if unknown:
        parser.error(f"--alloc: unknown variant {unknown[0]!r}; known: {', '.join(ALLOC_VARIANTS)}")
    variants = {v: ALLOC_VARIANTS[v] for v in args.alloc.split(",")}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if not args.skip_throughput:
            if args.source in ("replay", "both"):
                replay_throughput(args.bin, args.replay_events, args.runs, work, variants)
            if args.source in ("moto", "both"):
                throughput(args.bin, args.events, args.runs, work, variants)
        for interval in filter(None, args.intervals.split(",")):
            freshness(args.bin, args.rate, args.seconds, interval, work)


if __name__ == "__main__":
    main()
