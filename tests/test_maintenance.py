"""`floe maintain`: compaction, snapshot expiry and orphan removal, checked
with PyIceberg, DuckDB and Spark, racing a writer, and resumed after.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import time
from pathlib import Path

import pyarrow.parquet as pq

from support import floe
from support.readers import (
    Warehouse,
    as_model_row,
    by_key,
    duckdb_query,
    local_path,
    pyiceberg_catalog,
    pyiceberg_rows,
    spark_sql,
)
from test_upsert import (
    EVENTS,
    RECENT,
    assert_runs_as_planned,
    build_runs,
    changed,
    expected_for,
    table_files,
    valid_lines,
    write,
)

def maintain(wh: Warehouse, *args: str, **env: str) -> str:
    return floe.run("maintain", "--warehouse", str(wh.root), *args, **env).stdout


def report(out: str, table: str, pattern: str) -> tuple[int, ...]:
    """The numbers of the report line of `table` that matches `pattern`."""
    for line in out.splitlines():
        if line.startswith(f"{table}: "):
            m = re.search(pattern, line)
            if m:
                return tuple(int(g) for g in m.groups())
    raise AssertionError(f"no line for {table} matching {pattern!r} in:\n{out}")


COMPACTED = r"compacted (\d+) partition\(s\): (\d+) data files into (\d+), (\d+) delete file\(s\) removed, (\d+) rows kept, (\d+) deleted rows dropped"


def files_by_partition(wh: Warehouse, rows: dict | None = None) -> dict:
    """(data files, delete files) per partition, from PyIceberg's files table;
    `rows` gets the rows of each partition's data files."""
    table = pyiceberg_catalog(wh).load_table(EVENTS)
    out: dict = {}
    for f in table.inspect.files().to_pylist():
        key = tuple(sorted(f["partition"].items()))
        data, deletes = out.get(key, (0, 0))
        out[key] = (data + (f["content"] == 0), deletes + (f["content"] != 0))
        if rows is not None and f["content"] == 0:
            rows[key] = rows.get(key, 0) + f["record_count"]
    return out


def test_compaction_keeps_every_row_in_one_file_per_partition_and_dedup_still_works(spark, tmp_path, tmp_warehouse):
    inputs, plan = build_runs(tmp_path, seed=131)
    outs = [
        floe.run("run", "--input", str(p), "--warehouse", str(tmp_warehouse.root), "--flush-size", "64KiB").stdout
        for p in inputs
    ]
    want = assert_runs_as_planned(outs, inputs, plan, tmp_warehouse)
    rows_before: dict = {}
    before = files_by_partition(tmp_warehouse, rows_before)
    data_before = sum(d for d, _ in before.values())
    deletes_before = sum(x for _, x in before.values())
    deleted_positions = sum(n for content, n in table_files(tmp_warehouse) if content == 1)
    assert data_before > 2 * len(before), "the runs must leave several small files per partition"
    assert deletes_before > 0 and deleted_positions == plan["b_replaced"] + plan["c_replaced"]

    out = maintain(tmp_warehouse, "--compact")
    partitions, files_in, files_out, deletes_removed, rows, dropped = report(out, EVENTS, COMPACTED)
    # Every partition with 2+ files or deletes; here that is every partition
    # but those holding a single file and no delete.
    single = [p for p, (d, x) in before.items() if d == 1 and x == 0]
    assert partitions == len(before) - len(single)
    assert files_in == data_before - len(single) and files_out == partitions
    assert deletes_removed == deletes_before
    assert rows == len(want) - sum(rows_before[p] for p in single)
    assert dropped == deleted_positions

    # Same rows in every reader; one data file per partition, no deletes.
    got = by_key(pyiceberg_rows(tmp_warehouse, EVENTS))
    assert {k: as_model_row(r) for k, r in got.items()} == want
    count = [{"n": len(want), "k": len(want)}]
    assert duckdb_query(tmp_warehouse, EVENTS, "SELECT count(*) AS n, count(DISTINCT event_uuid) AS k FROM t") == count
    assert spark_sql(spark, tmp_warehouse, "SELECT count(*) AS n, count(DISTINCT event_uuid) AS k FROM {table}") == count
    sample = sorted(want)[::400]
    quoted = ", ".join(f"'{k}'" for k in sample)
    rows_spark = spark_sql(spark, tmp_warehouse, f"SELECT * FROM {{table}} WHERE event_uuid IN ({quoted})")
    assert {r["event_uuid"]: as_model_row(r) for r in rows_spark} == {k: want[k] for k in sample}
    after = files_by_partition(tmp_warehouse)
    assert set(after) == set(before)
    assert all(v == (1, 0) for v in after.values()), after

    # The snapshot says what it did, with totals that add up.
    table = pyiceberg_catalog(tmp_warehouse).load_table(EVENTS)
    snap = table.current_snapshot()
    assert snap.summary.operation.value == "replace"
    assert snap.summary["deleted-data-files"] == str(files_in)
    assert snap.summary["added-data-files"] == str(files_out)
    assert snap.summary["removed-position-deletes"] == str(deleted_positions)
    assert snap.summary["total-records"] == str(len(want))
    assert snap.summary["total-delete-files"] == "0"

    # A restart indexes the compacted rows: exact duplicates of live rows are
    # dropped, and changed ones delete the compacted row.
    live_line = {}
    for path in inputs:
        for line in valid_lines(path):
            live_line[_uuid(line)] = line
    rng = random.Random(5)
    picked = rng.sample(sorted(live_line), 85)
    exact, bodies = picked[:60], picked[60:]
    d = write(tmp_path / "d.jsonl", [live_line[k] for k in exact] + [changed(live_line[k]) for k in bodies])
    out = floe.run("run", "--input", str(d), "--warehouse", str(tmp_warehouse.root)).stdout
    assert floe.summary_value(out, "identical") == 60
    assert floe.summary_value(out, "rows deleted") == 25
    files = pyiceberg_catalog(tmp_warehouse).load_table(EVENTS).inspect.files().to_pylist()
    deletes = [f for f in files if f["content"] == 1]
    assert sum(f["record_count"] for f in deletes) == 25
    compacted = {f["file_path"] for f in table.inspect.files().to_pylist()}
    targets = {p for f in deletes for p in pq.read_table(local_path(f["file_path"]), columns=["file_path"]).column(0).to_pylist()}
    assert targets <= compacted
    assert len(pyiceberg_rows(tmp_warehouse, EVENTS)) == len(want)


