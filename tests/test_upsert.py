"""Upserts keyed by event_uuid across commits and restarts, written as position
deletes only, checked with PyIceberg, DuckDB and Spark.

Each run below is a restart: Floe rebuilds its key index from the table.
The inputs are built so that every duplicate's original sits in an earlier
run, which makes the expected number of deleted positions exact.
"""

from __future__ import annotations

import json
import random
import time

import pyarrow.parquet as pq

from support import floe
from support.expected import expected_from_bytes
from support.readers import (
    Warehouse,
    as_model_row,
    by_key,
    duckdb_query,
    pyiceberg_catalog,
    pyiceberg_rows,
    spark_sql,
)

EVENTS = "analytics.events"
DAY = 86_400
# Recent events: inside the default dedup window (7 days back from today).
RECENT = {"start": int(time.time()) - 3 * DAY, "days": 2}


def valid_lines(path) -> list[bytes]:
    out = []
    for line in path.read_bytes().splitlines():
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if isinstance(obj, dict) and isinstance(obj.get("event_uuid"), str) and len(line) < 10_000:
            out.append(line)
    return out


def changed(line: bytes, shift_days: int = 0) -> bytes:
    """The same event_uuid with another body (and maybe another day)."""
    obj = json.loads(line)
    obj["revision"] = obj.get("revision", 0) + 1
    obj["created_at"] = obj["created_at"] + shift_days * DAY
    return json.dumps(obj, separators=(",", ":")).encode()


def write(path, lines: list[bytes]):
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def table_files(wh):
    """(content, record_count) of every live file, from PyIceberg's metadata tables."""
    table = pyiceberg_catalog(wh).load_table(EVENTS)
    return [(f["content"], f["record_count"]) for f in table.inspect.files().to_pylist()]


def build_runs(tmp_path, seed: int, when=RECENT, moved: int = 10):
    """Three inputs: A fresh; B with exact and changed duplicates of A (some
    moved to another day); C with changed duplicates of B's new versions."""
    rng = random.Random(seed)
    quiet = {"dup_rate": 0, "changed_dup_rate": 0, "bad_rate": 0, **when}
    a = valid_lines(floe.generate(tmp_path / "gen-a.jsonl", 6_000, seed=seed, **quiet))
    fresh_b = valid_lines(floe.generate(tmp_path / "gen-b.jsonl", 3_000, seed=seed + 1, **quiet))
    picked = rng.sample(a, 250 + moved)
    exact_b, changed_b, moved_b = picked[:150], picked[150:250], picked[250:]
    b_dups = exact_b + [changed(l) for l in changed_b] + [changed(l, shift_days=1) for l in moved_b]
    b = fresh_b + b_dups
    rng.shuffle(b)
    c = [changed(l) for l in rng.sample([changed(l) for l in changed_b], 40)]
    replaced = set(changed_b + moved_b)
    c += rng.sample([l for l in a if l not in replaced], 30)  # identical to rows still live from A
    rng.shuffle(c)
    return [write(tmp_path / f"{name}.jsonl", lines) for name, lines in (("a", a), ("b", b), ("c", c))], {
        "b_replaced": len(changed_b) + len(moved_b),
        "c_replaced": 40,
    }


def run_all(inputs, wh, *extra):
    outs = []
    for path in inputs:
        outs.append(floe.run("run", "--input", str(path), "--warehouse", str(wh.root), "--flush-size", "256KiB", *extra).stdout)
    return outs


def expected_for(inputs, keep_first=False):
    """The model over the runs as one stream, with each run's own source id."""
    rows = {}
    for path in inputs:
        exp = expected_from_bytes(path.read_bytes(), str(path), keep_first=keep_first)
        for key, row in exp.rows.items():
            live = rows.get(key)
            if live is None or (
                not keep_first
                and (live["event_name"], live["created_at"], live["payload"])
                != (row["event_name"], row["created_at"], row["payload"])
            ):
                rows[key] = row
    return rows


