#!/usr/bin/env python3
"""Benchmarks of the production path on moto: Kinesis in, Glue and S3 out.

1. Throughput: N generated events put into a 4-shard stream, drained by
   `floe run --stream --drain` into a Glue table on S3; against the same
   events from a file into the same kind of table, alternating. Medians of
   wall seconds and events/s, and the stream/file ratio of the same run.
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
      [--events 200000] [--runs 3] [--rate 1000] [--seconds 150]
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

STREAM = "events"
BUCKET = "lake"


def floe(binary: str, server: MotoServer, warehouse: str, *args: str) -> tuple[float, float, list[dict], str]:
    """One `floe run`: wall seconds, its own CPU seconds, its JSON log lines
    and its stdout."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOE_")}
    env.update(server.env(), FLOE_LOG="floe=info", FLOE_LOG_FORMAT="json", FLOE_PROGRESS="never")
    r = timed([binary, "run", "--catalog", "glue", "--warehouse", warehouse, "--s3-path-style", *args], env)
    logs = []
    for line in r["stderr"].splitlines():
        try:
            logs.append(json.loads(line))
        except ValueError:
            pass
    return r["wall"], r["cpu"], logs, r["stdout"]


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


def throughput(binary: str, events: int, runs: int, work: Path) -> None:
    path = work / "events.jsonl"
    subprocess.run([binary, "generate", "--events", str(events), "--seed", "7", *recent(), "--out", str(path)],
                   check=True, capture_output=True)
    lines = lines_of(path)
    stream_walls, file_walls, stream_cpus, file_cpus, commits = [], [], [], [], []
    for run in range(runs):
        with MotoServer() as server:
            server.client("s3").create_bucket(Bucket=BUCKET)
            server.create_stream(STREAM, shards=4)
            put(server, lines)
            wall, cpu, logs, _ = floe(binary, server, f"s3://{BUCKET}/stream", "--stream", STREAM, "--drain",
                                      "--flush-interval", "5s")
            stream_walls.append(wall)
            stream_cpus.append(cpu)
            commits += commit_ms(logs)
            wall, cpu, logs, _ = floe(binary, server, f"s3://{BUCKET}/file", "--input", str(path))
            file_walls.append(wall)
            file_cpus.append(cpu)
        print(f"  run {run + 1}: stream {stream_walls[-1]:.2f} s, file {file_walls[-1]:.2f} s", flush=True)
    s, f = statistics.median(stream_walls), statistics.median(file_walls)
    per_m = 1e6 / len(lines)
    sc, fc = statistics.median(stream_cpus) * per_m, statistics.median(file_cpus) * per_m
    print(f"throughput, {len(lines)} events, medians of {runs} (CPU-s: Floe's own, per 1M events):")
    print(f"  Kinesis -> Glue/S3  {s:7.2f} s  {len(lines) / s:>9,.0f} events/s  {sc:6.2f} CPU-s/1M")
    print(f"  file    -> Glue/S3  {f:7.2f} s  {len(lines) / f:>9,.0f} events/s  {fc:6.2f} CPU-s/1M")
    print(f"  stream/file ratios: time {s / f:.2f}, CPU {sc / fc:.2f}")
    print(f"commit latency against moto Glue+S3 ({len(commits)} commits): "
          f"p50 {pct(commits, 50):.0f} ms, p99 {pct(commits, 99):.0f} ms")


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
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--rate", type=int, default=1_000)
    parser.add_argument("--seconds", type=float, default=150)
    parser.add_argument("--intervals", default="60s,10s,2s,1s")
    parser.add_argument("--skip-throughput", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if not args.skip_throughput:
            throughput(args.bin, args.events, args.runs, work)
        for interval in filter(None, args.intervals.split(",")):
            freshness(args.bin, args.rate, args.seconds, interval, work)


if __name__ == "__main__":
    main()
