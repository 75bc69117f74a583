"""The input contract, against hostile and everyday inputs: every record read
is a row, a reject with its reason, or a counted duplicate, whatever the
producer sent and however the input was read.

- One event whose `event_type` cannot be a partition folder is a reject;
  the events around it commit (local folder, and S3 through Glue on moto).
- Two stdin runs that start with the same line are two streams.
- A file rewritten in place is refused, never resumed at a wrong offset.
- A half-written last line waits for its writer; positions stay true line
  numbers across resumes.
- A slow pipe commits on the flush interval, before it closes.
- A byte order mark, keys sent twice, white space around event name parts,
  a file named twice.

Rows and rejects are read back by PyIceberg and DuckDB (and Spark once), and
compared with the independent model in support/expected.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections import Counter

import pytest

from support import aws, floe
from support.expected import MAX_EVENT_TYPE_BYTES, expected_from_bytes
from support.readers import (
    as_model_row,
    by_key,
    duckdb_query,
    duckdb_s3_query,
    glue_catalog,
    glue_rows,
    pyiceberg_rows,
    spark_sql,
)

EVENTS = "analytics.events"
REJECTED = "analytics.events_rejected"
BUCKET = "lake"
WAREHOUSE = f"s3://{BUCKET}/warehouse"

moto = pytest.fixture(aws.moto_fixture)


def event(uuid: str, name: str = "order:placed", **payload) -> bytes:
    """One event line (without newline), created a minute ago."""
    return json.dumps(
        {"event_uuid": uuid, "event_name": name, "created_at": int(time.time()) - 60, **payload},
        ensure_ascii=False,
    ).encode()


def poison_lines() -> list[bytes]:
    """2,000 good events with three event names no partition folder can
    hold, and one that only needs trimming, among them."""
    lines = [event(f"good-{i}", f"t{i % 7}:x") for i in range(2_000)]
    lines.insert(300, event("long-ascii", "x" * 250 + ":sub"))
    lines.insert(900, event("long-cjk", "注" * 28))
    lines.insert(1500, event("control", "pay\tment:x"))
    lines.insert(1700, event("trimmed", "  pay  : order "))
    return lines


def rows_by_key(wh) -> dict:
    """The live rows by PyIceberg, checked equal to DuckDB's."""
    rows = by_key(pyiceberg_rows(wh, EVENTS))
    duck = by_key(duckdb_query(wh, EVENTS, "SELECT * FROM t"))
    assert {k: as_model_row(r) for k, r in duck.items()} == {k: as_model_row(r) for k, r in rows.items()}
    return rows


def test_a_poison_event_type_is_a_reject_and_the_events_around_it_commit(tmp_path, tmp_warehouse):
    lines = poison_lines()
    path = tmp_path / "poison.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    exp = expected_from_bytes(path.read_bytes(), str(path))
    assert exp.rejected_by_reason == Counter({"bad_event_name": 3}) and len(exp.rows) == 2_001

    out = floe.run("run", "--input", str(path), "--warehouse", str(tmp_warehouse.root)).stdout
    assert floe.summary_value(out, "rows written") == 2_001
    got = rows_by_key(tmp_warehouse)
    assert {k: as_model_row(r) for k, r in got.items()} == exp.rows
    assert (got["trimmed"]["event_type"], got["trimmed"]["event_subtype"]) == ("pay", "order")
    assert got["trimmed"]["event_name"] == "  pay  : order ", "event_name is kept as sent"

    rejects = {r["_source_position"]: r for r in pyiceberg_rows(tmp_warehouse, REJECTED)}
    assert sorted((r["reason"], p, r["raw"]) for p, r in rejects.items()) == sorted(exp.rejected)
    assert sorted(rejects) == ["1501", "301", "901"]
    assert f"over the limit of {MAX_EVENT_TYPE_BYTES} bytes" in rejects["301"]["message"]
    assert "is 84 bytes" in rejects["901"]["message"]
    assert "control character U+0009" in rejects["1501"]["message"]
    # Every partition folder name stays within the file-name limit.
    data = tmp_warehouse.table_location(EVENTS) / "data"
    assert max(len(p.name.encode()) for p in data.rglob("*")) <= 255
    # A rerun has nothing left to do: the checkpoint covers the whole file.
    again = floe.run("run", "--input", str(path), "--warehouse", str(tmp_warehouse.root)).stdout
    assert floe.summary_value(again, "records read") == 0


