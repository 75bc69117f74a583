"""No stage dies quietly: a panic in a stage (armed with the `panic` action
of FLOE_FAILPOINT) fails a file run with a message naming the stage, after
committing only what the stage handed over, and a rerun is exact; a Kinesis
shard reader that panics is started again and the stream drains exactly
once. The stages beside the pipeline
(catalog probe, operations server, lease keeper) fail the run the same way.
A transient HTTP 5xx answer without an AWS error code (a proxy's HTML page)
is retried like throttling.
"""

from __future__ import annotations

import subprocess
from collections import Counter

import pytest

from support import aws, floe, ops
from support.expected import expected_from_file
from support.readers import as_model_row, by_key, duckdb_query, pyiceberg_rows
from support.streams import STREAM, body, lines_of, put
from support.expected import expected_from_bytes

EVENTS = "analytics.events"
REJECTED = "analytics.events_rejected"

moto = pytest.fixture(aws.moto_fixture)


def assert_holds(wh, exp) -> None:
    """The events table holds the model's rows (PyIceberg) and as many
    distinct keys (DuckDB); the rejected table its rejects by reason."""
    got = by_key(pyiceberg_rows(wh, EVENTS))  # raises on a second live row
    assert {k: as_model_row(r) for k, r in got.items()} == exp.rows
    count = duckdb_query(wh, EVENTS, "SELECT count(*) AS n, count(DISTINCT event_uuid) AS k FROM t")
    assert count == [{"n": len(exp.rows), "k": len(exp.rows)}]
    rejected = Counter(r["reason"] for r in pyiceberg_rows(wh, REJECTED))
    assert rejected == Counter(dict(exp.rejected_by_reason))


# A chunk is about 1 MiB: 12,000 generated events (about 4.5 MB) make five.
@pytest.mark.parametrize(("point", "stage"), [("read-chunk", "file reader"), ("decode-chunk", "decoder")])
def test_a_stage_that_panics_fails_the_file_run_and_a_rerun_is_exact(point, stage, tmp_path, tmp_warehouse):
    events = floe.generate(tmp_path / "e.jsonl", 12_000, seed=61, bad_rate=0.01, dup_rate=0.02, changed_dup_rate=0.01)
    assert events.stat().st_size > 4 * 2**20
    wh = str(tmp_warehouse.root)
    failed = floe.run("run", "--input", str(events), "--warehouse", wh, check=False, FLOE_FAILPOINT=f"{point}:panic@3")
    assert failed.returncode == 1, failed.stderr
    assert f"fail point {point} reached" in failed.stderr
    assert f"the {stage} stage failed: it panicked" in failed.stderr
    assert "rows by day" not in failed.stdout.lower(), "no summary of a complete run"
    partial = len(pyiceberg_rows(tmp_warehouse, EVENTS))

    out = floe.run("run", "--input", str(events), "--warehouse", wh).stdout
    exp = expected_from_file(events)
    resumed = floe.summary_value(out, "records read")
    assert 0 < resumed < exp.valid + len(exp.rejected), "the rerun resumed after what was committed"
    assert 0 < partial < len(exp.rows)
    assert_holds(tmp_warehouse, exp)
    assert floe.summary_value(floe.run("run", "--input", str(events), "--warehouse", wh).stdout, "records read") == 0


def run_stream(server, wh, **env: str):
    return floe.run(
        "run", "--stream", STREAM, "--drain", "--warehouse", str(wh.root), "--flush-interval", "1s",
        **server.env(), **env,
    )


def assert_stream_holds(wh, lines: list[bytes]) -> None:
    exp = expected_from_bytes(b"\n".join(lines) + b"\n", "stream")
    got = by_key(pyiceberg_rows(wh, EVENTS))
    assert {k: body(r) for k, r in got.items()} == {k: body(r) for k, r in exp.rows.items()}
    rejected = Counter(r["reason"] for r in pyiceberg_rows(wh, REJECTED))
    assert rejected == Counter(dict(exp.rejected_by_reason))
    count = duckdb_query(wh, EVENTS, "SELECT count(*) AS n, count(DISTINCT event_uuid) AS k FROM t")
    assert count == [{"n": len(exp.rows), "k": len(exp.rows)}]


