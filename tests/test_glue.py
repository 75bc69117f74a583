"""The production layout: tables in the AWS Glue catalog, files on S3, both
on moto (patched so that Glue `UpdateTable` honours `VersionId`, see
support/aws.py). PyIceberg (through Glue) and DuckDB (straight from S3) read
what Floe wrote.
"""

from __future__ import annotations

import json
import re
import signal
import time
from collections import Counter

import pytest

from support import aws, floe
from support.aws import MotoServer
from support.expected import expected_from_bytes, expected_from_file
from support.readers import as_model_row, by_key, duckdb_s3_query, glue_catalog, glue_rows
from support.schema_chain import event, v1, v2, write_chain, write_events
from support.streams import STREAM, body, kpl_aggregate, lines_of, put

EVENTS = "analytics.events"
REJECTED = "analytics.events_rejected"
BUCKET = "lake"
WAREHOUSE = f"s3://{BUCKET}/warehouse"

moto = pytest.fixture(aws.moto_fixture)


def run_glue(server: MotoServer, *args: str, check: bool = True, **env: str):
    return floe.run(
        "run", "--catalog", "glue", "--warehouse", WAREHOUSE, "--s3-path-style", *args,
        check=check, **server.env(), **env,
    )


def start_glue(server: MotoServer, *args: str):
    return floe.start(
        "run", "--catalog", "glue", "--warehouse", WAREHOUSE, "--s3-path-style", *args, **server.env()
    )


def assert_glue_holds(moto: MotoServer, lines: list[bytes]):
    """The Glue events table holds one row per key of the records `lines`
    put into the stream, with the model's body; returns the model."""
    exp = expected_from_bytes(b"\n".join(lines) + b"\n", "stream")
    got = by_key(glue_rows(moto, EVENTS))  # raises on a second live row
    assert {k: body(as_model_row(r)) for k, r in got.items()} == {k: body(r) for k, r in exp.rows.items()}
    return exp


def assert_glue_rejects_and_count(moto: MotoServer, exp) -> None:
    """The rejected table holds the model's rejects by reason, and DuckDB
    reads one row per key straight from S3."""
    rejected = Counter(r["reason"] for r in glue_rows(moto, REJECTED))
    assert rejected == Counter(dict(exp.rejected_by_reason))
    location = glue_catalog(moto).load_table(EVENTS).metadata_location
    count = duckdb_s3_query(moto, location, "SELECT count(*) AS n, count(DISTINCT event_uuid) AS k FROM t")
    assert count == [{"n": len(exp.rows), "k": len(exp.rows)}]


def test_files_into_glue_and_s3_read_back_by_pyiceberg_and_duckdb(moto, tmp_path):
    moto.client("s3").create_bucket(Bucket=BUCKET)
    events = floe.generate(tmp_path / "e.jsonl", 6_000, seed=51)
    exp = expected_from_file(events)
    out = run_glue(moto, "--input", str(events), "--flush-size", "512KiB").stdout
    assert floe.summary_value(out, "records read") == exp.valid + len(exp.rejected)

    got = by_key(glue_rows(moto, EVENTS))  # raises on a second live row
    assert {k: as_model_row(r) for k, r in got.items()} == exp.rows
    rejected = Counter(r["reason"] for r in glue_rows(moto, REJECTED))
    assert rejected == Counter(dict(exp.rejected_by_reason))

    # What Athena needs from the Glue table, and the column list of the console.
    table = moto.client("glue").get_table(DatabaseName="analytics", Name="events")["Table"]
    params = table["Parameters"]
    assert params["table_type"] == "ICEBERG"
    loaded = glue_catalog(moto).load_table(EVENTS)
    assert params["metadata_location"] == loaded.metadata_location
    assert params["metadata_location"].startswith(f"{WAREHOUSE}/analytics/events/metadata/")
    assert params["previous_metadata_location"] != params["metadata_location"]
    columns = [(c["Name"], c["Parameters"]["iceberg.field.id"]) for c in table["StorageDescriptor"]["Columns"]]
    assert columns == [(f.name, str(f.field_id)) for f in loaded.schema().fields]
    assert table["StorageDescriptor"]["Location"] == f"{WAREHOUSE}/analytics/events"

    count = duckdb_s3_query(moto, params["metadata_location"], "SELECT count(*) AS n, count(DISTINCT event_uuid) AS k FROM t")
    assert count == [{"n": len(exp.rows), "k": len(exp.rows)}]

    # A rerun finds the checkpoint in the Glue table's metadata.
    again = run_glue(moto, "--input", str(events)).stdout
    assert floe.summary_value(again, "records read") == 0


