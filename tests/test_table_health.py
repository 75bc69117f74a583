"""A table that ages well: many small commits keep the manifests of the
current snapshot under a bound that does not grow with the commit count;
upserts whose deletes target rows in merged manifests hide them in every
engine; after `floe maintain` and one more append no manifest without a
live entry is left; old metadata files are deleted after commit.

PyIceberg, DuckDB and Spark read the rows, checked against the model.
"""

from __future__ import annotations

import datetime
import json
import os
import random
import time

from support import floe
from support.readers import as_model_row, by_key, duckdb_query, local_path, pyiceberg_catalog, pyiceberg_rows, spark_sql
from test_upsert import RECENT, changed, expected_for, valid_lines, write

EVENTS = "analytics.events"
MIN_COUNT = 6


def manifests(wh) -> list[dict]:
    """The manifests of the current snapshot, as PyIceberg lists them."""
    return pyiceberg_catalog(wh).load_table(EVENTS).inspect.manifests().to_pylist()


def live(m: dict) -> int:
    return (
        m["added_data_files_count"]
        + m["existing_data_files_count"]
        + m["added_delete_files_count"]
        + m["existing_delete_files_count"]
    )


def run(wh, files, *extra: str) -> str:
    args = []
    for f in files:
        args += ["--input", str(f)]
    # A flush per chunk, and every small file is one chunk: a commit per file.
    return floe.run("run", *args, "--warehouse", str(wh.root), "--flush-size", "1", *extra).stdout


def test_many_commits_keep_manifests_few_and_merged_upserts_read_the_same_everywhere(spark, tmp_path, tmp_warehouse):
    rng = random.Random(91)
    quiet = {"dup_rate": 0, "changed_dup_rate": 0, "bad_rate": 0, **RECENT}
    a = valid_lines(floe.generate(tmp_path / "gen.jsonl", 2_400, seed=91, **quiet))
    a_files = [write(tmp_path / f"a{i:03}.jsonl", a[i * 40 : (i + 1) * 40]) for i in range(60)]
    # The table exists after the first file; then merging starts early.
    run(tmp_warehouse, a_files[:1])
    table = pyiceberg_catalog(tmp_warehouse).load_table(EVENTS)
    with table.transaction() as tx:
        tx.set_properties({"commit.manifest.min-count-to-merge": str(MIN_COUNT)})

    run(tmp_warehouse, a_files[1:])
    snapshots = len(pyiceberg_catalog(tmp_warehouse).load_table(EVENTS).snapshots())
    assert snapshots >= 60, "a commit per file"
    # Small manifests merge once MIN_COUNT gather: never more than that plus
    # the merged ones and the commit's own.
    assert len(manifests(tmp_warehouse)) <= MIN_COUNT + 2

    # Changed bodies for rows of the first files, whose entries now sit in
    # merged manifests: position deletes into them.
    b = [changed(line) for line in rng.sample(a[:400], 120)]
    b_files = [write(tmp_path / f"b{i:03}.jsonl", b[i * 10 : (i + 1) * 10]) for i in range(12)]
    outs = [run(tmp_warehouse, b_files)]
    assert floe.summary_value(outs[0], "rows deleted") == 120
    assert len(manifests(tmp_warehouse)) <= 2 * (MIN_COUNT + 2), "data and delete manifests, each bounded"

    want = expected_for(a_files + b_files)
    got = by_key(pyiceberg_rows(tmp_warehouse, EVENTS))
    assert {k: as_model_row(r) for k, r in got.items()} == want
    duck = by_key(duckdb_query(tmp_warehouse, EVENTS, "SELECT * FROM t"))
    assert {k: as_model_row(r) for k, r in duck.items()} == want
    sp = by_key(spark_sql(spark, tmp_warehouse, "SELECT * FROM {table}"))
    assert {k: as_model_row(r) for k, r in sp.items()} == want

    # Compaction leaves manifests of deleted entries only; the next append drops them.
    floe.run("maintain", "--warehouse", str(tmp_warehouse.root))
    c = valid_lines(floe.generate(tmp_path / "gen-c.jsonl", 40, seed=92, **quiet))
    run(tmp_warehouse, [write(tmp_path / "c.jsonl", c)])
    after = manifests(tmp_warehouse)
    assert after and all(live(m) > 0 for m in after), after
    want = expected_for(a_files + b_files + [tmp_path / "c.jsonl"])
    got = by_key(pyiceberg_rows(tmp_warehouse, EVENTS))
    assert {k: as_model_row(r) for k, r in got.items()} == want
    assert duckdb_query(tmp_warehouse, EVENTS, "SELECT count(*) AS n, count(DISTINCT event_uuid) AS k FROM t") == [
        {"n": len(want), "k": len(want)}
    ]
    counts = spark_sql(spark, tmp_warehouse, "SELECT count(*) AS n, count(DISTINCT event_uuid) AS k FROM {table}")
    assert counts == [{"n": len(want), "k": len(want)}]

    # Old metadata files are deleted after commit: the current one and its log.
    table = pyiceberg_catalog(tmp_warehouse).load_table(EVENTS)
    folder = tmp_warehouse.table_location(EVENTS) / "metadata"
    on_disk = sorted(p.name for p in folder.glob("*.metadata.json"))
    logged = sorted([e.metadata_file.rsplit("/", 1)[1] for e in table.metadata.metadata_log] + [table.metadata_location.rsplit("/", 1)[1]])
    assert on_disk == logged
    assert table.properties["write.metadata.delete-after-commit.enabled"] == "true"


