"""Schema evolution by committing schema files, read back by PyIceberg, DuckDB and Spark.

The chain below starts on the shipped first file (v1). v2 promotes two payload
fields to typed columns (`quantity` int, `device` struct) and renames
`event_subtype` to `event_action`; v3 widens `quantity` to long and drops
`device`. Floe restarts on each new file, applies it in one metadata commit
and writes the next rows with it; no data file is rewritten.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from support import floe
from support.readers import duckdb_query, pyiceberg_catalog, pyiceberg_rows, spark_sql
from support.schema_chain import ROOT, event, v1, v2, v3, write_chain, write_events

EVENTS = "analytics.events"
REJECTED = "analytics.events_rejected"


def ingest(tmp_path: Path, wh, schemas: Path, name: str, events: list[dict], *extra: str):
    path = write_events(tmp_path / f"{name}.jsonl", events)
    return floe.run("run", "-i", str(path), "-w", str(wh.root), "--schema-dir", str(schemas), *extra)


def payload(row) -> dict:
    return json.loads(row["payload"]) if row["payload"] else {}


def data_files(wh) -> set[str]:
    table = pyiceberg_catalog(wh).load_table(EVENTS)
    return {f["file_path"] for f in table.inspect.files().to_pylist() if f["content"] == 0}


def test_promote_rename_widen_drop_across_restarts(spark, tmp_path, tmp_warehouse):
    wh = tmp_warehouse
    schemas = write_chain(tmp_path / "schemas", ("0001-initial.json", v1()))
    a = [event("a", i, i) for i in range(200)]
    ingest(tmp_path, wh, schemas, "a", a)
    files_v1 = data_files(wh)

    # v2: two promoted columns and a rename; every 20th quantity does not fit.
    write_chain(schemas, ("0002-promote-quantity-device.json", v2()))
    diff = floe.run("schema", "diff", "-w", str(wh.root), "--schema-dir", str(schemas)).stdout
    assert (
        f"{EVENTS}: at {schemas}/events/0001-initial.json; applying "
        f"{schemas}/events/0002-promote-quantity-device.json would "
        "rename event_subtype to event_action, add quantity int (id 12), add device struct (id 13)"
    ) in diff, diff
    assert f"{REJECTED}: at {schemas}/events_rejected/0001-initial.json, the newest file" in diff
    b = [event("b", i, "seven" if i % 20 == 0 else i * 3) for i in range(200)]
    out = ingest(tmp_path, wh, schemas, "b", b).stdout
    assert floe.summary_value(out, "quantity") == 10
    assert files_v1 <= data_files(wh), "no data file of v1 was rewritten"

    rows = {r["event_uuid"]: r for r in pyiceberg_rows(wh, EVENTS)}
    assert len(rows) == 400
    for e in a:
        r = rows[e["event_uuid"]]
        assert (r["quantity"], r["device"]) == (None, None)
        assert r["event_action"] == e["event_name"].split(":")[1]
        assert payload(r) == {k: e[k] for k in ("quantity", "device", "note")}
    for e in b:
        r = rows[e["event_uuid"]]
        assert r["device"] == e["device"]
        if e["quantity"] == "seven":
            assert r["quantity"] is None and payload(r) == {"quantity": "seven", "note": e["note"]}
        else:
            assert r["quantity"] == e["quantity"] and payload(r) == {"note": e["note"]}
    # DuckDB sees the promoted struct and the renamed column too.
    got = duckdb_query(
        wh,
        EVENTS,
        "SELECT count(device) AS devices, count(quantity) AS quantities, sum(quantity) AS total, "
        "count(*) FILTER (WHERE device.mobile) AS mobile, count(event_action) AS actions FROM t",
    )
    assert got == [
        {
            "devices": 200,
            "quantities": 190,
            "total": sum(e["quantity"] for e in b if e["quantity"] != "seven"),
            "mobile": sum(1 for e in b if e["device"]["mobile"]),
            "actions": 400,
        }
    ]
    described = floe.run("inspect", "-w", str(wh.root)).stdout
    assert f"Schema (id 1, from {schemas}/events/0002-promote-quantity-device.json):" in described
    for line in ("4 event_action string optional", "13 device struct optional", "14 os string required"):
        pattern = r"^\s+" + r"\s+".join(line.split()) + "$"
        assert re.search(pattern, described, re.MULTILINE), line
    table = pyiceberg_catalog(wh).load_table(EVENTS)
    b_snapshot = table.current_snapshot()
    assert b_snapshot.summary["floe.type-mismatch.quantity"] == "10"

    # v3: widen quantity, drop device; quantities beyond int now fit.
    write_chain(schemas, ("0003-widen-quantity-drop-device.json", v3()))
    c = [event("c", i, 3_000_000_000 + i) for i in range(200)]
    ingest(tmp_path, wh, schemas, "c", c)
    assert files_v1 <= data_files(wh)

    table = pyiceberg_catalog(wh).load_table(EVENTS)
    assert len(table.schemas()) == 3
    schema = table.schema()
    assert schema.find_field("quantity").field_id == 12
    assert str(schema.find_field("quantity").field_type) == "long"
    assert "device" not in {f.name for f in schema.fields}
    assert table.properties["floe.schema-files"].count(".json=") == 3

    want = {}
    for e in a:
        want[e["event_uuid"]] = (None, e["event_name"].split(":")[1], {k: e[k] for k in ("quantity", "device", "note")})
    for e in b:
        q = None if e["quantity"] == "seven" else e["quantity"]
        p = {"note": e["note"]} if q is not None else {"quantity": "seven", "note": e["note"]}
        want[e["event_uuid"]] = (q, e["event_name"].split(":")[1], p)
    for e in c:
        # device has no column any more: it stays in payload.
        want[e["event_uuid"]] = (e["quantity"], e["event_name"].split(":")[1], {"device": e["device"], "note": e["note"]})

    readers = {
        "pyiceberg": pyiceberg_rows(wh, EVENTS),
        "duckdb": duckdb_query(wh, EVENTS, "SELECT * FROM t"),
        "spark": spark_sql(spark, wh, "SELECT * FROM {table}"),
    }
    for reader, reader_rows in readers.items():
        assert "device" not in reader_rows[0] and "event_subtype" not in reader_rows[0], reader
        got = {r["event_uuid"]: (r["quantity"], r["event_action"], payload(r)) for r in reader_rows}
        assert got == want, reader

    # Nothing to apply now; a restart on the same chain commits no schema.
    diff = floe.run("schema", "diff", "-w", str(wh.root), "--schema-dir", str(schemas)).stdout
    assert f"{EVENTS}: at {schemas}/events/0003-widen-quantity-drop-device.json, the newest file" in diff


def test_strict_mode_rejects_a_value_that_does_not_fit(tmp_path, tmp_warehouse):
    schemas = write_chain(tmp_path / "schemas", ("0001-initial.json", v1()), ("0002-promote.json", v2()))
    events = [event("s", i, "seven" if i % 10 == 0 else i) for i in range(50)]
    out = ingest(tmp_path, tmp_warehouse, schemas, "s", events, "--type-mismatch", "reject").stdout
    assert floe.summary_value(out, "type_mismatch") == 5
    rejected = pyiceberg_rows(tmp_warehouse, REJECTED)
    assert sorted(json.loads(r["raw"])["event_uuid"] for r in rejected) == [f"s-{i:04d}" for i in range(0, 50, 10)]
    assert {(r["reason"], r["message"]) for r in rejected} == {
        ("type_mismatch", 'quantity must be an int to fill its column, found "seven"')
    }
    rows = pyiceberg_rows(tmp_warehouse, EVENTS)
    assert sorted(r["quantity"] for r in rows) == [i for i in range(50) if i % 10]


def test_a_bad_schema_file_stops_floe_before_it_reads_anything(tmp_path, tmp_warehouse):
    wh = tmp_warehouse
    schemas = write_chain(tmp_path / "schemas", ("0001-initial.json", v1()))
    ingest(tmp_path, wh, schemas, "a", [event("a", i, i) for i in range(20)])
    snapshots = len(pyiceberg_catalog(wh).load_table(EVENTS).snapshots())

    bad = v2()
    bad["fields"].append({"id": 16, "name": "tenant", "required": True, "type": "string"})
    write_chain(schemas, ("0002-tenant.json", bad))
    result = ingest_failing(tmp_path, wh, schemas, "b")
    assert f"{schemas}/events/0002-tenant.json: new field tenant is required" in result.stderr, result.stderr
    assert len(pyiceberg_catalog(wh).load_table(EVENTS).snapshots()) == snapshots

    # `floe schema check` says the same, offline.
    check = floe.run("schema", "check", "--schema-dir", str(schemas), check=False)
    assert check.returncode == 1 and "new field tenant is required" in check.stderr, check.stderr

    # Fixed, applied, then edited: the edit of an applied file is refused.
    write_chain(schemas, ("0002-tenant.json", v2()))
    ingest(tmp_path, wh, schemas, "b", [event("b", i, i) for i in range(20)])
    edited = v2()
    edited["fields"][-1]["doc"] = "changed after it was applied"
    write_chain(schemas, ("0002-tenant.json", edited))
    result = ingest_failing(tmp_path, wh, schemas, "c")
    assert f"{schemas}/events/0002-tenant.json: was edited after it was applied to the table" in result.stderr


def ingest_failing(tmp_path: Path, wh, schemas: Path, name: str):
    path = write_events(tmp_path / f"{name}.jsonl", [event(name, i, i) for i in range(20)])
    result = floe.run("run", "-i", str(path), "-w", str(wh.root), "--schema-dir", str(schemas), check=False)
    assert result.returncode == 1, result.stdout
    assert not any(r["event_uuid"].startswith(f"{name}-") for r in pyiceberg_rows(wh, EVENTS))
    return result


def test_the_shipped_chain_passes_schema_check():
    schemas = ROOT / "schemas"
    out = floe.run("schema", "check", "--schema-dir", str(schemas)).stdout
    assert out.startswith(f"{schemas}/events: ") and f"{schemas}/events_rejected: " in out