def test_a_shard_reader_that_panics_is_restarted_and_the_stream_drains_once(moto, tmp_path, tmp_warehouse):
    moto.create_stream(STREAM, shards=2)
    lines = lines_of(floe.generate(tmp_path / "e.jsonl", 4_000, seed=62, bad_rate=0.01, dup_rate=0.02))
    put(moto, lines)
    result = run_stream(moto, tmp_warehouse, FLOE_FAILPOINT="shard-read:panic@2")
    assert "fail point shard-read reached" in result.stderr
    assert result.stderr.count("a shard reader panicked") == 1, result.stderr
    assert floe.summary_value(result.stdout, "records read") == len(lines), "nothing read twice"
    assert_stream_holds(tmp_warehouse, lines)
    assert floe.summary_value(run_stream(moto, tmp_warehouse).stdout, "records read") == 0


def test_an_html_5xx_answer_to_get_records_is_retried(moto, tmp_path, tmp_warehouse):
    moto.create_stream(STREAM, shards=1)
    lines = lines_of(floe.generate(tmp_path / "e.jsonl", 1_000, seed=63, bad_rate=0.01))
    put(moto, lines)
    moto.fail("GetRecords", "none", status=500, body="<html><body><h1>500 Internal Server Error</h1></body></html>")
    result = run_stream(moto, tmp_warehouse)
    assert moto.pending_faults() == 0
    assert [c.status for c in moto.calls("GetRecords")].count(500) == 1
    assert floe.summary_value(result.stdout, "records read") == len(lines)
    assert_stream_holds(tmp_warehouse, lines)


# The stages beside the pipeline: each lasts as long as the run, so its panic
# (or end) fails the run, naming it, after committing what was read.
@pytest.mark.parametrize(("point", "stage"), [("catalog-probe", "catalog probe"), ("operations-request", "operations server")])
def test_a_stage_beside_the_pipeline_that_panics_fails_the_run_and_a_rerun_is_exact(point, stage, tmp_path, tmp_warehouse):
    # No rejects: the rerun reads stdin from its start (stdin has no
    # checkpoint) and would reject them again.
    events = floe.generate(tmp_path / "e.jsonl", 3_000, seed=64, bad_rate=0, dup_rate=0.02, changed_dup_rate=0.01)
    wh = str(tmp_warehouse.root)
    # The probe's second round comes 5 s after its first, at the start.
    at = "2" if point == "catalog-probe" else "1"
    proc = subprocess.Popen(
        [floe.BIN, "run", "--input", "-", "--warehouse", wh, "--flush-interval", "200ms",
         "--metrics-addr", "127.0.0.1:0", "--log-format", "json"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env=floe.env(FLOE_LOG="info", FLOE_FAILPOINT=f"{point}:panic@{at}"),
    )
    try:
        log = ops.LogReader(proc.stderr)
        addr = ops.serving_address(log, proc)
        assert proc.stdin is not None
        proc.stdin.write(events.read_bytes())
        proc.stdin.flush()
        if point == "operations-request":
            # The accept loop panics on this connection: no answer.
            with pytest.raises(OSError):
                ops.get(addr, "/metrics")
        # stdin stays open: only the stage's failure can end the run.
        proc.wait(timeout=floe.TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    stderr = "\n".join(log.until_closed())
    assert proc.returncode == 1, stderr
    assert f"fail point {point} reached" in stderr
    assert f"the {stage} stage failed: it panicked" in stderr
    exp = expected_from_bytes(events.read_bytes(), "-")
    assert len(pyiceberg_rows(tmp_warehouse, EVENTS)) <= len(exp.rows)

    floe.run("run", "--input", "-", "--warehouse", wh, stdin=events.read_bytes())
    assert_holds(tmp_warehouse, exp)
