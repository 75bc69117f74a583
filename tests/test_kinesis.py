"""The Kinesis source end to end: moto (patched to act like Kinesis, see
support/aws.py) holds the stream; `floe run --stream` writes the local
warehouse; PyIceberg and DuckDB check the tables against the model.

Every record's partition key is its event_uuid (malformed records get their
index), so all versions of a key land in one shard in put order: the model
over the put order is then exactly what last-writer-wins must produce.
"""

from __future__ import annotations

import signal
import subprocess
from collections import Counter

import pytest

from support import aws, floe
from support.aws import MotoServer
from support.streams import STREAM, body, kpl_aggregate, lines_of, put
from support.expected import expected_from_bytes
from support.readers import by_key, duckdb_query, pyiceberg_rows

EVENTS = "analytics.events"
REJECTED = "analytics.events_rejected"

moto = pytest.fixture(aws.moto_fixture)


def run_stream(server: MotoServer, wh, *extra: str, check: bool = True, **env: str) -> subprocess.CompletedProcess:
    return floe.run(
        "run", "--stream", STREAM, "--drain", "--warehouse", str(wh.root), "--flush-interval", "1s",
        *extra, check=check, **server.env(), **env,
    )


def assert_table_matches(wh, lines: list[bytes]) -> None:
    """One live row per key with the latest body; every bad record rejected once."""
    exp = expected_from_bytes(b"\n".join(lines) + b"\n", "stream")
    got = by_key(pyiceberg_rows(wh, EVENTS))  # raises on a second live row
    want = {k: body(r) for k, r in exp.rows.items()}
    assert {k: body(r) for k, r in got.items()} == want
    rejected = Counter(r["reason"] for r in pyiceberg_rows(wh, REJECTED))
    assert rejected == Counter(dict(exp.rejected_by_reason))
    count = duckdb_query(wh, EVENTS, "SELECT count(*) AS n, count(DISTINCT event_uuid) AS k FROM t")
    assert count == [{"n": len(want), "k": len(want)}]


def test_a_stream_drains_into_the_table_and_a_restart_resumes_after_it(moto, tmp_path, tmp_warehouse):
    moto.create_stream(STREAM, shards=4)
    first = lines_of(floe.generate(tmp_path / "a.jsonl", 12_000, seed=41, dup_rate=0.02, changed_dup_rate=0.01))
    put(moto, first)
    out = run_stream(moto, tmp_warehouse).stdout
    assert floe.summary_value(out, "records read") == len(first)
    assert "kinesis shards (4):" in out
    assert_table_matches(tmp_warehouse, first)
    # Positions come from the stream: `_source_id` names the shard.
    sources = {r["_source_id"] for r in pyiceberg_rows(tmp_warehouse, REJECTED)}
    assert sources <= {f"kinesis:{STREAM}/{s['ShardId']}" for s in moto.shards(STREAM)}

    second = lines_of(floe.generate(tmp_path / "b.jsonl", 3_000, seed=42, dup_rate=0.02, changed_dup_rate=0.01))
    # Changed versions of keys committed by the first run, too.
    second += [
        l.replace(b'"event_name"', b'"revision":7,"event_name"', 1)
        for l in first[:200]
        if b'"event_uuid"' in l and b'"event_name"' in l
    ]
    put(moto, second)
    out = run_stream(moto, tmp_warehouse).stdout
    assert floe.summary_value(out, "records read") == len(second), "resumed after the checkpoint"
    assert_table_matches(tmp_warehouse, first + second)
    again = run_stream(moto, tmp_warehouse).stdout
    assert floe.summary_value(again, "records read") == 0


def test_sigterm_mid_stream_commits_and_the_next_run_resumes(moto, tmp_path, tmp_warehouse):
    moto.create_stream(STREAM, shards=2)
    lines = lines_of(floe.generate(tmp_path / "e.jsonl", 8_000, seed=46, dup_rate=0.02, changed_dup_rate=0.01))
    first, rest = lines[:5_000], lines[5_000:]
    put(moto, first)
    proc = floe.start(
        "run", "--stream", STREAM, "--warehouse", str(tmp_warehouse.root), "--shutdown-deadline", "30s",
        **moto.env(),
    )
    try:
        # The default flush interval (60 s) has not passed: what was read is
        # only in memory when the signal comes.
        wait_for_polls(moto, 3)
        put(moto, rest[:1_000])
        proc.send_signal(signal.SIGTERM)
        # Exit 0 means the final commit finished within the 30 s deadline
        # (Floe's own clock); the timeout only bounds the wait.
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err.decode()
    read = floe.summary_value(out.decode(), "records read")
    assert 0 < read <= len(first) + 1_000
    assert len(pyiceberg_rows(tmp_warehouse, EVENTS)) > 0, "the shutdown committed what was read"
    put(moto, rest[1_000:])
    out = run_stream(moto, tmp_warehouse).stdout
    assert floe.summary_value(out, "records read") == len(lines) - read
    assert_table_matches(tmp_warehouse, lines)


def wait_for_polls(server: MotoServer, n: int, timeout: float = 60) -> None:
    """Waits until every shard answered `n` GetRecords calls (each reader
    hands a batch over before its next call)."""
    shards = [s["ShardId"] for s in server.shards(STREAM)]

    def polled() -> bool:
        ok = [c.shard_id for c in server.calls("GetRecords") if c.status == 200]
        return all(ok.count(s) >= n for s in shards)

    floe.wait_for(polled, timeout, f"every shard to be polled {n} times", interval=0.05)