def assert_runs_as_planned(outs, inputs, plan, wh) -> dict:
    """Each run's counts and the rows the table ends with, for `build_runs` inputs."""
    want = expected_for(inputs)
    assert floe.summary_value(outs[1], "identical") == 150
    assert floe.summary_value(outs[1], "rows deleted") == plan["b_replaced"]
    assert floe.summary_value(outs[2], "rows deleted") == plan["c_replaced"]
    assert floe.summary_value(outs[2], "identical") == 30
    got = by_key(pyiceberg_rows(wh, EVENTS))  # raises on a second live row
    assert {k: as_model_row(r) for k, r in got.items()} == want
    return want


def test_upserts_across_restarts_leave_one_row_per_key_in_every_reader(spark, tmp_path, tmp_warehouse):
    inputs, plan = build_runs(tmp_path, seed=71)
    outs = run_all(inputs, tmp_warehouse)
    # Floe counted what the inputs hold; PyIceberg reads exactly the model's
    # rows, the latest body for changed keys.
    want = assert_runs_as_planned(outs, inputs, plan, tmp_warehouse)

    # DuckDB and Spark: one row per key, same count, same bodies for a sample.
    assert duckdb_query(tmp_warehouse, EVENTS, "SELECT count(*) AS n, count(DISTINCT event_uuid) AS k FROM t") == [
        {"n": len(want), "k": len(want)}
    ]
    counts = spark_sql(spark, tmp_warehouse, "SELECT count(*) AS n, count(DISTINCT event_uuid) AS k FROM {table}")
    assert counts == [{"n": len(want), "k": len(want)}]
    sample = sorted(want)[::500]
    quoted = ", ".join(f"'{k}'" for k in sample)
    for reader_rows in (
        duckdb_query(tmp_warehouse, EVENTS, f"SELECT * FROM t WHERE event_uuid IN ({quoted})"),
        spark_sql(spark, tmp_warehouse, f"SELECT * FROM {{table}} WHERE event_uuid IN ({quoted})"),
    ):
        assert {r["event_uuid"]: as_model_row(r) for r in reader_rows} == {k: want[k] for k in sample}

    # Only position deletes; deleted positions = changed duplicates of committed rows.
    files = table_files(tmp_warehouse)
    assert {content for content, _ in files} == {0, 1}, "data (0) and position deletes (1), no equality deletes (2)"
    deleted = sum(n for content, n in files if content == 1)
    assert deleted == plan["b_replaced"] + plan["c_replaced"]
    assert sum(n for content, n in files if content == 0) - deleted == len(want)

    # Every upsert snapshot says what it did.
    table = pyiceberg_catalog(tmp_warehouse).load_table(EVENTS)
    operations = {s.summary.operation.value for s in table.snapshots()}
    assert operations == {"append", "overwrite"}
    assert sum(int(s.summary.get("added-position-deletes") or 0) for s in table.snapshots()) == deleted


def test_exact_duplicates_across_restarts_create_no_deletes(tmp_path, tmp_warehouse):
    a = valid_lines(
        floe.generate(tmp_path / "a.jsonl", 3_000, seed=81, dup_rate=0, changed_dup_rate=0, bad_rate=0, **RECENT)
    )
    b = write(tmp_path / "b.jsonl", random.Random(1).sample(a, 500))
    out = run_all([tmp_path / "a.jsonl", b], tmp_warehouse)[1]
    assert floe.summary_value(out, "identical") == 500
    assert floe.summary_value(out, "rows written") == 0
    assert {content for content, _ in table_files(tmp_warehouse)} == {0}
    assert len(pyiceberg_rows(tmp_warehouse, EVENTS)) == 3_000


def test_keep_first_skips_every_duplicate(tmp_path, tmp_warehouse):
    inputs, plan = build_runs(tmp_path, seed=91)
    outs = run_all(inputs, tmp_warehouse, "--dedup-mode", "keep-first")
    want = expected_for(inputs, keep_first=True)
    assert floe.summary_value(outs[1], "skipped (keep-first)") == plan["b_replaced"]
    assert sum(floe.summary_value(o, "rows deleted") for o in outs) == 0
    assert {content for content, _ in table_files(tmp_warehouse)} == {0}
    got = by_key(pyiceberg_rows(tmp_warehouse, EVENTS))
    assert {k: as_model_row(r) for k, r in got.items()} == want


def body(row) -> tuple:
    return (row["event_name"], row["created_at"], json.dumps(row["payload"], sort_keys=True))