def _uuid(line: bytes) -> str:
    return json.loads(line)["event_uuid"]


def distinct_events(tmp_path, events: int, seed: int) -> tuple[list[bytes], Path]:
    """Valid, recent events with no duplicate, as lines and as a file."""
    quiet = {"dup_rate": 0, "changed_dup_rate": 0, "bad_rate": 0, **RECENT}
    lines = valid_lines(floe.generate(tmp_path / "gen.jsonl", events, seed=seed, **quiet))
    return lines, write(tmp_path / "events.jsonl", lines)


def partition_of(line: bytes) -> tuple[str, int]:
    """A line's partition: its event type and day."""
    event = json.loads(line)
    return event["event_name"].split(":")[0], int(event["created_at"]) // 86_400


def in_shared_partitions(tmp_path, lines: list[bytes]) -> tuple[list[bytes], Path]:
    """The lines whose partition holds another: a partition of one event
    cannot get two files. Which partitions hold one depends on the hour the
    test runs (the first and last days generated are partial)."""
    counts: dict[tuple[str, int], int] = {}
    for line in lines:
        counts[partition_of(line)] = counts.get(partition_of(line), 0) + 1
    kept = [line for line in lines if counts[partition_of(line)] >= 2]
    return kept, write(tmp_path / "events-shared.jsonl", kept)


def ingest_in_small_files(wh: Warehouse, path: Path) -> list[Path]:
    """Small files: every partition with two events or more gets at least two
    data files. A flush covers whole chunks of about 1 MiB of input, so small
    flushes alone do not promise it (which partitions a chunk holds depends on
    the day the test runs): the events of each partition go alternately into
    two files, ingested by two runs with 64 KiB flushes. Returns the two files
    (the rows' source ids)."""
    halves: tuple[list[bytes], list[bytes]] = ([], [])
    seen: dict[tuple[str, int], int] = {}
    for line in path.read_bytes().splitlines(keepends=True):
        key = partition_of(line)
        seen[key] = seen.get(key, 0) + 1
        halves[seen[key] % 2].append(line)
    parts = [path.with_name(f"{path.stem}-part{i + 1}.jsonl") for i in range(2)]
    for part, lines in zip(parts, halves):
        part.write_bytes(b"".join(lines))
        floe.run("run", "--input", str(part), "--warehouse", str(wh.root), "--flush-size", "64KiB")
    return parts