def test_a_new_schema_file_updates_the_glue_table_and_its_columns(moto, tmp_path):
    moto.client("s3").create_bucket(Bucket=BUCKET)
    schemas = write_chain(tmp_path / "schemas", ("0001-initial.json", v1()))
    first = write_events(tmp_path / "a.jsonl", [event("a", i, i) for i in range(30)])
    run_glue(moto, "--input", str(first), "--schema-dir", str(schemas))

    write_chain(schemas, ("0002-promote.json", v2()))
    store = ["--catalog", "glue", "--warehouse", WAREHOUSE, "--s3-path-style", "--schema-dir", str(schemas)]
    applied = floe.run("schema", "apply", *store, **moto.env()).stdout
    assert f"{EVENTS}: applied {schemas}/events/0002-promote.json (was at {schemas}/events/0001-initial.json)" in applied

    # The console's column list follows the new schema, with Hive types and field ids.
    table = moto.client("glue").get_table(DatabaseName="analytics", Name="events")["Table"]
    columns = {c["Name"]: (c["Type"], c["Parameters"]["iceberg.field.id"]) for c in table["StorageDescriptor"]["Columns"]}
    assert columns["event_action"] == ("string", "4") and "event_subtype" not in columns
    assert columns["quantity"] == ("int", "12")
    assert columns["device"] == ("struct<os:string,mobile:boolean>", "13")

    second = write_events(tmp_path / "b.jsonl", [event("b", i, i * 2) for i in range(30)])
    run_glue(moto, "--input", str(second), "--schema-dir", str(schemas))
    rows = {r["event_uuid"]: r for r in glue_rows(moto, EVENTS)}
    assert len(rows) == 60
    assert [rows[f"a-{i:04d}"]["quantity"] for i in range(30)] == [None] * 30
    assert [rows[f"b-{i:04d}"]["quantity"] for i in range(30)] == [i * 2 for i in range(30)]
    assert rows["b-0003"]["device"] == {"os": "android", "mobile": False}


def glue_location(server: MotoServer) -> str | None:
    """The events table's metadata location in Glue (None: no table yet)."""
    glue = server.client("glue")
    try:
        return glue.get_table(DatabaseName="analytics", Name="events")["Table"]["Parameters"]["metadata_location"]
    except glue.exceptions.EntityNotFoundException:
        return None


def test_two_writers_on_one_glue_table_both_finish_and_retry_every_conflict(moto, tmp_path):
    moto.client("s3").create_bucket(Bucket=BUCKET)
    quiet = {"dup_rate": 0, "changed_dup_rate": 0, "bad_rate": 0}
    inputs = [floe.generate(tmp_path / f"{n}.jsonl", 3_000, seed=60 + i, **quiet) for i, n in enumerate("xy")]
    # A race for sure: left to the scheduler, a busy machine may run one
    # writer to its end before the other commits at all. The first stops
    # with its first commit's metadata written, before Glue is updated; it
    # goes on once the second committed meanwhile, and both run on together.
    store = ("--catalog", "glue", "--warehouse", WAREHOUSE, "--s3-path-style", "--flush-size", "32KiB")
    with floe.frozen_at("after-metadata-file", "run", *store, "--input", str(inputs[0]), **moto.env()) as first:
        base = glue_location(moto)
        second = start_glue(moto, "--input", str(inputs[1]), "--flush-size", "32KiB")
        floe.wait_for(
            lambda: glue_location(moto) != base or second.poll() is not None, floe.TIMEOUT, "a commit of the second writer"
        )
    outs = [floe.finished(first), floe.finished(second)]
    want = {}
    for p in inputs:
        want.update(expected_from_file(p).rows)
    got = by_key(glue_rows(moto, EVENTS))
    assert {k: as_model_row(r) for k, r in got.items()} == want
    # Glue refused stale versions, and each refusal was retried.
    refused = [c for c in moto.calls("UpdateTable") if c.error == "ConcurrentModificationException"]
    conflicts = sum(floe.summary_value(o, "commit conflicts") for o in outs)
    assert floe.summary_value(outs[0], "commit conflicts") > 0, "the first writer's held commit lost"
    assert conflicts >= len(refused)


def test_a_kinesis_stream_into_glue_and_s3(moto, tmp_path):
    moto.client("s3").create_bucket(Bucket=BUCKET)
    moto.create_stream(STREAM, shards=4)
    lines = lines_of(floe.generate(tmp_path / "e.jsonl", 8_000, seed=52))
    put(moto, lines)
    out = run_glue(moto, "--stream", STREAM, "--drain", "--flush-interval", "1s").stdout
    assert floe.summary_value(out, "records read") == len(lines)
    assert_glue_holds(moto, lines)


