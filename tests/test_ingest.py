"""End to end: `floe run` on generated events, checked with PyIceberg, DuckDB and
Spark against the independent model in support/expected.py.

Each test has its own warehouse; the Spark session is shared (see conftest).
"""

from __future__ import annotations

import collections
import datetime
import gzip
import signal

import pytest

from support import floe
from support.expected import expected_from_file
from support.readers import (
    as_model_row,
    by_key,
    duckdb_query,
    pyiceberg_catalog,
    pyiceberg_rows,
    spark_sql,
)

EVENTS = "analytics.events"
REJECTED = "analytics.events_rejected"
REASONS = {
    "invalid_json",
    "not_object",
    "bad_event_uuid",
    "bad_event_name",
    "bad_created_at",
    "created_at_out_of_range",
    "too_large",
}
RAW_KEPT = 64 * 1024
EPOCH = datetime.date(1970, 1, 1)


def mismatches(got: dict, want: dict, limit: int = 5) -> list:
    """Up to `limit` keys whose values differ (readable failures on big tables)."""
    out = []
    for key in sorted(set(got) | set(want)):
        if got.get(key) != want.get(key):
            out.append((key, got.get(key), want.get(key)))
            if len(out) == limit:
                break
    return out


def rejected_expectation(exp) -> list[tuple[str, str, bytes]]:
    """(reason, line, raw) as Floe stores them: oversized records keep their head."""
    return [
        (reason, position, raw[:RAW_KEPT] if reason == "too_large" else raw)
        for reason, position, raw in exp.rejected
    ]