def test_compaction_racing_a_writer_that_deletes_rows_it_rewrites_loses_no_delete(tmp_path, tmp_warehouse):
    a, a_path = in_shared_partitions(tmp_path, distinct_events(tmp_path, 4_000, seed=141)[0])
    parts = ingest_in_small_files(tmp_warehouse, a_path)
    rng = random.Random(7)
    touched = rng.sample(a, 30)
    b_path = write(tmp_path / "b.jsonl", [changed(l) for l in touched])
    partitions_touched = {partition_of(l) for l in touched}
    assert all(data >= 2 for data, _ in files_by_partition(tmp_warehouse).values())

    # Compaction freezes once its files are written; the writer then commits
    # position deletes against files it is rewriting.
    with floe.frozen_at("after-data-files", "maintain", "--warehouse", str(tmp_warehouse.root), "--compact") as proc:
        out = floe.run("run", "--input", str(b_path), "--warehouse", str(tmp_warehouse.root)).stdout
        assert floe.summary_value(out, "rows deleted") == 30
    out = floe.finished(proc)
    # Each partition the writer touched was dropped from the first commit and
    # compacted again in a second round, with the writer's deletes applied.
    m = re.search(r"(\d+) planned anew after a concurrent commit", out)
    assert m and int(m.group(1)) == len(partitions_touched), out

    want = expected_for([*parts, b_path])
    got = by_key(pyiceberg_rows(tmp_warehouse, EVENTS))  # raises on a second live row
    assert {k: as_model_row(r) for k, r in got.items()} == want
    assert duckdb_query(tmp_warehouse, EVENTS, "SELECT count(*) AS n, count(DISTINCT event_uuid) AS k FROM t") == [
        {"n": len(want), "k": len(want)}
    ]
    assert all(v == (1, 0) for v in files_by_partition(tmp_warehouse).values())


def referenced_files(wh: Warehouse, ident: str) -> set[str]:
    """Every file the table's metadata references, read with PyIceberg."""
    table = pyiceberg_catalog(wh).load_table(ident)
    out = {local_path(table.metadata_location)}
    out |= {local_path(m.metadata_file) for m in table.metadata.metadata_log}
    for snap in table.snapshots():
        out.add(local_path(snap.manifest_list))
    for m in table.inspect.all_manifests().to_pylist():
        out.add(local_path(m["path"]))
    for f in table.inspect.all_files().to_pylist():
        out.add(local_path(f["file_path"]))
    return out


def files_under(path: Path) -> set[str]:
    return {str(p) for p in path.rglob("*") if p.is_file()}


