"""Proves the reader plumbing before Floe exists.

PyIceberg writes the contract tables into an SQLite catalog `floe` (two
appends, a copy-on-write delete by PyIceberg, then a merge-on-read DELETE by
Spark, which writes position delete files like Floe will). PyIceberg, DuckDB
and Spark must then return exactly the same rows, and exactly the rows the
model in `support.expected` predicts minus the deleted keys.
"""

from __future__ import annotations

import datetime
import json
import random

import pyarrow as pa
import pytest
from pyiceberg.expressions import In

from support import contract, expected, readers

NOW = 1_700_600_000.0  # the ingestion time the model checks created_at against
INGESTED_AT = datetime.datetime(2023, 11, 21, 21, 0, 0, 123456, tzinfo=datetime.timezone.utc)
DAY = 86_400


def make_input(path) -> None:
    """Writes ~320 JSON lines: valid events over 3 days, duplicates, every reject reason."""
    rng = random.Random(7)
    names = ["account:created", "payment:order:completed", "session", "account:", "page:view"]
    lines: list[bytes] = []
    uuids: list[str] = []
    for i in range(300):
        uuid = f"00000000-0000-4000-8000-{i:012d}"
        uuids.append(uuid)
        created = 1_700_000_000 + rng.randrange(3 * DAY)
        # Mix integers, fractions that need rounding, and sub-microsecond noise.
        created_at = [created, created + 0.5, created + rng.randrange(10**6) / 10**6, created + 0.1234567][i % 4]
        event = {"event_uuid": uuid, "event_name": names[i % len(names)], "created_at": created_at}
        if i % 3:
            event["amount"] = i * 1.25
            event["tags"] = ["a", "ü", {"n": i}]
        lines.append(json.dumps(event).encode())
    # Duplicates with corrected bodies: the later line must win.
    for uuid in uuids[:20]:
        lines.append(json.dumps({"event_uuid": uuid, "event_name": "account:updated", "created_at": 1_700_100_000, "v": 2}).encode())
    lines += [
        b"",
        b"   \t",
        b"{not json",
        b"\xff\xfe not utf-8",
        b"[1, 2, 3]",
        b'{"event_name": "a", "created_at": 1700000000}',
        b'{"event_uuid": "x1", "event_name": ":b", "created_at": 1700000000}',
        b'{"event_uuid": "x2", "event_name": "a", "created_at": "1700000000"}',
        b'{"event_uuid": "x3", "event_name": "a", "created_at": 12}',
        b'{"event_uuid": "x4", "event_name": "a", "created_at": 1700000000, "pad": "' + b"x" * 600 + b'"}',
    ]
    path.write_bytes(b"\r\n".join(lines) + b"\n")


def arrow_events(rows: list[dict], schema) -> pa.Table:
    """Model rows -> the Arrow table Floe would write (payload as compact JSON text)."""
    records = [
        {
            **r,
            "created_datetime": readers.from_micros(r["created_datetime"]),
            "payload": None if r["payload"] is None else json.dumps(r["payload"], separators=(",", ":")),
            "_ingested_at": INGESTED_AT,
        }
        for r in rows
    ]
    return pa.Table.from_pylist(records, schema=schema.as_arrow())


def arrow_rejected(rejected: list[tuple[str, str, bytes]], source_id: str, schema) -> pa.Table:
    records = [
        {
            "reason": reason,
            "message": f"smoke test: {reason}",
            "raw": raw,
            "_ingested_at": INGESTED_AT,
            "_source_id": source_id,
            "_source_position": position,
        }
        for reason, position, raw in rejected
    ]
    return pa.Table.from_pylist(records, schema=schema.as_arrow())


def create_events_table(wh):
    """Creates the WAL-mode catalog, namespace `analytics` and table `events`."""
    wh.init_catalog_db()
    catalog = readers.pyiceberg_catalog(wh, create_tables=True)
    catalog.create_namespace(contract.NAMESPACE)
    events = catalog.create_table(
        contract.EVENTS,
        schema=contract.events_schema(),
        partition_spec=contract.events_spec(),
        location=str(wh.table_location(contract.EVENTS)),
        properties={"format-version": "2", "write.delete.mode": "merge-on-read"},
    )
    return catalog, events


def sort_by(rows: list[dict], key) -> list[dict]:
    return sorted(rows, key=key)