def test_ingest_matches_the_model_in_three_readers(spark, tmp_path, tmp_warehouse):
    events = tmp_path / "events.jsonl"
    floe.generate(events, 100_000, seed=11, days=5, bad_rate=0.004)
    with open(events, "ab") as f:
        f.write(b"\n   \n")  # blank lines are not records
        f.write(b'{"event_uuid":"crlf-1","event_name":"x:y:z","created_at":1780000000.5,"k":[1, 2]}\r\n')
        f.write(b'{"event_uuid":"crlf-1","event_name":"x:y:z","created_at":1780000000.5,"k":[3]}\n')
    started = datetime.datetime.now(datetime.timezone.utc)
    out = floe.run("run", "--input", str(events), "--warehouse", str(tmp_warehouse.root)).stdout
    finished = datetime.datetime.now(datetime.timezone.utc)
    exp = expected_from_file(events, source_id=str(events))

    # The input exercises every reject reason and both kinds of duplicates.
    assert set(exp.rejected_by_reason) == REASONS
    assert exp.duplicates > 2_000

    # The run summary counts exactly what the model counts.
    assert floe.summary_value(out, "records read") == exp.valid + len(exp.rejected)
    assert floe.summary_value(out, "rows written") == len(exp.rows)
    assert floe.summary_value(out, "duplicates dropped") == exp.duplicates
    assert floe.summary_value(out, "rejected") == len(exp.rejected)
    assert floe.summary_value(out, "blank lines") == 2
    for reason, n in exp.rejected_by_reason.items():
        assert floe.summary_value(out, reason) == n, reason

    # PyIceberg: every row, every column, exactly once per key.
    rows = pyiceberg_rows(tmp_warehouse, EVENTS)
    assert len(rows) == len(exp.rows)
    got = by_key(rows)  # raises on a duplicate key
    assert all(started <= r["_ingested_at"] <= finished for r in rows)
    assert mismatches({k: as_model_row(r) for k, r in got.items()}, exp.rows) == []
    assert as_model_row(got["crlf-1"])["payload"] == {"k": [3]}, "the last duplicate wins"

    # DuckDB: counts per (day, event_type) and one row per key.
    counts = duckdb_query(
        tmp_warehouse,
        EVENTS,
        "SELECT epoch_us(created_datetime) // 86400000000 AS day, event_type,"
        " count(*) AS n, count(DISTINCT event_uuid) AS k FROM t GROUP BY ALL",
    )
    assert all(r["n"] == r["k"] for r in counts)
    assert {(EPOCH + datetime.timedelta(days=r["day"]), r["event_type"]): r["n"] for r in counts} == dict(
        exp.counts_by_day_type
    )

    # Spark, through its JDBC catalog on the same SQLite file.
    counts = spark_sql(
        spark,
        tmp_warehouse,
        "SELECT to_date(created_datetime) AS day, event_type, count(*) AS n,"
        " count(DISTINCT event_uuid) AS k FROM {table} GROUP BY 1, 2",
    )
    assert all(r["n"] == r["k"] for r in counts)
    assert {(r["day"], r["event_type"]): r["n"] for r in counts} == dict(exp.counts_by_day_type)
    sample = sorted(exp.rows)[::3_000] + ["crlf-1"]
    quoted = ", ".join(f"'{k}'" for k in sample)
    sampled = spark_sql(spark, tmp_warehouse, f"SELECT * FROM {{table}} WHERE event_uuid IN ({quoted})")
    assert {r["event_uuid"]: as_model_row(r) for r in sampled} == {k: exp.rows[k] for k in sample}

    # The rejected table: every bad record with its reason, line and bytes.
    rejected = sorted(
        (r["reason"], r["_source_position"], r["raw"]) for r in pyiceberg_rows(tmp_warehouse, REJECTED)
    )
    assert rejected == sorted(rejected_expectation(exp))
    assert all(r["_source_id"] == str(events) for r in pyiceberg_rows(tmp_warehouse, REJECTED))
    by_reason = duckdb_query(tmp_warehouse, REJECTED, "SELECT reason, count(*) AS n FROM t GROUP BY reason")
    assert {r["reason"]: r["n"] for r in by_reason} == dict(exp.rejected_by_reason)
    by_reason = spark_sql(
        spark, tmp_warehouse, "SELECT reason, count(*) AS n FROM {rejected} GROUP BY reason", rejected=REJECTED
    )
    assert {r["reason"]: r["n"] for r in by_reason} == dict(exp.rejected_by_reason)

    # The snapshot summary carries the standard totals and Floe's counters.
    catalog = pyiceberg_catalog(tmp_warehouse)
    summary = catalog.load_table(EVENTS).current_snapshot().summary
    assert summary.operation.value == "append"
    assert int(summary["total-records"]) == len(exp.rows)
    assert int(summary["added-records"]) == len(exp.rows)
    assert int(summary["floe.records-read"]) == exp.valid + len(exp.rejected)
    assert int(summary["floe.rows-written"]) == len(exp.rows)
    assert int(summary["floe.duplicates-dropped"]) == exp.duplicates
    for reason, n in exp.rejected_by_reason.items():
        assert int(summary[f"floe.rejected.{reason}"]) == n
    assert str(events.resolve()) in summary["floe.checkpoint"]

    # The table is laid out as the contract says.
    table = catalog.load_table(EVENTS)
    assert [(f.name, str(f.transform)) for f in table.spec().fields] == [
        ("created_datetime_day", "day"),
        ("event_type", "identity"),
    ]
    assert table.schema().identifier_field_ids == [1]
    assert table.metadata.format_version == 2
    assert [table.schema().find_field(f.source_id).name for f in table.sort_order().fields] == [
        "event_type",
        "created_datetime",
    ]


def test_rerun_adds_nothing(tmp_path, tmp_warehouse):
    events = floe.generate(tmp_path / "e.jsonl", 3_000, seed=3)
    first = floe.run("run", "--input", str(events), "--warehouse", str(tmp_warehouse.root)).stdout
    before = tmp_warehouse.metadata_location(EVENTS)
    again = floe.run("run", "--input", str(events), "--warehouse", str(tmp_warehouse.root)).stdout
    assert floe.summary_value(first, "records read") == 3_000
    assert floe.summary_value(again, "records read") == 0
    assert floe.summary_value(again, "rows written") == 0
    assert tmp_warehouse.metadata_location(EVENTS) == before, "no new snapshot"
    exp = expected_from_file(events)
    assert len(pyiceberg_rows(tmp_warehouse, EVENTS)) == len(exp.rows)
    assert len(pyiceberg_rows(tmp_warehouse, REJECTED)) == len(exp.rejected)


def metadata_version(location: str) -> int:
    """`.../metadata/00007-<uuid>.metadata.json` -> 7."""
    return int(location.rsplit("/", 1)[1].split("-", 1)[0])


