"""The table probe's cache: late events (older than the dedup window) looked
up in the table, with what the probe read kept across the flushes of one
run. Whatever changes the table between flushes (a compaction, another
writer's commit) and however small the cache, a duplicate of a committed
late event is still found: the table ends with one live row per key,
checked with PyIceberg and DuckDB.

A small `--index-memory` makes the key index drop the late day after every
commit (recent rows fill it), so late duplicates go to the probe rather
than to the index, which learns rows at each commit.
"""

from __future__ import annotations

import json
import random
import subprocess
import time

import pytest

from support import floe
from support.expected import expected_from_bytes
from support.ops import LogReader
from support.readers import Warehouse, as_model_row, by_key, duckdb_query, pyiceberg_rows
from test_maintenance import COMPACTED, maintain, report
from test_upsert import EVENTS, body, changed, valid_lines, write

DAY = 86_400
QUIET = {"dup_rate": 0, "changed_dup_rate": 0, "bad_rate": 0}
# One late day, half a year back: never in the dedup window.
LATE = {"start": (int(time.time()) // DAY - 200) * DAY, "days": 1}
# One recent day: yesterday.
RECENT_DAY = {"start": (int(time.time()) // DAY - 1) * DAY, "days": 1}


class Writer:
    """A `floe run` reading stdin, fed batch by batch; each batch is
    committed before `feed` returns."""

    def __init__(self, wh: Warehouse, index_memory: str) -> None:
        self.proc = subprocess.Popen(
            [floe.BIN, "run", "--input", "-", "--warehouse", str(wh.root), "--flush-interval", "200ms",
             "--index-memory", index_memory, "--log-format", "json"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=floe.env(FLOE_LOG="floe=info"),
        )
        self.log = LogReader(self.proc.stderr)
        self.fed = 0

    def lines(self, message: str) -> list[dict]:
        out = []
        for line in self.log.drain():
            try:
                parsed = json.loads(line)
            except ValueError:
                continue
            if parsed.get("fields", {}).get("message") == message:
                out.append(parsed["fields"])
        return out

    def feed(self, lines: list[bytes]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"\n".join(lines) + b"\n")
        self.proc.stdin.flush()
        self.fed += len(lines)

        def done() -> bool:
            commits = self.lines("committed events")
            return sum(c["rows"] + c["duplicates"] for c in commits) >= self.fed or floe.exited(self.proc)

        floe.wait_for(done, floe.TIMEOUT, f"{self.fed} records committed")

    def finish(self) -> str:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.close()
        out = self.proc.stdout.read().decode()
        self.proc.wait(timeout=floe.TIMEOUT)
        stderr = "\n".join(self.log.until_closed())
        assert self.proc.returncode == 0, stderr
        return out

    def probes(self) -> list[dict]:
        return self.lines("probed the table for events older than the dedup window")


def latest_bodies(stream: list[bytes]) -> dict:
    """Key to the body of its last version (upsert mode)."""
    latest = {}
    for line in stream:
        row = next(iter(expected_from_bytes(line, "s").rows.values()))
        latest[row["event_uuid"]] = body(row)
    return latest


@pytest.mark.parametrize(
    ("change", "index_memory"),
    [("compaction", "64KiB"), ("another writer", "64KiB"), ("compaction", "2KiB")],
    ids=["compaction", "another-writer", "compaction-cache-evicted"],
)
def test_a_late_duplicate_is_found_whatever_changed_the_table_between_flushes(change, index_memory, tmp_path, tmp_warehouse):
    # 64 KiB: 1,489 keys in the index and 16 KiB of probe cache (the keys of
    # the late files fit). 2 KiB: 46 keys and 512 bytes of cache, so the
    # cache holds nothing from one lookup to the next.
    rng = random.Random(181)
    late = valid_lines(floe.generate(tmp_path / "late.jsonl", 400, seed=181, **QUIET, **LATE))
    recent_per_batch = 1_600 if index_memory == "64KiB" else 100
    recent = valid_lines(floe.generate(tmp_path / "recent.jsonl", 3 * recent_per_batch, seed=182, **QUIET, **RECENT_DAY))
    a, fresh, theirs = late[:200], late[200:240], late[240:280]
    wh = str(tmp_warehouse.root)

    # A is in the table before the run: its day is not indexed at start.
    floe.run("run", "--input", str(write(tmp_path / "a.jsonl", a)), "--warehouse", wh)
    writer = Writer(tmp_warehouse, index_memory)
    stream = list(a)
    try:
        # 1. Warm the cache: exact duplicates of A (their files' filters and
        # keys are read) and new late keys, beside recent rows.
        batch1 = rng.sample(a[:100], 10) + fresh + recent[:recent_per_batch]
        writer.feed(batch1)
        stream += batch1

        # 2. The table changes under the running writer.
        if change == "compaction":
            partitions, files_in, files_out, *_ = report(maintain(tmp_warehouse, "--compact"), EVENTS, COMPACTED)
            assert files_in > files_out > 0, "the late files were rewritten"
        else:
            floe.run("run", "--input", str(write(tmp_path / "theirs.jsonl", theirs)), "--warehouse", wh)
            stream += theirs

        # 3. Recent rows only: this commit learns of the change (and the index
        # drops the late day again).
        batch2 = recent[recent_per_batch : 2 * recent_per_batch]
        writer.feed(batch2)
        stream += batch2

        # 4. Late duplicates: changed and exact ones of A's second half (never
        # looked up before), and of the other writer's rows.
        changed_a, exact_a = a[100:140], a[140:160]
        batch3 = [changed(l) for l in changed_a] + exact_a + recent[2 * recent_per_batch :]
        if change == "another writer":
            batch3 += [changed(l) for l in theirs[:20]] + theirs[20:]
        rng.shuffle(batch3)
        writer.feed(batch3)
        stream += batch3
        out = writer.finish()
    finally:
        if writer.proc.poll() is None:
            writer.proc.kill()
            writer.proc.wait()

    replaced = 40 + (20 if change == "another writer" else 0)
    identical = 10 + 20 + (20 if change == "another writer" else 0)
    assert floe.summary_value(out, "rows deleted") == replaced
    assert floe.summary_value(out, "identical") == identical
    want = latest_bodies(stream)
    got = by_key(pyiceberg_rows(tmp_warehouse, EVENTS))  # raises on a second live row
    assert {k: body(as_model_row(r)) for k, r in got.items()} == want
    assert duckdb_query(tmp_warehouse, EVENTS, "SELECT count(*) AS n, count(DISTINCT event_uuid) AS k FROM t") == [
        {"n": len(want), "k": len(want)}
    ]

    # The late lookups went to the probe, which followed the table's history
    # rather than reading it again (the first probe reads it).
    probes = writer.probes()
    assert probes and probes[0]["reloaded"] is True
    assert all(p["reloaded"] is False for p in probes[1:]), probes
    assert sum(p["snapshots_applied"] for p in probes) >= 3, probes
    assert sum(p["files_read"] for p in probes) > 0, probes


def test_a_bulk_of_late_duplicates_reads_each_late_file_once(tmp_path, tmp_warehouse):
    # Thousands of late duplicates in one flush, and a cache with no room for
    # a file's keys (a 2 KiB index keeps 512 bytes of cache): each late file
    # is read once for all the keys its bounds hold, not asked through its
    # bloom filter key by key (with a hundred keys or more, a filter at 1%
    # false positives says "maybe" anyway, and keys the cache cannot keep
    # were read again for the next key). Every duplicate is still found.
    late = valid_lines(floe.generate(tmp_path / "late.jsonl", 6_000, seed=191, **QUIET, **LATE))
    fresh = valid_lines(floe.generate(tmp_path / "fresh.jsonl", 500, seed=192, **QUIET, **LATE))
    wh = str(tmp_warehouse.root)
    floe.run("run", "--input", str(write(tmp_path / "a.jsonl", late)), "--warehouse", wh)
    files = len(list((tmp_warehouse.root / "analytics" / "events" / "data").rglob("*.parquet")))
    # Every event type of the day has more than a hundred events (one file each).
    assert files >= 10
    batch = [changed(line) for line in late[:3_000]] + late[3_000:] + fresh
    random.Random(191).shuffle(batch)
    r = floe.run(
        "run", "--input", str(write(tmp_path / "b.jsonl", batch)), "--warehouse", wh,
        "--index-memory", "2KiB", "--flush-interval", "1h", "--log-format", "json",
        FLOE_LOG="floe=info",
    )

    assert floe.summary_value(r.stdout, "rows deleted") == 3_000
    assert floe.summary_value(r.stdout, "identical") == 3_000
    want = latest_bodies(late + batch)
    got = by_key(pyiceberg_rows(tmp_warehouse, EVENTS))  # raises on a second live row
    assert {k: body(as_model_row(row)) for k, row in got.items()} == want
    assert duckdb_query(tmp_warehouse, EVENTS, "SELECT count(*) AS n, count(DISTINCT event_uuid) AS k FROM t") == [
        {"n": 6_500, "k": 6_500}
    ]
    probes = [
        json.loads(line)["fields"]
        for line in r.stderr.splitlines()
        if "probed the table for events older than the dedup window" in line
    ]
    assert len(probes) == 1, probes
    probe = probes[0]
    assert (probe["lookups"], probe["index_hits"]) == (6_500, 0), probe
    assert (probe["files_read"], probe["bloom_checks"], probe["blooms_read"]) == (files, 0, 0), probe