def test_expiry_and_orphan_removal_delete_only_unreferenced_files_and_a_resume_still_starts_right(tmp_path, tmp_warehouse):
    lines, source = distinct_events(tmp_path, 6_000, seed=151)
    args = ("run", "--input", str(source), "--warehouse", str(tmp_warehouse.root), "--flush-size", "64KiB")
    # Killed after its 2nd commit landed: the table holds part of the file,
    # the checkpoint says where it ends; files of the commit in flight when
    # another run dies are orphans.
    killed = floe.start(*args, FLOE_FAILPOINT="after-catalog-swap:die@2")
    killed.communicate(timeout=floe.TIMEOUT)
    assert killed.returncode == -signal.SIGKILL
    crashed = floe.start(*args, FLOE_FAILPOINT="after-data-files:die")
    crashed.communicate(timeout=floe.TIMEOUT)
    assert crashed.returncode == -signal.SIGKILL
    maintain(tmp_warehouse, "--compact")

    location = tmp_warehouse.table_location(EVENTS)
    table = pyiceberg_catalog(tmp_warehouse).load_table(EVENTS)
    rows_before = len(pyiceberg_rows(tmp_warehouse, EVENTS))
    checkpoint = table.properties["floe.checkpoint"]
    snapshots = len(table.snapshots())
    assert 0 < rows_before < len(lines) and snapshots >= 3
    orphans = files_under(location) - referenced_files(tmp_warehouse, EVENTS)
    assert orphans, "the crashed run must have left files behind"
    # Two more stray files: one old, one as young as a file a writer is
    # about to commit.
    old, young = location / "data" / "stray-old.parquet", location / "data" / "stray-young.parquet"
    old.write_bytes(b"x" * 10)
    young.write_bytes(b"y" * 10)
    for path in [*orphans, str(old)]:
        hours_ago = time.time() - 2 * 3600
        os.utime(path, (hours_ago, hours_ago))

    out = maintain(
        tmp_warehouse, "--expire", "--remove-orphans",
        "--expire-older-than", "0s", "--keep-snapshots", "1", "--orphan-older-than", "1h",
    )
    assert report(out, EVENTS, r"expired (\d+) snapshot\(s\) older than 0s \((\d+) kept\)") == (snapshots - 1, 1)
    deleted, listed, too_young = report(out, EVENTS, r"removed (\d+) orphan file\(s\) \(.*\) of (\d+) listed; (\d+) unreferenced")
    assert (deleted, too_young) == (len(orphans) + 1, 1)

    # Nothing referenced went; everything left is referenced, or young.
    referenced = referenced_files(tmp_warehouse, EVENTS)
    assert files_under(location) == referenced | {str(young)}
    assert listed == len(referenced) + len(orphans) + 2
    table = pyiceberg_catalog(tmp_warehouse).load_table(EVENTS)
    assert len(table.snapshots()) == 1 and table.properties["floe.checkpoint"] == checkpoint
    assert len(pyiceberg_rows(tmp_warehouse, EVENTS)) == rows_before

    # The resume reads on from the checkpoint: no record twice, none lost.
    out = floe.run(*args).stdout
    assert floe.summary_value(out, "identical") == 0
    assert floe.summary_value(out, "rows written") == len(lines) - rows_before
    got = by_key(pyiceberg_rows(tmp_warehouse, EVENTS))
    assert set(got) == {_uuid(l) for l in lines}
    assert duckdb_query(tmp_warehouse, EVENTS, "SELECT count(*) AS n FROM t") == [{"n": len(lines)}]


def test_a_writer_whose_deletes_point_into_files_compacted_meanwhile_deletes_the_rows_where_they_moved(tmp_path, tmp_warehouse):
    a, a_path = in_shared_partitions(tmp_path, distinct_events(tmp_path, 4_000, seed=161)[0])
    parts = ingest_in_small_files(tmp_warehouse, a_path)
    rng = random.Random(9)
    touched = rng.sample(a, 40)
    exact = rng.sample([l for l in a if l not in touched], 15)
    b_path = write(tmp_path / "b.jsonl", [changed(l) for l in touched] + exact)

    # The writer decides its deletes against the files it knows, freezes
    # before committing; the compaction then replaces every one of them.
    with floe.frozen_at("after-data-files", "run", "--input", str(b_path), "--warehouse", str(tmp_warehouse.root)) as proc:
        before = {f["file_path"] for f in pyiceberg_catalog(tmp_warehouse).load_table(EVENTS).inspect.files().to_pylist()}
        partitions, *_ = report(maintain(tmp_warehouse, "--compact"), EVENTS, COMPACTED)
        assert partitions == len(files_by_partition(tmp_warehouse))
    out = floe.finished(proc)
    assert floe.summary_value(out, "commit conflicts") == 1
    assert floe.summary_value(out, "replaced") == 40
    assert floe.summary_value(out, "rows deleted") == 40
    assert floe.summary_value(out, "identical") == 15

    want = expected_for([*parts, b_path])
    got = by_key(pyiceberg_rows(tmp_warehouse, EVENTS))  # raises on a second live row
    assert {k: as_model_row(r) for k, r in got.items()} == want
    assert duckdb_query(tmp_warehouse, EVENTS, "SELECT count(*) AS n, count(DISTINCT event_uuid) AS k FROM t") == [
        {"n": len(want), "k": len(want)}
    ]
    files = pyiceberg_catalog(tmp_warehouse).load_table(EVENTS).inspect.files().to_pylist()
    deletes = [f for f in files if f["content"] == 1]
    assert sum(f["record_count"] for f in deletes) == 40
    live = {f["file_path"] for f in files if f["content"] == 0}
    targets = {p for f in deletes for p in pq.read_table(local_path(f["file_path"]), columns=["file_path"]).column(0).to_pylist()}
    assert targets <= live and not targets & before