# No malformed records here: every flush passes each point once (there is
# no rejected-table commit), so `@2` dies in the second of four flushes
# (one per shard batch, each larger than --flush-size).
@pytest.mark.parametrize("point", floe.FAIL_POINTS)
def test_death_at_each_fail_point_then_restart_keeps_each_record_once(point, moto, tmp_path, tmp_warehouse):
    moto.create_stream(STREAM, shards=4)
    lines = lines_of(
        floe.generate(tmp_path / "e.jsonl", 6_000, seed=44, dup_rate=0.02, changed_dup_rate=0.01, bad_rate=0)
    )
    put(moto, lines)
    died = run_stream(moto, tmp_warehouse, "--flush-size", "64KiB", check=False, FLOE_FAILPOINT=f"{point}@2")
    assert died.returncode == -signal.SIGKILL, died.stderr
    assert f"fail point {point} reached" in died.stderr
    out = run_stream(moto, tmp_warehouse, "--flush-size", "64KiB").stdout
    assert 0 < floe.summary_value(out, "records read") < len(lines), "resumed, not restarted"
    assert_table_matches(tmp_warehouse, lines)


def test_throttling_and_expired_iterators_lose_nothing(moto, tmp_path, tmp_warehouse):
    moto.create_stream(STREAM, shards=2)
    lines = lines_of(floe.generate(tmp_path / "e.jsonl", 3_000, seed=45, bad_rate=0.01))
    put(moto, lines)
    shard = moto.shards(STREAM)[0]["ShardId"]
    moto.throttle(times=3)
    moto.throttle(shard_id=shard, times=2, kind="KMSThrottlingException")
    moto.throttle(times=1, kind="LimitExceededException")
    moto.expire_iterators(shard_id=shard, times=2)
    run_stream(moto, tmp_warehouse)
    assert moto.pending_faults() == 0
    assert_table_matches(tmp_warehouse, lines)
    calls = moto.calls("GetRecords")
    errors = Counter(c.error for c in calls if c.error)
    assert errors == {
        "ProvisionedThroughputExceededException": 3,
        "KMSThrottlingException": 2,
        "LimitExceededException": 1,
        "ExpiredIteratorException": 2,
    }
    # At most five calls a second per shard: at least 200 ms between the
    # calls as Floe sent them (counting arrivals in a window would count
    # calls a busy server got to late as bunched).
    for s in moto.shards(STREAM):
        assert aws.paced([c for c in calls if c.shard_id == s["ShardId"]], 0.2)


def test_kpl_aggregated_records_are_unpacked_and_a_corrupt_one_is_rejected(moto, tmp_path, tmp_warehouse):
    moto.create_stream(STREAM, shards=2)
    lines = lines_of(floe.generate(tmp_path / "e.jsonl", 2_000, seed=47, dup_rate=0, changed_dup_rate=0))
    plain, packed = lines[:500], lines[500:]
    put(moto, plain)
    kinesis = moto.client("kinesis")
    for i in range(0, len(packed), 100):
        kinesis.put_record(StreamName=STREAM, PartitionKey=f"agg-{i}", Data=kpl_aggregate(packed[i : i + 100]))
    bad = kinesis.put_record(StreamName=STREAM, PartitionKey="bad", Data=kpl_aggregate(packed[:3], corrupt=True))

    out = run_stream(moto, tmp_warehouse).stdout
    assert floe.summary_value(out, "records read") == len(lines) + 1
    assert floe.summary_value(out, "bad_aggregate") == 1
    exp = expected_from_bytes(b"\n".join(lines) + b"\n", "stream")
    got = by_key(pyiceberg_rows(tmp_warehouse, EVENTS))
    assert {k: body(r) for k, r in got.items()} == {k: body(r) for k, r in exp.rows.items()}
    rejected = pyiceberg_rows(tmp_warehouse, REJECTED)
    assert Counter(r["reason"] for r in rejected) == Counter(dict(exp.rejected_by_reason)) + Counter(bad_aggregate=1)
    (corrupt,) = [r for r in rejected if r["reason"] == "bad_aggregate"]
    assert corrupt["_source_position"] == bad["SequenceNumber"]
    assert corrupt["message"] == "aggregated record fails its MD5 check"
    # The i-th user record of an aggregate is at <sequence>:<i>.
    positions = [r["_source_position"] for r in got.values() if ":" in r["_source_position"]]
    assert len(positions) + sum(":" in r["_source_position"] for r in rejected) == len(packed)
    assert {int(p.split(":")[1]) for p in positions} == set(range(100))


def test_an_unknown_stream_is_a_clear_error(moto, tmp_warehouse):
    out = floe.run("run", "--stream", "nope", "--drain", "--warehouse", str(tmp_warehouse.root), check=False, **moto.env())
    assert out.returncode == 1
    assert "Kinesis stream nope: ListShards" in out.stderr
    assert "ResourceNotFoundException" in out.stderr or "not found" in out.stderr.lower()


def test_stream_and_input_together_are_a_configuration_error(tmp_path, tmp_warehouse):
    events = floe.generate(tmp_path / "e.jsonl", 10, seed=1)
    out = floe.run(
        "run", "--stream", "s", "--input", str(events), "--start-position", "somewhere",
        "--warehouse", str(tmp_warehouse.root), check=False,
    )
    assert out.returncode == 2
    assert "give either input files or a Kinesis stream, not both" in out.stderr
    assert "start_position: `somewhere` is not one of trim-horizon, latest, at-timestamp:<time>" in out.stderr