def day_ranges(wh, content: int) -> list[tuple[str, str]]:
    """(first day, last day) of each manifest of `content` (0 data, 1
    deletes) in the current snapshot, from its partition summary."""
    out = []
    for m in manifests(wh):
        if m["content"] == content:
            day = m["partition_summaries"][0]
            out.append((day["lower_bound"], day["upper_bound"]))
    return out


def test_rewrite_manifests_clusters_them_by_day_and_every_engine_reads_the_same_rows(spark, tmp_path, tmp_warehouse):
    quiet = {"dup_rate": 0, "changed_dup_rate": 0, "bad_rate": 0}
    span = {"start": RECENT["start"] - 3 * 86_400, "days": 5}
    a = valid_lines(floe.generate(tmp_path / "gen.jsonl", 1_500, seed=93, **quiet, **span))
    random.Random(93).shuffle(a)  # generated in time order: each file now spans every day
    a_files = [write(tmp_path / f"a{i:03}.jsonl", a[i * 50 : (i + 1) * 50]) for i in range(30)]
    run(tmp_warehouse, a_files[:1])
    table = pyiceberg_catalog(tmp_warehouse).load_table(EVENTS)
    with table.transaction() as tx:
        # No merging: a manifest per commit, each spanning every day.
        tx.set_properties({"commit.manifest-merge.enabled": "false"})
    run(tmp_warehouse, a_files[1:])
    b = [changed(line) for line in random.Random(93).sample(a[:500], 40)]
    b_file = write(tmp_path / "b.jsonl", b)
    assert floe.summary_value(run(tmp_warehouse, [b_file]), "rows deleted") == 40
    want = expected_for(a_files + [b_file])

    before = manifests(tmp_warehouse)
    data_before = [m for m in before if m["content"] == 0]
    days = sorted({time.strftime("%Y-%m-%d", time.gmtime(json.loads(x)["created_at"])) for x in a})
    # Five days' span from a start within a day: five or six calendar days.
    assert len(days) in (5, 6) and len(data_before) == 31
    def span_days(r: tuple[str, str]) -> int:
        return (datetime.date.fromisoformat(r[1]) - datetime.date.fromisoformat(r[0])).days

    wide = [r for r in day_ranges(tmp_warehouse, 0) if span_days(r) >= 4]
    assert len(wide) >= 30, "unclustered: the 30 appends' manifests each span (almost) every day"
    # Manifests of a quarter of the data's: a handful, each a few days. A
    # full day holds about a fifth of a five-day span's files (more or less
    # by chance, and by where the span starts within a day, which moves
    # with the hour the test runs), so a manifest holds more than any one
    # day, and no day spans more than two.
    target = sum(m["length"] for m in data_before) // 4
    with pyiceberg_catalog(tmp_warehouse).load_table(EVENTS).transaction() as tx:
        tx.set_properties({"commit.manifest.target-size-bytes": str(target)})
    records = pyiceberg_catalog(tmp_warehouse).load_table(EVENTS).current_snapshot().summary["total-records"]

    out = floe.run("maintain", "--warehouse", str(tmp_warehouse.root), "--rewrite-manifests").stdout
    line = next(x for x in out.splitlines() if x.startswith(f"{EVENTS}: "))
    after = manifests(tmp_warehouse)
    data_after = [m for m in after if m["content"] == 0]
    assert line == (
        f"{EVENTS}: rewrote 31 manifest(s) into {len(data_after)}, clustered by partition "
        f"({sum(live(m) for m in data_after)} entries): "
        f"the snapshot lists {len(after)} (was {len(before)})"
    ), out
    ranges = sorted(day_ranges(tmp_warehouse, 0))
    assert 3 <= len(ranges) <= 10, ranges
    assert len([m for m in after if m["content"] == 1]) == 1, "the one delete manifest kept apart, as it was"
    # Sorted by day: consecutive manifests meet at most on a boundary day, so
    # a one-day query plans through at most two of them.
    for (lo, hi), (next_lo, _) in zip(ranges, ranges[1:]):
        assert lo <= hi <= next_lo, ranges
    for day in days:
        assert 1 <= sum(lo <= day <= hi for lo, hi in ranges) <= 2, (day, ranges)

    snap = pyiceberg_catalog(tmp_warehouse).load_table(EVENTS).current_snapshot()
    assert snap.summary.operation.value == "replace"
    assert snap.summary["total-records"] == records
    assert snap.summary["manifests-replaced"] == "31"
    assert snap.summary["manifests-created"] == str(len(data_after))
    assert snap.summary["manifests-kept"] == "1"

    # The rewritten entries keep their sequence numbers: the upserts' deletes
    # still hide the old rows in every engine.
    got = by_key(pyiceberg_rows(tmp_warehouse, EVENTS))
    assert {k: as_model_row(r) for k, r in got.items()} == want
    duck = by_key(duckdb_query(tmp_warehouse, EVENTS, "SELECT * FROM t"))
    assert {k: as_model_row(r) for k, r in duck.items()} == want
    sp = by_key(spark_sql(spark, tmp_warehouse, "SELECT * FROM {table}"))
    assert {k: as_model_row(r) for k, r in sp.items()} == want

    # A clustered table is left alone.
    again = floe.run("maintain", "--warehouse", str(tmp_warehouse.root), "--rewrite-manifests").stdout
    assert f"{EVENTS}: manifests: {len(after)} already clustered; nothing to rewrite" in again
    assert pyiceberg_catalog(tmp_warehouse).load_table(EVENTS).current_snapshot().snapshot_id == snap.snapshot_id