def test_a_poison_event_type_on_s3_through_glue(moto, tmp_path):
    moto.client("s3").create_bucket(Bucket=BUCKET)
    lines = poison_lines()
    path = tmp_path / "poison.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    exp = expected_from_bytes(path.read_bytes(), str(path))
    floe.run(
        "run", "--catalog", "glue", "--warehouse", WAREHOUSE, "--s3-path-style", "--input", str(path),
        **moto.env(),
    )
    got = by_key(glue_rows(moto, EVENTS))
    assert {k: as_model_row(r) for k, r in got.items()} == exp.rows
    assert Counter(r["reason"] for r in glue_rows(moto, REJECTED)) == Counter({"bad_event_name": 3})
    location = glue_catalog(moto).load_table(EVENTS).metadata_location
    count = duckdb_s3_query(moto, location, "SELECT count(*) AS n, count(DISTINCT event_uuid) AS k FROM t")
    assert count == [{"n": 2_001, "k": 2_001}]


def test_two_stdin_runs_that_start_with_the_same_line_keep_every_record(tmp_warehouse):
    first = [event(u) for u in ("h0", "a1", "a2", "a3")]
    second = [event(u) for u in ("h0", "b1", "b2", "b3", "b4", "b5")]
    # The same first line, byte for byte (the same created_at).
    second[0] = first[0]
    wh = str(tmp_warehouse.root)
    floe.run("run", "--input", "-", "--warehouse", wh, stdin=b"\n".join(first) + b"\n")
    out = floe.run("run", "--input", "-", "--warehouse", wh, stdin=b"\n".join(second) + b"\n").stdout
    assert floe.summary_value(out, "records read") == 6
    assert floe.summary_value(out, "rows written") == 5
    got = rows_by_key(tmp_warehouse)
    assert sorted(got) == ["a1", "a2", "a3", "b1", "b2", "b3", "b4", "b5", "h0"]
    assert {k: r["_source_position"] for k, r in got.items() if k.startswith("b")} == {
        "b1": "2", "b2": "3", "b3": "4", "b4": "5", "b5": "6",
    }
    assert pyiceberg_rows(tmp_warehouse, REJECTED) == []


def test_a_file_rewritten_in_place_is_refused_not_resumed(tmp_path, tmp_warehouse):
    path = tmp_path / "e.jsonl"
    head = event("h0")
    path.write_bytes(b"\n".join([head] + [event(f"a{i}") for i in range(1, 4)]) + b"\n")
    wh = str(tmp_warehouse.root)
    floe.run("run", "--input", str(path), "--warehouse", wh)
    path.write_bytes(b"\n".join([head] + [event(f"b{i}") for i in range(1, 6)]) + b"\n")
    result = floe.run("run", "--input", str(path), "--warehouse", wh, check=False)
    assert result.returncode == 1
    assert f"{path} changed since its first" in result.stderr and "rewritten in place" in result.stderr
    assert sorted(rows_by_key(tmp_warehouse)) == ["a1", "a2", "a3", "h0"]
    # Under another path, the new content is a new input.
    moved = tmp_path / "e2.jsonl"
    path.rename(moved)
    floe.run("run", "--input", str(moved), "--warehouse", wh)
    assert sorted(rows_by_key(tmp_warehouse)) == ["a1", "a2", "a3", "b1", "b2", "b3", "b4", "b5", "h0"]


