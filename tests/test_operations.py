"""The operations port over a real socket while Floe ingests: /metrics
agrees with the snapshot summaries PyIceberg reads, with the rows DuckDB
counts and with the run summary; /health/ready follows the catalog (Glue on
moto behind a gate the test closes and opens); `floe health` and
`floe run --check-config` answer as the container and Terraform expect.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator

import pytest

from support import aws, floe, ops
from support.expected import expected_from_file
from support.readers import duckdb_query, glue_catalog, glue_rows, local_path, pyiceberg_catalog
from support.streams import STREAM, put

EVENTS = "analytics.events"
REJECTED = "analytics.events_rejected"
BUCKET = "lake"

moto = pytest.fixture(aws.moto_fixture)

# Events whose event_name has no second part: event_subtype is missing.
NO_SUBTYPE = [
    json.dumps({"event_uuid": f"legacy-{i}", "event_name": "legacy", "created_at": 1_700_000_000 + i}).encode() + b"\n"
    for i in range(7)
]


@contextlib.contextmanager
def running(*args: str, **env: str) -> Iterator[tuple[subprocess.Popen, ops.LogReader, str]]:
    """`floe run ARGS` with the operations port on a free port and JSON logs
    (stdin a pipe, for `--input -`): the process, its log and the port's
    address. Killed on the way out if still running."""
    proc = subprocess.Popen(
        [floe.BIN, "run", "--metrics-addr", "127.0.0.1:0", "--log-format", "json", *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=floe.env(FLOE_LOG="info", **env),
    )
    try:
        log = ops.LogReader(proc.stderr)
        yield proc, log, ops.serving_address(log, proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def send(proc: subprocess.Popen, lines: list[bytes]) -> None:
    assert proc.stdin is not None
    proc.stdin.write(b"".join(lines))
    proc.stdin.flush()


def finish(proc: subprocess.Popen) -> str:
    """Ends the input and returns what Floe printed (its run summary); the
    log reader keeps reading stderr."""
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.close()
    out = proc.stdout.read().decode()
    proc.wait(timeout=floe.TIMEOUT)
    return out


def wait_committed(proc: subprocess.Popen, addr: str, records: int) -> ops.Metrics:
    """Scrapes until every one of `records` has its outcome committed and
    the commit is done: a commit updates the metrics in steps (the counts,
    the newest event time, then the buffer emptied), and a scrape can land
    between them, the later the more often on a busy machine. The buffer
    emptied comes last, so its 0 is awaited too."""
    seen: dict[str, ops.Metrics] = {}

    def done() -> bool:
        seen["m"] = ops.scrape(addr)
        return (
            ops.value(seen["m"], "floe_records_committed_total") == records
            and ops.value(seen["m"], "floe_buffered_records") == 0
        ) or floe.exited(proc)

    floe.wait_for(done, floe.TIMEOUT, lambda: f"{records} records committed and none buffered, /metrics says "
                  f"{ops.value(seen.get('m', {}), 'floe_records_committed_total')} committed, "
                  f"{ops.value(seen.get('m', {}), 'floe_buffered_records')} buffered", interval=0.1)
    return seen["m"]


def missing_subtypes(lines: list[bytes], rejected_raw: set[bytes]) -> dict[tuple[str, str], float]:
    """Valid records without a second `:`-part of event_name, by event type."""
    out: Counter = Counter()
    for line in lines:
        raw = line.rstrip(b"\r\n")
        if not raw.strip() or raw in rejected_raw:
            continue
        parts = json.loads(raw)["event_name"].split(":")
        if len(parts) < 2 or not parts[1]:
            out[(parts[0], "event_subtype")] += 1
    return {k: float(v) for k, v in out.items()}


def summaries(wh, ident: str) -> list[dict[str, str]]:
    """Each snapshot's summary, oldest first, read by PyIceberg."""
    catalog = pyiceberg_catalog(wh)
    try:
        snapshots = catalog.load_table(ident).snapshots()
    finally:
        catalog.close()
    return [dict(s.summary.additional_properties) for s in sorted(snapshots, key=lambda s: s.sequence_number)]


def summed(snapshots: list[dict[str, str]], key: str) -> int:
    return sum(int(s.get(key, 0)) for s in snapshots)