def test_concurrent_writers_with_overlapping_keys_keep_one_row_per_key(tmp_path, tmp_warehouse):
    rng = random.Random(5)
    quiet = {"dup_rate": 0, "changed_dup_rate": 0, "bad_rate": 0, **RECENT}
    a = valid_lines(floe.generate(tmp_path / "gen-a.jsonl", 4_000, seed=201, **quiet))
    x_fresh = valid_lines(floe.generate(tmp_path / "gen-x.jsonl", 3_000, seed=202, **quiet))
    y_fresh = valid_lines(floe.generate(tmp_path / "gen-y.jsonl", 3_000, seed=203, **quiet))
    both_changed = rng.sample(a, 200)
    rest = [l for l in a if l not in set(both_changed)]
    x_identical_a = rng.sample(rest, 100)
    x = x_fresh + [changed(l) for l in both_changed] + x_identical_a
    y_changed_a = rng.sample([l for l in rest if l not in set(x_identical_a)], 100)
    y = (
        y_fresh
        + [changed(changed(l)) for l in both_changed]
        + [changed(l) for l in y_changed_a]
        + x_fresh[:300]
        + [changed(l) for l in x_fresh[300:400]]
    )
    rng.shuffle(x)
    rng.shuffle(y)
    inputs = [write(tmp_path / n, lines) for n, lines in (("a.jsonl", a), ("x.jsonl", x), ("y.jsonl", y))]
    floe.run("run", "--input", str(inputs[0]), "--warehouse", str(tmp_warehouse.root))
    # A race for sure: left to the scheduler, a busy machine may run one
    # writer to its end before the other commits at all. X stops with its
    # first commit's metadata written, before the catalog swap; it goes on
    # once Y committed meanwhile, and both run on together.
    x_args, y_args = (
        ("run", "--input", str(p), "--warehouse", str(tmp_warehouse.root), "--flush-size", "16KiB") for p in inputs[1:]
    )
    with floe.frozen_at("after-metadata-file", *x_args) as x_proc:
        base = tmp_warehouse.metadata_location(EVENTS)
        y_proc = floe.start(*y_args)
        floe.wait_for(
            lambda: tmp_warehouse.metadata_location(EVENTS) != base or y_proc.poll() is not None,
            floe.TIMEOUT, "a commit of the second writer",
        )
    outs = [floe.finished(x_proc), floe.finished(y_proc)]

    # Every body a key may end with. A key both writers changed ends with
    # either writer's version (the later commit wins); all others are fixed.
    def key_body(line):
        row = next(iter(expected_from_bytes(line, "s").rows.values()))
        return row["event_uuid"], body(row)

    allowed: dict[str, set] = {}
    for line in a + x_fresh + y_fresh:
        key, b = key_body(line)
        allowed[key] = {b}
    for line in both_changed:
        key, _ = key_body(line)
        allowed[key] = {key_body(changed(line))[1], key_body(changed(changed(line)))[1]}
    for line in y_changed_a:
        key, _ = key_body(line)
        allowed[key] = {key_body(changed(line))[1]}
    for line in x_fresh[300:400]:
        key, b = key_body(line)
        allowed[key] = {b, key_body(changed(line))[1]}
    rows = by_key(pyiceberg_rows(tmp_warehouse, EVENTS))  # raises on a second live row
    assert set(rows) == set(allowed)
    wrong = [(k, body(as_model_row(r))) for k, r in rows.items() if body(as_model_row(r)) not in allowed[k]]
    assert wrong == []
    assert duckdb_query(tmp_warehouse, EVENTS, "SELECT count(*) AS n, count(DISTINCT event_uuid) AS k FROM t") == [
        {"n": len(allowed), "k": len(allowed)}
    ]
    # The writers did race: commits were lost and rebased on the winner's rows
    # (X's first one at least).
    assert floe.summary_value(outs[0], "commit conflicts") > 0