def events_version(wh) -> int:
    try:
        return metadata_version(wh.metadata_location(EVENTS))
    except (LookupError, OSError):
        return -1
    except Exception:  # the catalog file may be mid-creation
        return -1


def test_resume_after_sigkill_keeps_each_record_once(tmp_path, tmp_warehouse):
    events = floe.generate(tmp_path / "e.jsonl", 60_000, seed=5, dup_rate=0, changed_dup_rate=0, bad_rate=0.002)
    exp = expected_from_file(events)
    args = ("run", "--input", str(events), "--warehouse", str(tmp_warehouse.root), "--flush-size", "192KiB")
    proc = floe.start(*args)
    try:
        floe.wait_for(lambda: events_version(tmp_warehouse) >= 4, 120, "three commits", interval=0.01)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    partial = len(pyiceberg_rows(tmp_warehouse, EVENTS))
    assert 0 < partial < len(exp.rows), "the kill must land mid-run"

    out = floe.run(*args).stdout
    assert floe.summary_value(out, "records read") < exp.valid + len(exp.rejected), "resumed, not restarted"
    rows = pyiceberg_rows(tmp_warehouse, EVENTS)
    assert len(rows) == len(exp.rows) == exp.valid
    assert set(by_key(rows)) == set(exp.rows)
    rejected = sorted((r["reason"], r["_source_position"]) for r in pyiceberg_rows(tmp_warehouse, REJECTED))
    assert rejected == sorted((reason, pos) for reason, pos, _ in exp.rejected)
    count = duckdb_query(tmp_warehouse, EVENTS, "SELECT count(*) AS n, count(DISTINCT event_uuid) AS k FROM t")
    assert count == [{"n": len(exp.rows), "k": len(exp.rows)}]


# Each flush passes the first four points twice (rejected table, then events)
# and the last once: these hits all fall in the second flush, after one
# complete flush landed.
FAIL_POINT_HIT = dict.fromkeys(floe.FAIL_POINTS, 4) | {"before-positions-advance": 2}


@pytest.mark.parametrize("point", floe.FAIL_POINTS)
def test_death_at_each_fail_point_then_restart_keeps_each_record_once(point, tmp_path, tmp_warehouse):
    events = floe.generate(
        tmp_path / "e.jsonl", 8_000, seed=17, dup_rate=0.02, changed_dup_rate=0.01, bad_rate=0.01
    )
    exp = expected_from_file(events)
    args = ("run", "--input", str(events), "--warehouse", str(tmp_warehouse.root), "--flush-size", "256KiB")
    died = floe.run(*args, check=False, FLOE_FAILPOINT=f"{point}@{FAIL_POINT_HIT[point]}")
    assert died.returncode == -signal.SIGKILL, died.stderr
    assert f"fail point {point} reached" in died.stderr

    out = floe.run(*args).stdout
    assert 0 < floe.summary_value(out, "records read") < exp.valid + len(exp.rejected), "resumed, not restarted"
    got = by_key(pyiceberg_rows(tmp_warehouse, EVENTS))  # raises on a second live row
    assert mismatches({k: as_model_row(r) for k, r in got.items()}, exp.rows) == []
    rejected = sorted((r["reason"], r["_source_position"]) for r in pyiceberg_rows(tmp_warehouse, REJECTED))
    assert rejected == sorted((reason, pos) for reason, pos, _ in exp.rejected)
    count = duckdb_query(tmp_warehouse, EVENTS, "SELECT count(*) AS n, count(DISTINCT event_uuid) AS k FROM t")
    assert count == [{"n": len(exp.rows), "k": len(exp.rows)}]


def test_a_bad_fail_point_is_a_configuration_error(tmp_path, tmp_warehouse):
    events = floe.generate(tmp_path / "e.jsonl", 10, seed=1)
    out = floe.run("run", "--input", str(events), "--warehouse", str(tmp_warehouse.root), check=False, FLOE_FAILPOINT="after-lunch")
    assert out.returncode == 2
    assert "FLOE_FAILPOINT=after-lunch: unknown fail point `after-lunch`" in out.stderr
    assert not (tmp_warehouse.root / "analytics").exists()