def test_metrics_during_an_ingest_equal_snapshots_readers_and_run_summary(tmp_path, tmp_warehouse):
    events = floe.generate(tmp_path / "e.jsonl", 4_000, seed=61, bad_rate=0.01, dup_rate=0.03, changed_dup_rate=0.02)
    lines = events.read_bytes().splitlines(keepends=True)
    exp = expected_from_file(events)
    first, second = lines[:2_000] + NO_SUBTYPE, lines[2_000:]

    with running(
        "--input", "-", "--warehouse", str(tmp_warehouse.root), "--flush-interval", "200ms", "--emf-namespace", "Floe",
    ) as (proc, log, addr):
        assert ops.get(addr, "/health/live") == (200, "text/plain", "live\n")
        floe.wait_for(lambda: ops.get(addr, "/health/ready")[0] == 200 or floe.exited(proc), floe.TIMEOUT, "ready")
        assert ops.get(addr, "/health/ready")[2] == "ready\n"
        assert ops.get(addr, "/nothing")[0] == 404

        # Half of the input, then the metrics against what the readers see.
        send(proc, first)
        m = wait_committed(proc, addr, len(first))
        assert ops.value(m, "floe_ready") == 1
        assert ops.value(m, "floe_records_read_total") == len(first)
        snaps = summaries(tmp_warehouse, EVENTS)
        assert ops.value(m, "floe_snapshots_total", table=EVENTS) == len(snaps)
        for metric, key, labels in [
            ("floe_records_committed_total", "floe.records-read", {}),
            ("floe_rows_written_total", "floe.rows-written", {}),
            ("floe_rows_deleted_total", "floe.rows-deleted", {}),
            ("floe_duplicates_total", "floe.duplicates-identical", {"kind": "identical"}),
            ("floe_duplicates_total", "floe.duplicates-replaced", {"kind": "replaced"}),
            ("floe_duplicates_total", "floe.duplicates-skipped", {"kind": "skipped"}),
            ("floe_blank_lines_total", "floe.blank-lines", {}),
        ]:
            assert ops.value(m, metric, **labels) == summed(snaps, key), (metric, labels)
        rejected_by_reason = {k: v for k, v in ops.by_label(m, "floe_rejected_total", "reason").items() if v}
        assert rejected_by_reason == {
            key.removeprefix("floe.rejected."): float(summed(snaps, key))
            for key in {k for s in snaps for k in s if k.startswith("floe.rejected.")}
        }
        assert sum(rejected_by_reason.values()) > 0
        missing = {(dict(l)["event_type"], dict(l)["field"]): v for (n, l), v in m.items() if n == "floe_missing_fields_total"}
        rejected_raw = {raw for _, _, raw in exp.rejected}
        assert missing == missing_subtypes(first, rejected_raw)
        assert missing[("legacy", "event_subtype")] == 7
        assert {k: float(summed(snaps, f"floe.missing.{k[0]}:{k[1]}")) for k in missing} == missing

        # Files and bytes: the table's own totals (nothing was ever removed).
        current = snaps[-1]
        assert ops.value(m, "floe_files_written_total", table=EVENTS) == int(current["total-data-files"]) + int(current["total-delete-files"])
        assert ops.value(m, "floe_bytes_written_total", table=EVENTS) == int(current["total-files-size"])
        rejected_snaps = summaries(tmp_warehouse, REJECTED)
        assert ops.value(m, "floe_snapshots_total", table=REJECTED) == len(rejected_snaps)
        assert ops.value(m, "floe_files_written_total", table=REJECTED) == int(rejected_snaps[-1]["total-data-files"])
        assert ops.value(m, "floe_bytes_written_total", table=REJECTED) == int(rejected_snaps[-1]["total-files-size"])

        # What readers plan through: the current metadata file's bytes and
        # the current snapshot's manifests, as the catalog and PyIceberg see them.
        location = tmp_warehouse.metadata_location(EVENTS)
        assert ops.value(m, "floe_metadata_bytes", table=EVENTS) == os.path.getsize(local_path(location))
        catalog = pyiceberg_catalog(tmp_warehouse)
        try:
            manifest_count = len(catalog.load_table(EVENTS).inspect.manifests())
        finally:
            catalog.close()
        assert ops.value(m, "floe_manifests", table=EVENTS) == manifest_count > 0

        # Rows and freshness against DuckDB.
        [row] = duckdb_query(tmp_warehouse, EVENTS, "SELECT count(*) AS n, max(epoch_us(created_datetime)) AS newest FROM t")
        assert ops.value(m, "floe_rows_written_total") - ops.value(m, "floe_rows_deleted_total") == row["n"]
        assert ops.value(m, "floe_newest_committed_event_timestamp_seconds") == row["newest"] / 1e6
        assert ops.value(m, "floe_freshness_seconds") >= 0
        assert ops.value(m, "floe_buffered_records") == 0
        commits = ops.value(m, "floe_commit_duration_seconds_count", table=EVENTS)
        assert commits == len(snaps)
        assert ops.value(m, "floe_commit_duration_seconds_bucket", table=EVENTS, le="+Inf") == commits

        # The rest, then the run summary against the last scrape.
        send(proc, second)
        m = wait_committed(proc, addr, len(first) + len(second))
        out = finish(proc)
        assert proc.returncode == 0, log.drain()
    assert ops.value(m, "floe_records_read_total") == exp.valid + len(exp.rejected) + len(NO_SUBTYPE)
    for label, metric, labels in [
        ("records read", "floe_records_committed_total", {}),
        ("rows written", "floe_rows_written_total", {}),
        ("identical", "floe_duplicates_total", {"kind": "identical"}),
        ("replaced", "floe_duplicates_total", {"kind": "replaced"}),
        ("rows deleted", "floe_rows_deleted_total", {}),
        ("rejected", None, {}),
    ]:
        got = sum(ops.by_label(m, "floe_rejected_total", "reason").values()) if metric is None else ops.value(m, metric, **labels)
        assert floe.summary_value(out, label) == got, label
    for reason, n in exp.rejected_by_reason.items():
        assert ops.value(m, "floe_rejected_total", reason=reason) == n
        assert floe.summary_value(out, reason) == n
    files = ops.by_label(m, "floe_files_written_total", "table")
    assert floe.summary_value(out, "files written") == sum(files.values())
    assert f"snapshots {ops.value(m, 'floe_snapshots_total', table=EVENTS):.0f} + {ops.value(m, 'floe_snapshots_total', table=REJECTED):.0f}" in " ".join(out.split())
    # One CloudWatch EMF line per events commit on stdout, adding up to the
    # same counts, then one per reject reason of that commit.
    lines_emf = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    emf = [e for e in lines_emf if e["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["Table"]]]
    by_reason = [e for e in lines_emf if e["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["Table", "Reason"]]]
    assert len(emf) + len(by_reason) == len(lines_emf)
    assert len(emf) == ops.value(m, "floe_snapshots_total", table=EVENTS)
    rejected_emf = Counter()
    for e in by_reason:
        rejected_emf[e["Reason"]] += e["Rejected"]
    assert rejected_emf == Counter({r: float(n) for r, n in exp.rejected_by_reason.items() if n})
    assert all(e["Manifests"] >= 1 and e["MetadataBytes"] > 0 and e["CommitConflicts"] == 0 for e in emf)
    assert {e["_aws"]["CloudWatchMetrics"][0]["Namespace"] for e in emf} == {"Floe"}
    assert {e["Table"] for e in emf} == {EVENTS}
    for name, metric in [
        ("RecordsRead", "floe_records_committed_total"),
        ("RowsCommitted", "floe_rows_written_total"),
        ("Duplicates", None),
        ("Rejected", "floe_rejected_total"),
    ]:
        want = (
            sum(ops.by_label(m, metric, "reason").values()) if metric == "floe_rejected_total"
            else floe.summary_value(out, "duplicates dropped") if metric is None
            else ops.value(m, metric)
        )
        assert sum(e[name] for e in emf) == want, name
    assert all(e["FreshnessSeconds"] >= 0 and e["CommitSeconds"] >= 0 for e in emf)
    assert floe.summary_value(out, "missing optional fields") == sum(missing_subtypes(lines + NO_SUBTYPE, rejected_raw).values())


def test_readiness_follows_the_catalog_and_commits_wait_for_it(moto, tmp_path):
    """Glue is reached through a gate: closed, /health/ready says 503 and a
    commit waits (counted as a failure, nothing lost); open again, ready and
    every row lands exactly once."""
    moto.client("s3").create_bucket(Bucket=BUCKET)
    gate = ops.Gate(moto.port)
    events = floe.generate(tmp_path / "e.jsonl", 600, seed=62, bad_rate=0, dup_rate=0, changed_dup_rate=0)
    lines = events.read_bytes().splitlines(keepends=True)
    before, during = lines[:400], lines[400:]
    with contextlib.ExitStack() as stack:
        stack.callback(gate.close)
        proc, log, addr = stack.enter_context(running(
            "--input", "-", "--catalog", "glue", "--warehouse", f"s3://{BUCKET}/warehouse", "--s3-path-style",
            "--flush-interval", "200ms", **moto.env(), AWS_ENDPOINT_URL_GLUE=gate.endpoint,
        ))
        floe.wait_for(lambda: ops.get(addr, "/health/ready")[0] == 200 or floe.exited(proc), floe.TIMEOUT, "ready")
        send(proc, before)
        wait_committed(proc, addr, len(before))
        assert len(glue_rows(moto, EVENTS)) == len(before)

        gate.close()
        floe.wait_for(lambda: ops.get(addr, "/health/ready")[0] == 503 or floe.exited(proc), 60, "not ready while Glue is unreachable")
        assert ops.get(addr, "/health/ready")[1:] == ("text/plain", "not ready: the catalog cannot be reached\n")
        assert ops.get(addr, "/health/live")[0] == 200
        assert ops.value(ops.scrape(addr), "floe_ready") == 0
        # A flush while Glue is away: its commit is retried, not given up.
        send(proc, during)
        floe.wait_for(
            lambda: ops.value(ops.scrape(addr), "floe_commit_failures_total", table=EVENTS) >= 2 or floe.exited(proc),
            60, "failed commit attempts",
        )
        assert ops.value(ops.scrape(addr), "floe_records_committed_total") == len(before)
        assert len(glue_rows(moto, EVENTS)) == len(before)

        gate.open()
        floe.wait_for(lambda: ops.get(addr, "/health/ready")[0] == 200 or floe.exited(proc), 60, "ready again")
        m = wait_committed(proc, addr, len(lines))
        assert ops.value(m, "floe_ready") == 1
        out = finish(proc)
        assert proc.returncode == 0, log.drain()
    rows = glue_rows(moto, EVENTS)
    assert Counter(r["event_uuid"] for r in rows) == Counter(json.loads(l)["event_uuid"] for l in lines)
    assert floe.summary_value(out, "rows written") == len(lines)
    # Every record counted once across the commits, the retried one included.
    snapshots = glue_catalog(moto).load_table(EVENTS).snapshots()
    assert len(snapshots) == ops.value(m, "floe_snapshots_total", table=EVENTS)
    assert sum(int(s.summary.additional_properties["floe.records-read"]) for s in snapshots) == len(lines)
    messages = [json.loads(line)["fields"]["message"] for line in log.drain() if line.startswith("{")]
    assert messages.count("the catalog cannot be reached: not ready until it answers") == 1
    assert messages.count("the catalog answers again: ready") == 1
    assert "the catalog cannot be reached (or is busy); retrying the commit until it answers" in messages


def test_kinesis_iterator_age_per_shard(moto, tmp_path):
    """Reading a stream: one iterator-age sample per shard, 0 once caught up
    (moto's MillisBehindLatest), and the counts of what was put."""
    moto.client("s3").create_bucket(Bucket=BUCKET)
    moto.create_stream(STREAM, shards=3)
    events = floe.generate(tmp_path / "e.jsonl", 300, seed=63, bad_rate=0, dup_rate=0, changed_dup_rate=0)
    lines = events.read_bytes().splitlines(keepends=True)
    put(moto, lines)
    shards = {s["ShardId"] for s in moto.shards(STREAM)}
    with running(
        "--stream", STREAM, "--catalog", "glue", "--warehouse", f"s3://{BUCKET}/warehouse", "--s3-path-style",
        "--flush-interval", "200ms", **moto.env(),
    ) as (proc, log, addr):
        m = wait_committed(proc, addr, len(lines))
        assert ops.value(m, "floe_rows_written_total") == len(lines)
        assert ops.value(m, "floe_records_read_total") == len(lines)
        floe.wait_for(
            lambda: set(ops.by_label(ops.scrape(addr), "floe_iterator_age_seconds", "shard")) == shards or floe.exited(proc),
            floe.TIMEOUT, "an iterator age for every shard",
        )
        ages = ops.by_label(ops.scrape(addr), "floe_iterator_age_seconds", "shard")
        assert ages == {shard: 0.0 for shard in shards}
        proc.send_signal(signal.SIGTERM)
        out = proc.stdout.read().decode()
        assert proc.wait(timeout=floe.TIMEOUT) == 0, log.drain()
    assert floe.summary_value(out, "records read") == len(lines)
    assert len(glue_rows(moto, EVENTS)) == len(lines)


def test_floe_health_answers_for_the_container(tmp_path, tmp_warehouse):
    with running("--input", "-", "--warehouse", str(tmp_warehouse.root)) as (proc, log, addr):
        floe.wait_for(lambda: ops.get(addr, "/health/ready")[0] == 200 or floe.exited(proc), floe.TIMEOUT, "ready")
        live = floe.run("health", FLOE_METRICS_ADDR=addr)
        assert live.stdout == "live\n"
        ready = floe.run("health", "--ready", "--metrics-addr", addr.replace("127.0.0.1", "0.0.0.0"))
        assert ready.stdout == "ready\n"
        finish(proc)
    assert proc.returncode == 0
    gone = floe.run("health", "--metrics-addr", addr, check=False)
    assert gone.returncode == 1
    assert gone.stderr.startswith(f"floe health: http://{addr}/health/live: ")


def test_check_config_prints_settings_and_refuses_unknown_variables(tmp_path):
    ok = floe.run(
        "run", "--check-config", FLOE_STREAM="events", FLOE_WAREHOUSE="s3://lake/warehouse", FLOE_CATALOG="glue",
        FLOE_FLUSH_SIZE="64MiB", FLOE_METRICS_ADDR="0.0.0.0:9464", FLOE_EMF_NAMESPACE="Floe",
        # Another command's setting (a shared task environment) is no typo.
        FLOE_KEEP_SNAPSHOTS="20",
    )
    settings = dict(line.split("=", 1) for line in ok.stdout.splitlines())
    assert settings["FLOE_STREAM"] == "events"
    assert settings["FLOE_CATALOG"] == "glue"
    assert settings["FLOE_FLUSH_SIZE"] == str(64 << 20)
    assert settings["FLOE_START_POSITION"] == "trim-horizon"
    assert settings["FLOE_METRICS_ADDR"] == "0.0.0.0:9464"
    assert settings["FLOE_EVENT_TYPE_LIMIT"] == "100"
    assert settings["FLOE_INPUT"] == ""
    assert "FLOE_CONFIG" not in settings and "FLOE_KEEP_SNAPSHOTS" not in settings
    assert list(settings) == sorted(settings)

    bad = floe.run(
        "run", "--check-config", check=False, FLOE_STREAM="events", FLOE_WAREHOUSE="s3://lake/w", FLOE_CATALOG="glue",
        FLOE_FLUSH_SIZ="64MiB", FLOE_METRICS_ADDR="9464",
    )
    assert bad.returncode == 2
    assert bad.stderr == (
        "floe: invalid configuration:\n"
        "  - FLOE_FLUSH_SIZ is not a Floe setting (did you mean FLOE_FLUSH_SIZE?)\n"
        "  - metrics_addr: `9464` is not an IP address and port such as `0.0.0.0:9464`\n"
    )
    unknown = floe.run(
        "run", "--check-config", check=False, FLOE_STREAM="events", FLOE_WAREHOUSE="s3://lake/w", FLOE_CATALOG="glue",
        FLOE_FLUSH_SIZ="64MiB",
    )
    assert unknown.returncode == 2
    assert unknown.stderr == (
        "floe: invalid configuration:\n"
        "  - FLOE_FLUSH_SIZ is not a Floe setting (did you mean FLOE_FLUSH_SIZE?)\n"
    )
    assert unknown.stdout == ""


def test_thousands_of_invented_event_types_stay_within_the_cap(tmp_warehouse):
    # A producer bug: every event a type of its own, none with a subtype.
    now = int(time.time()) - 60
    lines = [
        json.dumps({"event_uuid": f"inv-{i}", "event_name": f"type{i:05}", "created_at": now}).encode() + b"\n"
        for i in range(3_000)
    ]
    cap = 20
    with running(
        "--input", "-", "--warehouse", str(tmp_warehouse.root), "--flush-interval", "200ms",
        "--event-type-limit", str(cap),
    ) as (proc, log, addr):
        send(proc, lines[:1_500])
        wait_committed(proc, addr, 1_500)
        send(proc, lines[1_500:])
        metrics = wait_committed(proc, addr, 3_000)
        missing = ops.by_label(metrics, "floe_missing_fields_total", "event_type")
        finish(proc)
    assert len(missing) == cap + 1 and "_other" in missing
    assert sum(missing.values()) == 3_000, "totals stay exact"
    for summary in summaries(tmp_warehouse, "analytics.events"):
        keys = [k for k in summary if k.startswith("floe.missing.")]
        assert len(keys) <= cap + 1
        assert sum(int(summary[k]) for k in keys) == int(summary["floe.rows-written"])
    total = sum(
        int(v) for s in summaries(tmp_warehouse, "analytics.events") for k, v in s.items() if k.startswith("floe.missing.")
    )
    assert total == 3_000