def test_deletes_into_a_file_rewritten_meanwhile_are_recomputed(spark, tmp_path, tmp_warehouse):
    """Floe decides deletes against files another engine then rewrites (here
    PyIceberg's copy-on-write delete) before Floe commits: the commit is lost,
    and the rebase must delete the replaced rows where they now are."""
    from pyiceberg.expressions import In

    rng = random.Random(11)
    quiet = {"dup_rate": 0, "changed_dup_rate": 0, "bad_rate": 0, **RECENT}
    a = valid_lines(floe.generate(tmp_path / "gen-a.jsonl", 3_000, seed=301, **quiet))
    fresh = valid_lines(floe.generate(tmp_path / "gen-b.jsonl", 500, seed=302, **quiet))
    a_path = write(tmp_path / "a.jsonl", a)
    floe.run("run", "--input", str(a_path), "--warehouse", str(tmp_warehouse.root))
    table = pyiceberg_catalog(tmp_warehouse).load_table(EVENTS)
    rows = table.scan(selected_fields=("event_uuid", "event_type", "created_datetime")).to_arrow().to_pylist()
    by_partition: dict = {}
    for r in rows:
        by_partition.setdefault((r["event_type"], r["created_datetime"].date()), []).append(r["event_uuid"])
    # In 12 files: change 2 rows and have PyIceberg delete a third, which
    # rewrites the file with the changed rows' originals at new positions.
    crowded = rng.sample(sorted(p for p, keys in by_partition.items() if len(keys) >= 3), 12)
    to_change, to_delete = set(), []
    for p in crowded:
        picked = rng.sample(by_partition[p], 3)
        to_change.update(picked[:2])
        to_delete.append(picked[2])
    # ... and in 12 other files, change 2 rows that nobody rewrites.
    untouched = [p for p in sorted(by_partition) if p not in crowded and len(by_partition[p]) >= 2]
    for p in rng.sample(untouched, 12):
        to_change.update(rng.sample(by_partition[p], 2))
    uuid_of = {json.loads(l)["event_uuid"]: l for l in a}
    b = fresh + [changed(uuid_of[k]) for k in sorted(to_change)]
    rng.shuffle(b)
    b_path = write(tmp_path / "b.jsonl", b)

    with floe.frozen_at("after-data-files", "run", "--input", str(b_path), "--warehouse", str(tmp_warehouse.root)) as proc:
        table = pyiceberg_catalog(tmp_warehouse).load_table(EVENTS)
        before = {f["file_path"] for f in table.inspect.files().to_pylist()}
        table.delete(In("event_uuid", to_delete))
        table = table.refresh()
        rewritten = before - {f["file_path"] for f in table.inspect.files().to_pylist()}
        assert len(rewritten) == len(crowded)
    out = floe.finished(proc)
    assert floe.summary_value(out, "commit conflicts") == 1
    assert floe.summary_value(out, "replaced") == len(to_change) == 48
    assert floe.summary_value(out, "rows deleted") == 48

    want = expected_for([a_path, b_path])
    for key in to_delete:
        del want[key]
    got = by_key(pyiceberg_rows(tmp_warehouse, EVENTS))  # raises on a second live row
    assert {k: as_model_row(r) for k, r in got.items()} == want
    assert duckdb_query(tmp_warehouse, EVENTS, "SELECT count(*) AS n, count(DISTINCT event_uuid) AS k FROM t") == [
        {"n": len(want), "k": len(want)}
    ]
    assert spark_sql(spark, tmp_warehouse, "SELECT count(*) AS n, count(DISTINCT event_uuid) AS k FROM {table}") == [
        {"n": len(want), "k": len(want)}
    ]
    # Only position deletes, one per replaced row, none into a removed file.
    table = pyiceberg_catalog(tmp_warehouse).load_table(EVENTS)
    deletes = [f for f in table.inspect.files().to_pylist() if f["content"] != 0]
    assert {f["content"] for f in deletes} == {1}
    assert sum(f["record_count"] for f in deletes) == 48
    live = {f["file_path"] for f in table.inspect.files().to_pylist() if f["content"] == 0}
    targets = {
        path
        for f in deletes
        for path in pq.read_table(f["file_path"].removeprefix("file://"), columns=["file_path"]).column(0).to_pylist()
    }
    assert targets <= live and not targets & rewritten