def test_concurrent_writers_both_commit_everything(tmp_path, tmp_warehouse):
    inputs = [
        floe.generate(tmp_path / f"e{i}.jsonl", 20_000, seed=100 + i, dup_rate=0, changed_dup_rate=0, bad_rate=0.001)
        for i in range(2)
    ]
    procs = [
        floe.start("run", "--input", str(p), "--warehouse", str(tmp_warehouse.root), "--flush-size", "128KiB")
        for p in inputs
    ]
    outputs = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err.decode()
        outputs.append(out.decode())
    expected = [expected_from_file(p) for p in inputs]
    rows = pyiceberg_rows(tmp_warehouse, EVENTS)
    want = {k for e in expected for k in e.rows}
    assert len(rows) == len(want) == sum(len(e.rows) for e in expected)
    assert set(by_key(rows)) == want
    assert len(pyiceberg_rows(tmp_warehouse, REJECTED)) == sum(len(e.rejected) for e in expected)
    # Both writers' snapshots are in one linear history.
    snapshots = pyiceberg_catalog(tmp_warehouse).load_table(EVENTS).snapshots()
    committed = sum(int(o.split("snapshots")[1].split("+")[0]) for o in outputs)
    assert len(snapshots) == committed
    conflicts = sum(floe.summary_value(o, "commit conflicts") for o in outputs)
    print(f"{len(snapshots)} snapshots, {conflicts} commit conflicts retried")


def test_stdin_gzip_and_globs(tmp_path, tmp_warehouse):
    plain = floe.generate(tmp_path / "a.jsonl", 2_000, seed=21)
    gz = tmp_path / "b.jsonl.gz"
    floe.generate(gz, 2_000, seed=22)
    assert gzip.decompress(gz.read_bytes()).count(b"\n") == 2_000
    piped = floe.generate(tmp_path / "c.data", 1_000, seed=23)
    out = floe.run(
        "run",
        "--input",
        str(tmp_path / "*.jsonl*"),
        "--input",
        "-",
        "--warehouse",
        str(tmp_warehouse.root),
        stdin=piped.read_bytes(),
    ).stdout
    exps = {str(plain): expected_from_file(plain), str(gz): expected_from_file(gz), "-": expected_from_file(piped, "-")}
    assert floe.summary_value(out, "records read") == 5_000
    rows = pyiceberg_rows(tmp_warehouse, EVENTS)
    by_source = collections.Counter(r["_source_id"] for r in rows)
    assert by_source == {source: len(e.rows) for source, e in exps.items()}


def test_configuration_errors_are_reported_together(tmp_path):
    result = floe.run("run", "--flush-size", "12 parsecs", "--zstd-level", "99", check=False)
    assert result.returncode == 2
    for part in ("input: give input files (--input, FLOE_INPUT) or a Kinesis stream", "warehouse: a folder or s3:// URI is required", "flush_size:", "zstd_level: 99"):
        assert part in result.stderr
    missing = floe.run("run", "--input", str(tmp_path / "nope*.jsonl"), "--warehouse", str(tmp_path), check=False)
    assert missing.returncode == 1
    assert "matches no file" in missing.stderr
    config = tmp_path / "floe.toml"
    config.write_text('warehouse = "w"\nflush_sise = "1MiB"\n')
    bad_file = floe.run("run", "--config", str(config), check=False)
    assert bad_file.returncode == 2
    assert "unknown field `flush_sise`" in bad_file.stderr


def test_environment_and_config_file_set_options(tmp_path, tmp_warehouse):
    events = floe.generate(tmp_path / "e.jsonl", 1_000, seed=31)
    config = tmp_path / "floe.toml"
    config.write_text(f'input = ["{events}"]\ntable = "other.events"\nzstd_level = 5\n')
    out = floe.run(
        "run", "--config", str(config), FLOE_WAREHOUSE=str(tmp_warehouse.root), FLOE_REJECTED_TABLE="other.bad"
    ).stdout
    assert floe.summary_value(out, "records read") == 1_000
    exp = expected_from_file(events)
    assert len(pyiceberg_rows(tmp_warehouse, "other.events")) == len(exp.rows)
    assert len(pyiceberg_rows(tmp_warehouse, "other.bad")) == len(exp.rejected)