def test_floe_run_expires_old_snapshots_itself_and_a_resume_stays_exact(tmp_path, tmp_warehouse):
    quiet = {"dup_rate": 0, "changed_dup_rate": 0, "bad_rate": 0, **RECENT}
    a = valid_lines(floe.generate(tmp_path / "gen.jsonl", 640, seed=95, **quiet))
    files = [write(tmp_path / f"a{i:03}.jsonl", a[i * 40 : (i + 1) * 40]) for i in range(16)]
    run(tmp_warehouse, files[:15], "--expire-every", "off")
    old = pyiceberg_catalog(tmp_warehouse).load_table(EVENTS).snapshots()
    assert len(old) >= 15, "a commit per file, none expired"
    newest_ms = max(s.timestamp_ms for s in old)
    # Every snapshot so far must be older than the 1 s retention below.
    floe.wait_for(lambda: time.time() * 1000 - newest_ms > 1_500, 10, "the snapshots to age past 1 s")

    done = floe.run(
        "run", "--input", str(files[15]), "--warehouse", str(tmp_warehouse.root), "--flush-size", "1",
        "--expire-every", "1h", "--expire-older-than", "1s", FLOE_LOG="info",
    )
    table = pyiceberg_catalog(tmp_warehouse).load_table(EVENTS)
    kept = table.snapshots()
    # The newest 10 stay whatever their age: the new commit and 9 of before.
    assert len(kept) == 10, [s.snapshot_id for s in kept]
    by_age = sorted(old, key=lambda s: (s.timestamp_ms, s.sequence_number))
    assert {s.snapshot_id for s in kept} == {s.snapshot_id for s in by_age[-9:]} | {table.current_snapshot().snapshot_id}
    assert f"snapshots_removed={len(old) + 1 - 10}" in done.stderr, done.stderr
    # The expired snapshots' manifest lists are gone, the kept ones' are there.
    gone = {s.manifest_list for s in by_age[:-9]}
    assert not any(os.path.exists(local_path(m)) for m in gone)
    assert all(os.path.exists(local_path(s.manifest_list)) for s in kept)

    want = expected_for(files)
    got = by_key(pyiceberg_rows(tmp_warehouse, EVENTS))
    assert {k: as_model_row(r) for k, r in got.items()} == want
    assert duckdb_query(tmp_warehouse, EVENTS, "SELECT count(*) AS n, count(DISTINCT event_uuid) AS k FROM t") == [
        {"n": len(want), "k": len(want)}
    ]
    # The checkpoints are table properties: every file resumes at its end.
    assert floe.summary_value(run(tmp_warehouse, files), "records read") == 0