def test_late_events_beyond_the_window_are_probed_in_the_table(tmp_path, tmp_warehouse):
    # Half a year old: outside the 7-day key index, so every lookup goes to
    # the table (partition, created_datetime bounds, bloom filter on event_uuid).
    old = {"start": int(time.time()) - 200 * DAY, "days": 3}
    # A duplicate keeps its original's created_at (DESIGN section 6), so no
    # correction here moves to another day: the probe looks in one partition.
    inputs, plan = build_runs(tmp_path, seed=111, when=old, moved=0)
    outs = []
    logs = []
    for path in inputs:
        result = floe.run(
            "run", "--input", str(path), "--warehouse", str(tmp_warehouse.root), "--flush-size", "256KiB",
            "--log-format", "json", FLOE_LOG="floe=info",
        )
        outs.append(result.stdout)
        logs += [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    assert_runs_as_planned(outs, inputs, plan, tmp_warehouse)
    files = table_files(tmp_warehouse)
    assert sum(n for content, n in files if content == 1) == plan["b_replaced"] + plan["c_replaced"]

    probes = [l["fields"] for l in logs if "probed the table" in l["fields"].get("message", "")]
    assert probes, "late rows were looked up in the table"
    checks = sum(p["bloom_checks"] for p in probes)
    read = sum(p["files_read"] for p in probes)
    assert 0 < read < checks, f"bloom filters ruled out files: {read} read of {checks} checked"


def test_random_streams_across_random_commits_and_restarts_match_a_reference_model(tmp_path):
    """Property test: whatever the mix of new keys, identical and changed
    duplicates (including re-sends of superseded versions), and wherever
    commits and restarts fall, the table ends as the reference model says."""
    for seed in (1, 2, 3):
        rng = random.Random(seed)
        wh_root = tmp_path / f"wh{seed}"
        pool = valid_lines(
            floe.generate(tmp_path / f"pool{seed}.jsonl", 400, seed=300 + seed, dup_rate=0, changed_dup_rate=0, bad_rate=0, **RECENT)
        )
        versions: dict[str, list[bytes]] = {}
        stream: list[bytes] = []
        for _ in range(1_500):
            action = rng.random()
            if not versions or action < 0.5:
                line = pool[len(versions) % len(pool)] if len(versions) < len(pool) else rng.choice(pool)
                key = json.loads(line)["event_uuid"]
                versions.setdefault(key, [line])
                stream.append(versions[key][-1] if action < 0.5 else line)
            else:
                key = rng.choice(sorted(versions))
                if action < 0.7:
                    stream.append(versions[key][-1])  # identical to the latest version
                elif action < 0.8:
                    stream.append(rng.choice(versions[key]))  # any earlier version
                else:
                    line = changed(versions[key][-1])
                    versions[key].append(line)
                    stream.append(line)
        # Random restarts (one file per run) and random commit boundaries.
        cuts = sorted(rng.sample(range(1, len(stream)), 3))
        runs = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)])]
        inputs = [write(tmp_path / f"s{seed}-run{i}.jsonl", lines) for i, lines in enumerate(runs)]
        for path in inputs:
            flush = rng.choice(["2KiB", "8KiB", "32KiB", "1MiB"])
            floe.run("run", "--input", str(path), "--warehouse", str(wh_root), "--flush-size", flush)

        # The reference: key to latest body. (Which line of identical bodies a
        # row comes from depends on where flushes fall: a version superseded
        # and re-sent within one flush never reaches the table.)
        latest = {}
        for line in stream:
            row = next(iter(expected_from_bytes(line, "s").rows.values()))
            latest[row["event_uuid"]] = body(row)
        wh = Warehouse(wh_root)
        got = by_key(pyiceberg_rows(wh, EVENTS))
        assert {k: body(as_model_row(r)) for k, r in got.items()} == latest, f"seed {seed}"
        live = latest
        files = table_files(wh)
        assert sum(n for c, n in files if c == 0) - sum(n for c, n in files if c == 1) == len(live), f"seed {seed}"


def test_a_small_index_memory_budget_changes_cost_not_results(tmp_path, tmp_warehouse):
    # 64 KiB holds ~1,500 keys: the index keeps the newest day, older rows are
    # probed in the table; the outcome is the same as with a roomy index.
    # (No day-moving corrections: outside the index they are not found, see README.)
    inputs, plan = build_runs(tmp_path, seed=121, moved=0)
    outs = run_all(inputs, tmp_warehouse, "--index-memory", "64KiB")
    assert_runs_as_planned(outs, inputs, plan, tmp_warehouse)
