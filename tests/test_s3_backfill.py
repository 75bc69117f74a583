"""Backfill from S3: `floe run --input 's3://bucket/pattern'` on moto S3.

A prefix holds gzip objects (one of two gzip members) and plain ones, keys
that do not match, duplicates across objects (identical and changed) and bad
lines. The model is support/expected.py's contract applied to the matching
objects read in key order as one stream, each object its own `_source_id`.
The warehouse is local; only the input is in the bucket.
"""

from __future__ import annotations

import gzip
import http.client
import json
import random
import signal
from collections import Counter
from pathlib import Path

import pytest

from support import aws, floe
from support.aws import MotoServer
from support.expected import Rejected, enrich, iter_lines, same_body, validate
from support.readers import as_model_row, by_key, duckdb_query, pyiceberg_catalog, pyiceberg_rows, spark_sql

EVENTS = "analytics.events"
REJECTED = "analytics.events_rejected"
BUCKET = "raw"
PATTERN = f"s3://{BUCKET}/p/**/*.json*"
MAX_RECORD = 8192
RAW_KEPT = 64 * 1024

moto = pytest.fixture(aws.moto_fixture)


def model(objects: list[tuple[str, bytes]], now: float | None = None):
    """The rows (event_uuid -> row) and rejects ((reason, source id, line,
    raw)) of `objects` (uri, decompressed bytes) read in order as one stream:
    the last changed body of a key wins, an identical one keeps the first."""
    import time

    now = time.time() if now is None else now
    rows: dict[str, dict] = {}
    rejects = []
    for uri, data in objects:
        for number, line in iter_lines(data):
            try:
                obj = validate(line, MAX_RECORD, now)
            except Rejected as rej:
                rejects.append((rej.reason, uri, str(number), line[:RAW_KEPT]))
                continue
            row = enrich(obj, uri, number)
            live = rows.get(row["event_uuid"])
            if live is not None and same_body(live, row):
                continue
            rows[row["event_uuid"]] = row
    return rows, sorted(rejects)