@pytest.mark.parametrize("point", floe.FAIL_POINTS)
def test_death_at_each_fail_point_with_glue_then_restart_keeps_each_record_once(point, moto, tmp_path):
    """As in test_kinesis.py, against Glue and S3: no malformed records, so
    each flush (one per shard batch) passes each point once and `@2` dies in
    the second of four flushes."""
    moto.client("s3").create_bucket(Bucket=BUCKET)
    moto.create_stream(STREAM, shards=4)
    lines = lines_of(floe.generate(tmp_path / "e.jsonl", 6_000, seed=54, dup_rate=0.02, changed_dup_rate=0.01, bad_rate=0))
    put(moto, lines)
    args = ("--stream", STREAM, "--drain", "--flush-size", "64KiB", "--flush-interval", "1s")
    died = run_glue(moto, *args, check=False, FLOE_FAILPOINT=f"{point}@2")
    assert died.returncode == -signal.SIGKILL, died.stderr
    out = run_glue(moto, *args).stdout
    assert 0 < floe.summary_value(out, "records read") < len(lines), "resumed, not restarted"
    assert_glue_holds(moto, lines)


def test_split_and_merge_while_floe_runs_into_glue_keep_each_record_once(moto, tmp_path):
    """The issue's headline: a 4-shard stream of 50k records with exact and
    changed duplicates, malformed and KPL-aggregated records; one shard split
    and two merged while Floe runs; Glue and S3 read back exactly."""
    moto.client("s3").create_bucket(Bucket=BUCKET)
    moto.create_stream(STREAM, shards=4)
    lines = lines_of(floe.generate(tmp_path / "e.jsonl", 48_000, seed=43, dup_rate=0.02, changed_dup_rate=0.01))
    packed = lines_of(floe.generate(tmp_path / "k.jsonl", 2_000, seed=53, dup_rate=0, changed_dup_rate=0))
    before, after = lines[:24_000], lines[24_000:]
    put(moto, before)
    kinesis = moto.client("kinesis")
    for i in range(0, 1_000, 50):
        kinesis.put_record(StreamName=STREAM, PartitionKey=f"agg-{i}", Data=kpl_aggregate(packed[i : i + 50]))
    proc = start_glue(moto, "--stream", STREAM, "--flush-interval", "1s")
    try:
        wait_for_rows(moto, expected_rows(before + packed[:1_000]), proc)
        shards = [s["ShardId"] for s in moto.shards(STREAM)]
        children = moto.split(STREAM, shards[0])
        merged = moto.merge(STREAM, shards[2], shards[3])
        put(moto, after)
        for i in range(1_000, 2_000, 50):
            kinesis.put_record(StreamName=STREAM, PartitionKey=f"agg-{i}", Data=kpl_aggregate(packed[i : i + 50]))
        wait_for_rows(moto, expected_rows(lines + packed), proc)
        proc.send_signal(signal.SIGTERM)
        # Floe's own shutdown deadline (90 s by default) decides; this only bounds the wait.
        out, err = proc.communicate(timeout=floe.TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err.decode()
    out = out.decode()
    for shard in [*children, merged]:
        assert shard in out, f"{shard} was read:\n{out}"

    assert_glue_rejects_and_count(moto, assert_glue_holds(moto, lines + packed))
    # The parents' ends are committed: a restart reads nothing again.
    again = run_glue(moto, "--stream", STREAM, "--drain").stdout
    assert floe.summary_value(again, "records read") == 0


def expected_rows(lines: list[bytes]) -> int:
    return len(expected_from_bytes(b"\n".join(lines) + b"\n", "s").rows)


def wait_for_rows(server: MotoServer, n: int, proc, timeout: float = 600) -> None:
    """Polls the Glue table until it holds `n` live rows (fails if Floe
    exits). The test's 50k records take about a minute on an idle machine:
    the timeout is for a stuck run, not a slow one."""
    got = -1

    def holds_n() -> bool:
        nonlocal got
        if floe.exited(proc):
            return False
        try:
            location = glue_catalog(server).load_table(EVENTS).metadata_location
            got = duckdb_s3_query(server, location, "SELECT count(*) AS n FROM t")[0]["n"]
        except Exception:  # the table may not exist yet
            got = -1
        return got == n

    floe.wait_for(holds_n, timeout, lambda: f"{n} rows in the table (it holds {got})", interval=0.3)


def test_credentials_come_from_the_ecs_task_role_endpoint_and_are_refreshed(moto, tmp_path):
    """The default chain as on Fargate: no keys in the environment, only
    AWS_CONTAINER_CREDENTIALS_FULL_URI. The credentials served expire within
    the SDK's refresh margin, so every use refreshes them: one source of
    credentials for Kinesis, Glue and S3 alike."""
    import http.server
    import threading

    hits = []

    class Credentials(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            hits.append(self.path)
            expires = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 60))
            body = json.dumps(
                {
                    "AccessKeyId": aws.ACCESS_KEY_ID,
                    "SecretAccessKey": aws.SECRET_ACCESS_KEY,
                    "Token": "task-role-session",
                    "Expiration": expires,
                }
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Credentials)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        moto.client("s3").create_bucket(Bucket=BUCKET)
        moto.create_stream(STREAM, shards=2)
        lines = lines_of(floe.generate(tmp_path / "e.jsonl", 3_000, seed=55))
        put(moto, lines)
        env = {k: v for k, v in moto.env().items() if k not in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
        env["AWS_CONTAINER_CREDENTIALS_FULL_URI"] = f"http://127.0.0.1:{server.server_port}/v2/credentials/task"
        out = floe.run(
            "run", "--catalog", "glue", "--warehouse", WAREHOUSE, "--s3-path-style", "--stream", STREAM, "--drain",
            "--flush-interval", "1s", **env,
        )
    finally:
        server.shutdown()
    assert floe.summary_value(out.stdout, "records read") == len(lines)
    assert_glue_holds(moto, lines)
    # Every service was called (moto does not check the signatures).
    assert {c.service for c in moto.calls()} == {"kinesis", "glue"}
    # Fetched from the task role endpoint, and fetched again as they expire.
    assert set(hits) == {"/v2/credentials/task"}
    assert len(hits) >= 2


def test_an_s3_warehouse_needs_the_glue_catalog(tmp_path):
    out = floe.run("run", "--input", "x.jsonl", "--warehouse", "s3://", check=False)
    assert out.returncode == 2
    assert "warehouse: `s3://` names no bucket" in out.stderr
    assert "an s3:// warehouse needs the Glue catalog" in out.stderr


def test_maintenance_on_glue_and_s3_compacts_expires_and_removes_orphans(moto, tmp_path):
    s3 = moto.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    events = floe.generate(tmp_path / "e.jsonl", 3_000, seed=57, days=1)
    exp = expected_from_file(events)
    run_glue(moto, "--input", str(events), "--flush-size", "256KiB")
    prefix = "warehouse/analytics/events/"

    def keys() -> set[str]:
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
        return {o["Key"] for page in pages for o in page.get("Contents", [])}

    s3.put_object(Bucket=BUCKET, Key=prefix + "data/left-by-a-crash.parquet", Body=b"x")
    before = keys()
    out = floe.run(
        "maintain", "--catalog", "glue", "--warehouse", WAREHOUSE, "--s3-path-style",
        "--expire-older-than", "0s", "--keep-snapshots", "1", "--orphan-older-than", "0s",
        **moto.env(),
    ).stdout
    m = re.search(r"analytics\.events: compacted (\d+) partition\(s\): (\d+) data files into (\d+)", out)
    assert m and int(m.group(1)) == int(m.group(3)) > 0 and int(m.group(2)) > int(m.group(3)), out
    assert re.search(r"analytics\.events: removed 1 orphan file\(s\)", out), out

    # Every row is still there, through Glue and straight from S3, and what
    # is left on S3 is exactly what the metadata references.
    got = by_key(glue_rows(moto, EVENTS))
    assert {k: as_model_row(r) for k, r in got.items()} == exp.rows
    table = glue_catalog(moto).load_table(EVENTS)
    assert len(table.snapshots()) == 1
    count = duckdb_s3_query(moto, table.metadata_location, "SELECT count(*) AS n FROM t")
    assert count == [{"n": len(exp.rows)}]
    key = lambda uri: uri.removeprefix(f"s3://{BUCKET}/")  # noqa: E731
    referenced = {key(table.metadata_location)} | {key(m.metadata_file) for m in table.metadata.metadata_log}
    referenced |= {key(s.manifest_list) for s in table.snapshots()}
    referenced |= {key(m["path"]) for m in table.inspect.all_manifests().to_pylist()}
    referenced |= {key(f["file_path"]) for f in table.inspect.all_files().to_pylist()}
    assert keys() == referenced
    assert len(before - keys()) > 1