# PyIceberg cannot write position deletes yet and says so; Spark writes them below.
@pytest.mark.filterwarnings("ignore:Merge on read is not yet supported")
def test_three_readers_agree(tmp_warehouse, tmp_path, spark):
    wh = tmp_warehouse
    source = tmp_path / "events.jsonl"
    make_input(source)
    model = expected.expected_from_file(source, str(source), max_record_size=512, now=NOW)
    assert len(model.rows) == 300 and model.duplicates == 20
    assert set(model.rejected_by_reason) == set(expected.REASONS)

    catalog, events = create_events_table(wh)
    rejected = catalog.create_table(
        contract.REJECTED,
        schema=contract.rejected_schema(),
        location=str(wh.table_location(contract.REJECTED)),
        properties={"format-version": "2"},
    )
    rows = list(model.rows.values())
    events.append(arrow_events(rows[:180], events.schema()))
    rejected.append(arrow_rejected(model.rejected, str(source), rejected.schema()))

    # Spark attaches to the catalog now, then must see later commits by another writer.
    assert readers.spark_sql(spark, wh, "SELECT count(*) AS n FROM {table}") == [{"n": 180}]

    events.append(arrow_events(rows[180:], events.schema()))
    cow_deleted = [r["event_uuid"] for r in rows[::10]]  # spans both appends
    events.delete(In("event_uuid", cow_deleted))
    catalog.close()
    # No stale snapshot: Spark sees both commits made by another writer since its last read.
    assert readers.spark_sql(spark, wh, "SELECT count(*) AS n FROM {table}") == [{"n": 300 - len(cow_deleted)}]

    mor_deleted = [r["event_uuid"] for r in rows[5::10]]
    in_list = ", ".join(f"'{u}'" for u in mor_deleted)
    readers.spark_sql(spark, wh, f"DELETE FROM {{table}} WHERE event_uuid IN ({in_list})")

    # The Spark DELETE must have produced position deletes, the feature Floe relies on.
    live = readers.pyiceberg_catalog(wh)
    files = live.load_table(contract.EVENTS).inspect.files().to_pylist()
    live.close()
    assert any(f["content"] == 1 for f in files), "expected position delete files"

    deleted = set(cow_deleted) | set(mor_deleted)
    want = {k: v for k, v in model.rows.items() if k not in deleted}
    assert len(want) == 240

    key = lambda r: r["event_uuid"]  # noqa: E731
    py_rows = sort_by(readers.pyiceberg_rows(wh, contract.EVENTS), key)
    duck_rows = sort_by(readers.duckdb_rows(wh, contract.EVENTS), key)
    spark_rows = sort_by(readers.spark_rows(spark, wh, contract.EVENTS), key)
    assert len(py_rows) == len(want)
    assert py_rows == duck_rows
    assert py_rows == spark_rows
    assert {r["event_uuid"]: readers.as_model_row(r) for r in py_rows} == want
    assert all(r["created_datetime"].tzinfo is not None for r in py_rows)

    # Aggregates through SQL, as the end-to-end tests will use them.
    want_by_type: dict[str, int] = {}
    for r in want.values():
        want_by_type[r["event_type"]] = want_by_type.get(r["event_type"], 0) + 1
    duck_counts = readers.duckdb_query(wh, contract.EVENTS, "SELECT event_type, count(*) AS n FROM t GROUP BY 1")
    spark_counts = readers.spark_sql(spark, wh, "SELECT event_type, count(*) AS n FROM {table} GROUP BY 1")
    assert {r["event_type"]: r["n"] for r in duck_counts} == want_by_type
    assert {r["event_type"]: r["n"] for r in spark_counts} == want_by_type

    # Binary raw bytes and strings of the rejected table, through all three readers.
    pos = lambda r: int(r["_source_position"])  # noqa: E731
    rej_py = sort_by(readers.pyiceberg_rows(wh, contract.REJECTED), pos)
    rej_duck = sort_by(readers.duckdb_rows(wh, contract.REJECTED), pos)
    rej_spark = sort_by(readers.spark_rows(spark, wh, contract.REJECTED), pos)
    assert rej_py == rej_duck == rej_spark
    assert [(r["reason"], r["_source_position"], r["raw"]) for r in rej_py] == model.rejected


def test_spark_switches_between_warehouses(tmp_path, spark):
    """One Spark session serves many warehouses, one after the other, without stale reads."""
    whs = []
    for name, count in (("a", 3), ("b", 5)):
        wh = readers.Warehouse(tmp_path / name)
        catalog, events = create_events_table(wh)
        model = expected.expected_from_bytes(
            b"\n".join(
                json.dumps({"event_uuid": f"{name}{i}", "event_name": name, "created_at": 1_700_000_000 + i}).encode()
                for i in range(count)
            ),
            name,
            now=NOW,
        )
        events.append(arrow_events(list(model.rows.values()), events.schema()))
        catalog.close()
        whs.append((wh, events, model))

    count = "SELECT count(*) AS n FROM {table}"
    (a, a_events, a_model), (b, _, _) = whs
    assert readers.spark_sql(spark, a, count) == [{"n": 3}]
    assert readers.spark_sql(spark, b, count) == [{"n": 5}]
    a_events.append(arrow_events(list(a_model.rows.values()), a_events.schema()))
    assert readers.spark_sql(spark, a, count) == [{"n": 6}]
    assert readers.spark_sql(spark, a, "SELECT DISTINCT _source_id FROM {table}") == [{"_source_id": "a"}]