def with_bad_lines(lines: list[bytes], every: int, tag: str) -> list[bytes]:
    """`lines` with a bad line after every `every`-th: invalid JSON, a
    missing event_uuid, or (once) a line over the record limit, in turn."""
    out = []
    for i, line in enumerate(lines, start=1):
        out.append(line)
        if i % every == 0:
            kind = (i // every) % 3
            if kind == 0:
                out.append(f'{{"event_uuid": "{tag}-{i}", broken\n'.encode())
            elif kind == 1:
                out.append(f'{{"event_name":"x:y","created_at":1780000000,"n":"{tag}-{i}"}}\n'.encode())
            else:
                out.append(b'"not an object"\n')
    out.append(b'{"event_uuid":"' + tag.encode() + b'-big","pad":"' + b"x" * (MAX_RECORD + 100) + b'"}\n')
    return out


def event_of(line: bytes) -> dict | None:
    try:
        obj = json.loads(line)
    except ValueError:
        return None
    return obj if isinstance(obj, dict) and isinstance(obj.get("event_uuid"), str) else None


def changed(line: bytes) -> bytes:
    """The event of `line` with another body (a bad line stays as it is)."""
    obj = event_of(line)
    if obj is None:
        return line
    obj["corrected"] = True
    return json.dumps(obj).encode() + b"\n"


def build_prefix(server: MotoServer, tmp_path: Path) -> list[tuple[str, bytes]]:
    """Puts the test prefix into the bucket; returns the matching objects
    (uri, decompressed bytes) in key order."""
    generated = floe.generate(
        tmp_path / "g.jsonl", 25_000, seed=83, days=3, dup_rate=0.02, changed_dup_rate=0.01, bad_rate=0.003
    )
    lines = generated.read_bytes().splitlines(keepends=True)
    a = with_bad_lines(lines[:6000], 100, "a")
    b = with_bad_lines(lines[6000:6400], 100, "b")
    b[-1] = b[-1].rstrip(b"\n")  # the last line has no newline
    # c starts with keys of a again: identical bodies, then changed ones.
    c = lines[10:30] + [changed(x) for x in lines[40:60]] + with_bad_lines(lines[6400:12400], 100, "c")
    d = [changed(x) for x in lines[6005:6015]] + with_bad_lines(lines[12400:24400], 100, "d")
    a_bytes, b_bytes, c_bytes, d_bytes = (b"".join(x) for x in (a, b, c, d))
    half = len(b"".join(a[:3000]))
    objects = {
        "p/2026/05/28/a.json.gz": (gzip.compress(a_bytes[:half]) + gzip.compress(a_bytes[half:]), a_bytes),
        "p/2026/05/28/b.jsonl": (b_bytes, b_bytes),
        "p/2026/05/29/c.json.gz": (gzip.compress(c_bytes), c_bytes),
        "p/2026/05/29/d.json": (d_bytes, d_bytes),
        "p/2026/05/30/e.jsonl": (b"", b""),
    }
    s3 = server.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    # Put in another order than the keys': the listing decides the order.
    for key in sorted(objects, reverse=True):
        s3.put_object(Bucket=BUCKET, Key=key, Body=objects[key][0])
    not_matching = {
        "p/x.txt": b"not json at all\n",
        "p/2026/05/28/_SUCCESS": b"",
        "p/2026/05/29/": b"",
        "q/2026/05/28/f.jsonl": lines[24400],
    }
    for key, body in not_matching.items():
        s3.put_object(Bucket=BUCKET, Key=key, Body=body)
    return [(f"s3://{BUCKET}/{key}", objects[key][1]) for key in sorted(objects)]


def run(
    server: MotoServer, wh, *args: str, pattern: str = PATTERN, flush: str = "32KiB", check: bool = True, **env: str
):
    """`floe run` over `pattern`; the small default flush size commits about
    once per chunk of lines (1 MiB), several times per object."""
    return floe.run(
        "run", "--input", pattern, "--warehouse", str(wh.root), "--s3-path-style",
        "--max-record-size", str(MAX_RECORD), "--flush-size", flush, *args,
        check=check, **server.env(), **env,
    )


def read_to_the_end(result) -> dict:
    """The fields of the log line a run (with `--log-format json`) writes
    once it has read every object: objects and bytes read, bytes listed."""
    lines = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    ends = [x["fields"] for x in lines if x["fields"].get("message") == "read every object of the input patterns"]
    assert len(ends) == 1, result.stderr
    return {k: ends[0][k] for k in ("objects", "bytes", "bytes_listed")}


def loaded(wh, ident: str):
    catalog = pyiceberg_catalog(wh)
    try:
        return catalog.load_table(ident)
    finally:
        catalog.close()


def committed(wh, pattern: str = PATTERN) -> dict:
    """The events table's committed position of `pattern`."""
    properties = loaded(wh, EVENTS).properties
    return json.loads(properties["floe.checkpoint"])["sources"][pattern]


def snapshots(wh, ident: str) -> int:
    return len(loaded(wh, ident).metadata.snapshots)


def rejects_of(wh) -> list:
    return sorted(
        (r["reason"], r["_source_id"], r["_source_position"], r["raw"]) for r in pyiceberg_rows(wh, REJECTED)
    )


def assert_holds_the_model(wh, rows: dict, rejects: list) -> None:
    got = by_key(pyiceberg_rows(wh, EVENTS))  # raises on a second live row
    assert {k: as_model_row(r) for k, r in got.items()} == rows
    assert rejects_of(wh) == rejects


def test_a_prefix_is_read_in_key_order_and_matches_the_model_in_three_readers(moto, spark, tmp_path, tmp_warehouse):
    objects = build_prefix(moto, tmp_path)
    rows, rejects = model(objects)
    # The input has what the test is about: duplicates across objects, both kinds.
    ids = [{e["event_uuid"] for _, x in iter_lines(data) if (e := event_of(x))} for _, data in objects]
    assert ids[0] & ids[2] and ids[1] & ids[3]
    assert {r[0] for r in rejects} >= {"invalid_json", "bad_event_uuid", "not_object", "too_large"}

    out = run(moto, tmp_warehouse, flush="4MiB").stdout
    records = sum(1 for _, data in objects for _ in iter_lines(data))
    assert floe.summary_value(out, "records read") == records
    assert floe.summary_value(out, "objects read") == len(objects)
    assert floe.summary_value(out, "rejected") == len(rejects)
    assert_holds_the_model(tmp_warehouse, rows, rejects)
    assert {r["_source_id"] for r in rows.values()} == {uri for uri, data in objects if data}
    position = committed(tmp_warehouse)
    assert (position["key"], position["offset"], position["done"]) == ("p/2026/05/30/e.jsonl", 0, True)

    count = duckdb_query(tmp_warehouse, EVENTS, "SELECT count(*) AS n, count(DISTINCT event_uuid) AS k FROM t")
    assert count == [{"n": len(rows), "k": len(rows)}]
    by_source = duckdb_query(tmp_warehouse, EVENTS, "SELECT _source_id AS s, count(*) AS n FROM t GROUP BY 1")
    assert {r["s"]: r["n"] for r in by_source} == dict(Counter(r["_source_id"] for r in rows.values()))
    counts = spark_sql(spark, tmp_warehouse, "SELECT count(*) AS n, count(DISTINCT event_uuid) AS k FROM {table}")
    assert counts == [{"n": len(rows), "k": len(rows)}]
    sample = sorted(rows)[::1500]
    quoted = ", ".join(f"'{k}'" for k in sample)
    sampled = spark_sql(spark, tmp_warehouse, f"SELECT * FROM {{table}} WHERE event_uuid IN ({quoted})")
    assert {r["event_uuid"]: as_model_row(r) for r in sampled} == {k: rows[k] for k in sample}
    by_reason = spark_sql(
        spark, tmp_warehouse, "SELECT reason, count(*) AS n FROM {rejected} GROUP BY reason", rejected=REJECTED
    )
    assert {r["reason"]: r["n"] for r in by_reason} == dict(Counter(r[0] for r in rejects))

    # A rerun after the end reads nothing and commits nothing.
    before = (snapshots(tmp_warehouse, EVENTS), snapshots(tmp_warehouse, REJECTED))
    again = run(moto, tmp_warehouse, flush="4MiB").stdout
    assert floe.summary_value(again, "records read") == 0
    assert "objects read" not in again
    assert (snapshots(tmp_warehouse, EVENTS), snapshots(tmp_warehouse, REJECTED)) == before
    assert_holds_the_model(tmp_warehouse, rows, rejects)


def test_killed_in_a_gzip_object_then_in_a_plain_one_each_record_lands_once(moto, tmp_path, tmp_warehouse):
    objects = build_prefix(moto, tmp_path)
    rows, rejects = model(objects)
    # Each flush takes one chunk (about 1 MiB of lines) of --flush-size
    # 32KiB: a.json.gz has three. Killed in the second flush after its
    # rejects were committed, before its events were.
    died = run(moto, tmp_warehouse, check=False, FLOE_FAILPOINT="after-data-files@4")
    assert died.returncode == -signal.SIGKILL, died.stderr
    at = committed(tmp_warehouse)
    assert at["key"] == "p/2026/05/28/a.json.gz" and at["offset"] > 0 and not at.get("done"), at

    # Resumed by reading the gzip object again and skipping what was
    # committed; killed again after a commit in the middle of d.json (of
    # five chunks, after the first or second of them).
    died = run(moto, tmp_warehouse, check=False, FLOE_FAILPOINT="before-positions-advance@10")
    assert died.returncode == -signal.SIGKILL, died.stderr
    at = committed(tmp_warehouse)
    assert at["key"] == "p/2026/05/29/d.json" and at["offset"] > 0 and not at.get("done"), at
    d_offset = at["offset"]

    # Resumed by a ranged read of the plain object: the bytes read and
    # listed are its rest (and e.jsonl's none), each counted once.
    resumed = run(moto, tmp_warehouse, "--log-format", "json", FLOE_LOG="floe=info")
    out = resumed.stdout
    d = objects[3][1]
    assert floe.summary_value(out, "records read") == sum(1 for _ in iter_lines(d[d_offset:]))
    rest = len(d) - d_offset
    assert read_to_the_end(resumed) == {"objects": 2, "bytes": rest, "bytes_listed": rest}
    assert_holds_the_model(tmp_warehouse, rows, rejects)
    count = duckdb_query(tmp_warehouse, EVENTS, "SELECT count(*) AS n, count(DISTINCT event_uuid) AS k FROM t")
    assert count == [{"n": len(rows), "k": len(rows)}]


def test_a_gzip_object_resumed_counts_its_stored_bytes_once_as_listed_and_read(moto, tmp_path, tmp_warehouse):
    objects = build_prefix(moto, tmp_path)
    # The pattern is one key: nothing else is listed, ahead or after it.
    key = "p/2026/05/28/a.json.gz"
    pattern = f"s3://{BUCKET}/{key}"
    rows, rejects = model([objects[0]])
    stored = moto.client("s3").head_object(Bucket=BUCKET, Key=key)["ContentLength"]
    died = run(moto, tmp_warehouse, pattern=pattern, check=False, FLOE_FAILPOINT="after-data-files@4")
    assert died.returncode == -signal.SIGKILL, died.stderr
    at = committed(tmp_warehouse, pattern)
    assert at["key"] == key and at["offset"] > 0 and not at.get("done"), at

    # Read again from its start (the committed lines skipped): its stored
    # bytes count once on both sides, not its committed part twice.
    resumed = run(moto, tmp_warehouse, "--log-format", "json", pattern=pattern, FLOE_LOG="floe=info")
    assert read_to_the_end(resumed) == {"objects": 1, "bytes": stored, "bytes_listed": stored}
    assert floe.summary_value(resumed.stdout, "records read") == sum(
        1 for _ in iter_lines(objects[0][1][at["offset"]:])
    )
    assert_holds_the_model(tmp_warehouse, rows, rejects)


def test_an_object_overwritten_after_part_of_it_was_committed_is_refused(moto, tmp_path, tmp_warehouse):
    lines = floe.generate(tmp_path / "g.jsonl", 7_000, seed=84, dup_rate=0, changed_dup_rate=0, bad_rate=0).read_bytes()
    s3 = moto.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    key = "o/big.jsonl"
    s3.put_object(Bucket=BUCKET, Key=key, Body=lines)
    pattern = f"s3://{BUCKET}/o/*.jsonl"
    died = run(moto, tmp_warehouse, pattern=pattern, check=False, FLOE_FAILPOINT="before-positions-advance@1")
    assert died.returncode == -signal.SIGKILL, died.stderr
    at = committed(tmp_warehouse, pattern)
    assert 0 < at["offset"] < len(lines) and at["key"] == key
    then = s3.head_object(Bucket=BUCKET, Key=key)["ETag"]
    assert at["etag"] == then

    s3.put_object(Bucket=BUCKET, Key=key, Body=b"".join(reversed(lines.splitlines(keepends=True))))
    now = s3.head_object(Bucket=BUCKET, Key=key)["ETag"]
    assert now != then
    refused = run(moto, tmp_warehouse, pattern=pattern, check=False)
    assert refused.returncode == 1
    assert refused.stderr.strip().splitlines()[-1] == (
        f"floe: error: s3://{BUCKET}/{key} changed since its first {at['offset']} bytes (line {at['line']}) "
        f"were committed: its ETag was {then} then and is {now} now. Resuming at that offset could skip or cut "
        "records; give the new content another key to ingest it as a new object"
    )
    s3.delete_object(Bucket=BUCKET, Key=key)
    refused = run(moto, tmp_warehouse, pattern=pattern, check=False)
    assert refused.returncode == 1
    assert f"its ETag was {then} then and it is deleted now." in refused.stderr
    assert committed(tmp_warehouse, pattern) == at, "nothing was committed"


def test_more_objects_than_one_listing_page_are_all_read_in_key_order(moto, tmp_path, tmp_warehouse):
    moto.client("s3").create_bucket(Bucket=BUCKET)
    n = 1_010  # ListObjectsV2 returns at most 1000 keys a page
    order = list(range(n))
    random.Random(5).shuffle(order)
    # Plain PUTs on one connection: a third of boto3's time per object.
    connection = http.client.HTTPConnection("127.0.0.1", moto.port, timeout=30)
    for i in order:
        # Every object has an event of its own, and a new body of one shared
        # key: the body of the object read last wins.
        body = (
            f'{{"event_uuid":"obj-{i:05d}","event_name":"page:one","created_at":1780000000}}\n'
            f'{{"event_uuid":"shared","event_name":"page:last","created_at":1780000000,"i":{i}}}\n'
        )
        connection.request("PUT", f"/{BUCKET}/many/{i:05d}.jsonl", body=body.encode())
        answer = connection.getresponse()
        answer.read()
        assert answer.status == 200, answer.status
    connection.close()
    out = run(moto, tmp_warehouse, pattern=f"s3://{BUCKET}/many/*.jsonl", flush="4MiB").stdout
    assert floe.summary_value(out, "records read") == 2 * n
    assert floe.summary_value(out, "objects read") == n
    got = by_key(pyiceberg_rows(tmp_warehouse, EVENTS))
    assert set(got) == {f"obj-{i:05d}" for i in range(n)} | {"shared"}
    shared = as_model_row(got["shared"])
    assert (shared["payload"], shared["_source_id"]) == ({"i": n - 1}, f"s3://{BUCKET}/many/{n - 1:05d}.jsonl")


def test_a_pattern_matching_no_object_and_a_mix_with_files_are_refused(moto, tmp_path, tmp_warehouse):
    s3 = moto.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    s3.put_object(Bucket=BUCKET, Key="p/a.txt", Body=b"{}\n")
    typo = run(moto, tmp_warehouse, pattern=f"s3://{BUCKET}/p/*.jsonl", check=False)
    assert typo.returncode == 1
    assert f"floe: error: input s3://{BUCKET}/p/*.jsonl: the pattern matches no object" in typo.stderr
    local = tmp_path / "e.jsonl"
    local.write_bytes(b"")
    mixed = run(moto, tmp_warehouse, "--input", str(local), pattern=f"s3://{BUCKET}/p/*.txt", check=False)
    assert mixed.returncode == 2
    assert (
        f"input: s3:// objects (s3://{BUCKET}/p/*.txt) and local files or stdin cannot be read in one run: "
        "run them separately"
    ) in mixed.stderr