def test_a_half_written_line_waits_for_its_writer_and_positions_stay_true(spark, tmp_path, tmp_warehouse):
    path = tmp_path / "live.jsonl"
    wh = str(tmp_warehouse.root)
    one, two, three = event("e1"), event("e2", amount=2), event("e3")
    # The writer is in the middle of line 2.
    path.write_bytes(one + b"\n" + two[:20])
    out = floe.run("run", "--input", str(path), "--warehouse", wh).stdout
    assert floe.summary_value(out, "records read") == 1
    # It ends line 2, without its newline yet: a complete value is taken.
    path.write_bytes(one + b"\n" + two)
    out = floe.run("run", "--input", str(path), "--warehouse", wh).stdout
    assert floe.summary_value(out, "records read") == 1
    # The newline, then line 3: no phantom blank line in between.
    path.write_bytes(one + b"\n" + two + b"\n" + three + b"\n")
    out = floe.run("run", "--input", str(path), "--warehouse", wh).stdout
    assert floe.summary_value(out, "records read") == 1
    assert floe.summary_value(out, "blank lines") == 0

    exp = expected_from_bytes(path.read_bytes(), str(path))
    got = rows_by_key(tmp_warehouse)
    assert {k: as_model_row(r) for k, r in got.items()} == exp.rows
    assert {k: r["_source_position"] for k, r in got.items()} == {"e1": "1", "e2": "2", "e3": "3"}
    assert pyiceberg_rows(tmp_warehouse, REJECTED) == []
    spark_rows = spark_sql(spark, tmp_warehouse, "SELECT event_uuid, _source_position FROM {t} ORDER BY event_uuid", t=EVENTS)
    assert [(r["event_uuid"], r["_source_position"]) for r in spark_rows] == [("e1", "1"), ("e2", "2"), ("e3", "3")]


def test_the_last_line_of_stdin_is_taken_at_its_end(tmp_warehouse):
    out = floe.run(
        "run", "--input", "-", "--warehouse", str(tmp_warehouse.root), stdin=event("s1") + b"\n" + b'{"event_uuid":"cut'
    ).stdout
    assert floe.summary_value(out, "rows written") == 1
    assert [(r["reason"], r["_source_position"]) for r in pyiceberg_rows(tmp_warehouse, REJECTED)] == [("invalid_json", "2")]


def test_a_slow_pipe_commits_on_the_flush_interval_before_it_closes(tmp_warehouse):
    proc = subprocess.Popen(
        [floe.BIN, "run", "--input", "-", "--warehouse", str(tmp_warehouse.root), "--flush-interval", "1s"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=floe.env(),
    )
    try:
        for i in range(3):
            proc.stdin.write(event(f"p{i}") + b"\n")
            proc.stdin.flush()

        def committed() -> bool:
            floe.exited(proc)
            try:
                return len(pyiceberg_rows(tmp_warehouse, EVENTS)) == 3
            except Exception:  # noqa: BLE001 (no table yet)
                return False

        # The pipe stays open: the rows must be there before it closes.
        floe.wait_for(committed, floe.TIMEOUT, "three rows committed while stdin is still open")
        # One more line, then the end of the pipe.
        _, err = proc.communicate(input=event("p3") + b"\n", timeout=floe.TIMEOUT)
        assert proc.returncode == 0, err.decode()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert sorted(rows_by_key(tmp_warehouse)) == ["p0", "p1", "p2", "p3"]


def test_a_byte_order_mark_keys_sent_twice_and_a_file_named_twice(tmp_path, tmp_warehouse):
    path = tmp_path / "bom.jsonl"
    twice = b'{"event_uuid":"d1","amount":1,"event_name":"pay:x","created_at":%d,"amount":999}' % (int(time.time()) - 60)
    path.write_bytes(b"\xef\xbb\xbf" + event("first") + b"\n" + twice + b"\n")
    link = tmp_path / "link.jsonl"
    os.symlink(path, link)
    out = floe.run("run", "--input", str(path), "--input", str(link), "--warehouse", str(tmp_warehouse.root)).stdout
    assert floe.summary_value(out, "records read") == 2
    assert floe.summary_value(out, "duplicates dropped") == 0
    exp = expected_from_bytes(path.read_bytes(), str(path))
    got = rows_by_key(tmp_warehouse)
    assert {k: as_model_row(r) for k, r in got.items()} == exp.rows
    assert json.loads(got["d1"]["payload"]) == {"amount": 999}
    assert got["d1"]["payload"].count("amount") == 1
    duck = duckdb_query(tmp_warehouse, EVENTS, "SELECT json_extract(payload, '$.amount')::INT AS a FROM t WHERE event_uuid = 'd1'")
    assert duck == [{"a": 999}]
    assert pyiceberg_rows(tmp_warehouse, REJECTED) == []