def test_demo_and_inspect(tmp_path):
    out = floe.run("demo", str(tmp_path / "demo"), "--events", "20000").stdout
    written = floe.summary_value(out, "rows written")
    assert floe.summary_value(out, "records read") == 20_000
    assert floe.summary_value(out, "total") == written
    assert "Rows by day and event_type (read back from analytics.events)" in out

    wh = tmp_path / "demo" / "warehouse"
    inspect = floe.run("inspect", "--warehouse", str(wh)).stdout
    for part in (
        "1  event_uuid           string       required, identifier",
        "created_datetime_day  = day(created_datetime)",
        "event_type  = identity(event_type)",
        "floe.rows-written = " + str(written),
        "Files per partition:",
    ):
        assert part in inspect, part
    files_total = inspect.split("Files per partition:")[1].strip().splitlines()[-1].split()
    assert files_total[0] == "total" and int(files_total[2].replace(",", "")) == written

    missing = floe.run("inspect", "--warehouse", str(tmp_path / "none"), check=False)
    assert missing.returncode == 1 and "not a Floe warehouse" in missing.stderr


def test_record_size_limit_is_configurable(tmp_path, tmp_warehouse):
    events = floe.generate(tmp_path / "e.jsonl", 2_000, seed=41, bad_rate=0)
    out = floe.run("run", "--input", str(events), "--warehouse", str(tmp_warehouse.root), "--max-record-size", "400")
    exp = expected_from_file(events, max_record_size=400)
    assert 0 < exp.rejected_by_reason["too_large"] < 1_000
    assert floe.summary_value(out.stdout, "too_large") == exp.rejected_by_reason["too_large"]
    assert len(pyiceberg_rows(tmp_warehouse, EVENTS)) == len(exp.rows)
    raw = sorted((r["_source_position"], r["raw"]) for r in pyiceberg_rows(tmp_warehouse, REJECTED))
    assert raw == sorted((pos, line) for _, pos, line in exp.rejected)


def test_big_partitions_are_split_near_the_target_file_size(tmp_path, tmp_warehouse):
    events = floe.generate(tmp_path / "e.jsonl", 30_000, seed=51, days=1)
    target = 64 * 1024
    floe.run(
        "run", "--input", str(events), "--warehouse", str(tmp_warehouse.root), "--target-file-size", str(target)
    )
    exp = expected_from_file(events)
    table = pyiceberg_catalog(tmp_warehouse).load_table(EVENTS)
    files = list(table.inspect.files().to_pylist())
    per_partition = collections.Counter((f["partition"]["created_datetime_day"], f["partition"]["event_type"]) for f in files)
    assert len(per_partition) == len(exp.counts_by_day_type)
    assert max(per_partition.values()) > 1, "the largest partitions span several files"
    assert sum(f["record_count"] for f in files) == len(exp.rows)
    # Sized from the first guess of the compression ratio: near, not exact.
    assert max(f["file_size_in_bytes"] for f in files) < 4 * target
    assert len(pyiceberg_rows(tmp_warehouse, EVENTS)) == len(exp.rows)


def test_sigterm_commits_what_was_read_and_exits_cleanly(tmp_path, tmp_warehouse):
    events = floe.generate(tmp_path / "e.jsonl", 60_000, seed=61, dup_rate=0, changed_dup_rate=0)
    exp = expected_from_file(events)
    args = ("run", "--input", str(events), "--warehouse", str(tmp_warehouse.root), "--flush-size", "192KiB")
    proc = floe.start(*args)
    try:
        floe.wait_for(lambda: events_version(tmp_warehouse) >= 3, 120, "two commits", interval=0.01)
        proc.send_signal(signal.SIGTERM)
        # Floe's own shutdown deadline (90 s by default) decides; this only bounds the wait.
        out, err = proc.communicate(timeout=floe.TIMEOUT)
    finally:
        proc.kill()
    assert proc.returncode == 0, err.decode()
    out = out.decode()
    assert "stopped early by a shutdown signal" in out
    written = floe.summary_value(out, "rows written")
    assert 0 < written < len(exp.rows), "the signal must land mid-run"
    # Everything the summary reports as written is committed, nothing more.
    assert len(pyiceberg_rows(tmp_warehouse, EVENTS)) == written
    floe.run(*args)
    rows = pyiceberg_rows(tmp_warehouse, EVENTS)
    assert len(rows) == len(exp.rows)
    assert set(by_key(rows)) == set(exp.rows)
