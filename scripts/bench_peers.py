#!/usr/bin/env python3
"""Floe against two peers doing the same job: DuckDB and PyIceberg.

Each contender turns the same generated JSON Lines file (as scripts/bench.py
makes it: 2% exact and 1% changed duplicates, 0.1% malformed, 3 recent days)
into rows of the events table (schemas/events/0001-initial.json):

* validation: a line that is not UTF-8 JSON, not an object, longer than
  1 MiB, or lacks a good event_uuid, event_name or created_at (a number
  from 2000-01-01 to a day from now) is skipped. Floe stores such lines in
  its rejected table; the peers drop them.
* enrichment: event_type and event_subtype from event_name (':'-parts, an
  empty subtype is null), created_datetime (created_at to the microsecond,
  rounded half up), payload (the other members as compact JSON, null when
  none), _ingested_at, _source_id (the path), _source_position (line
  number) and _content_hash. Floe hashes the body with XXH3-64; DuckDB
  takes hash(line) >> 1, PyIceberg Python's hash() of the line bytes:
  equivalent work, not identical values.
* dedup by event_uuid within the file: the last occurrence wins (Floe's
  upsert). For an exact duplicate Floe keeps the first row, the peers the
  last one: same body, another _source_position.
* output: zstd Parquet at level 1 (Floe's default), partitioned by
  day(created_datetime) and event_type, rows sorted by event_type and
  created_datetime (the table's sort order; DuckDB's parallel COPY keeps it
  but for a few chunk boundaries).

The contenders:

* Floe: `floe run --input FILE --warehouse FRESH_DIR`, default settings. It
  flushes every 128 MiB of input, so it commits several times, writes a
  file per partition and flush, and position deletes for changed
  duplicates that span flushes; it also writes a bloom filter on event_uuid.
* DuckDB: one COPY statement (read_ndjson_objects WITH ORDINALITY for the
  line number, json_merge_patch with nulls to drop the three keys from the
  payload, QUALIFY row_number() for the dedup) to partitioned Parquet files
  that keep the partition columns (event_type, and a date column Iceberg
  does without). No Iceberg metadata, no catalog: not a table. Numbering
  the lines keeps the scan and the key extraction on one thread (an
  order-preserving pipeline); materialising the numbered lines first, to
  spread that work, cost more CPU than it saved.
* PyIceberg: lines parsed with orjson if importable, else the standard
  json module (the run prints which); dedup in a dict; one pyarrow table;
  `append` to a table of a fresh SQLite catalog. The parsing loop is
  single-threaded Python.

The peers re-serialise payload numbers (Floe keeps their digits): the row
check below compares payloads as parsed JSON.

Measured per run, each contender a child process timed with wait4 (its own
CPU user + system and peak RSS), each into a fresh temporary folder: wall
seconds, CPU seconds, peak RSS, Parquet files and bytes (everything under
the table's data/ folder, position deletes included; no metadata). Runs
alternate the contenders, the first one rotating. After the first run of
each, its rows are checked against Floe's: per (day, event_type) the row
count and a digest of (event_uuid, event_name, event_subtype,
created_datetime, payload). Every run must end with the same row count.

Usage: .venv/bin/python scripts/bench_peers.py [--bin target/release/floe] [--runs 5]
                                               [--events 1000000] [--peers duckdb,pyiceberg]
Needs the test venv (duckdb, pyiceberg, pyarrow; orjson optional).
"""

import argparse
import json
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench import DAY, generate, timed

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = ROOT / "schemas" / "events" / "0001-initial.json"
MAX_RECORD = 1 << 20  # Floe's default max_record_size
MIN_CREATED_AT = 946_684_800  # 2000-01-01
NAMES = {"floe": "Floe", "duckdb": "DuckDB", "pyiceberg": "PyIceberg"}

DUCKDB_SQL = """
COPY (
  WITH lines AS (
    SELECT ordinality AS pos, json AS line
    FROM read_ndjson_objects($path, ignore_errors = true) WITH ORDINALITY
  ), keyed AS (
    SELECT pos, line, json_extract(line, ['$.event_uuid', '$.event_name', '$.created_at']) AS k
    FROM lines WHERE strlen(line) <= $max_record
  ), valid AS (
    -- k holds the members as JSON text: a string starts with '"'; only a
    -- number's text casts to DOUBLE ('"1700000000"', 'true' and 'null' do not).
    SELECT pos, line, k[1] ->> '$' AS event_uuid, k[2] ->> '$' AS event_name,
           TRY_CAST(CAST(k[3] AS VARCHAR) AS DOUBLE) AS created_at
    FROM keyed
    WHERE starts_with(k[1], '"') AND k[1] <> '""'
      AND starts_with(k[2], '"') AND split_part(event_name, ':', 1) <> ''
      AND created_at BETWEEN $min_created_at AND $max_created_at
    QUALIFY row_number() OVER (PARTITION BY event_uuid ORDER BY pos DESC) = 1
  ), enriched AS (
    SELECT *, make_timestamp(CAST(floor(created_at * 1e6 + 0.5) AS BIGINT)) AS ts
    FROM valid
  )
  SELECT event_uuid, event_name,
         split_part(event_name, ':', 1) AS event_type,
         nullif(split_part(event_name, ':', 2), '') AS event_subtype,
         created_at,
         CAST(ts AS TIMESTAMPTZ) AS created_datetime,
         nullif(CAST(json_merge_patch(line, '{"event_uuid":null,"event_name":null,"created_at":null}')
                     AS VARCHAR), '{}') AS payload,
         CAST(now() AS TIMESTAMPTZ) AS _ingested_at,
         $path AS _source_id,
         CAST(pos AS VARCHAR) AS _source_position,
         CAST(hash(line) >> 1 AS BIGINT) AS _content_hash,
         CAST(ts AS DATE) AS created_datetime_day
  FROM enriched
  ORDER BY event_type, created_datetime
) TO '{out}' (FORMAT parquet, COMPRESSION zstd, COMPRESSION_LEVEL 1,
              PARTITION_BY (created_datetime_day, event_type), WRITE_PARTITION_COLUMNS true)
"""


def duckdb_child(path: str, out: str) -> None:
    """The DuckDB peer (a child process): one COPY, default thread count."""
    import duckdb

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    params = {
        "path": path,
        "max_record": MAX_RECORD,
        "min_created_at": MIN_CREATED_AT,
        "max_created_at": time.time() + DAY,
    }
    (rows,) = con.execute(DUCKDB_SQL.replace("{out}", out.replace("'", "''")), params).fetchone()
    print(json.dumps({"rows": rows}))


def pyiceberg_child(path: str, warehouse: str) -> None:
    """The PyIceberg peer (a child process): parse, validate, enrich and
    dedup in Python, then one append to a fresh partitioned table."""
    try:
        import orjson

        loads, lib = orjson.loads, "orjson"

        def dumps(value) -> str:
            return orjson.dumps(value).decode()  # as str: Arrow converts bytes at a far higher peak
    except ImportError:

        def no_constants(name):
            raise ValueError(f"not JSON: {name}")

        decoder = json.JSONDecoder(parse_constant=no_constants)
        dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
        lib = "json"

        def loads(line: bytes):
            return decoder.decode(line.decode())  # strict UTF-8, like Floe

    import datetime

    import pyarrow as pa
    from pyiceberg.catalog.sql import SqlCatalog
    from pyiceberg.partitioning import PartitionField, PartitionSpec
    from pyiceberg.schema import Schema
    from pyiceberg.transforms import DayTransform, IdentityTransform

    max_created_at = time.time() + DAY
    rows, rejected = {}, 0
    with open(path, "rb") as f:
        for pos, line in enumerate(f, 1):
            if len(line) > MAX_RECORD and len(line.rstrip(b"\r\n")) > MAX_RECORD:
                rejected += 1
                continue
            if not line.strip():
                continue  # blank lines are not records
            try:
                obj = loads(line)
            except ValueError:
                rejected += 1
                continue
            if type(obj) is not dict:
                rejected += 1
                continue
            uuid, name, at = obj.pop("event_uuid", None), obj.pop("event_name", None), obj.pop("created_at", None)
            parts = name.split(":", 2) if type(name) is str else [""]
            if (type(uuid) is not str or not uuid or not parts[0] or type(at) not in (int, float)
                    or not MIN_CREATED_AT <= at <= max_created_at):
                rejected += 1
                continue
            subtype = parts[1] if len(parts) > 1 and parts[1] else None
            # Last occurrence wins; obj now holds only the payload members, in input order.
            rows[uuid] = (uuid, name, parts[0], subtype, float(at), int(at * 1_000_000 + 0.5),  # half up
                          dumps(obj) if obj else None, str(pos), hash(line))
    columns = list(zip(*rows.values()))
    n = len(rows)
    del rows
    schema = Schema.model_validate_json(SCHEMA.read_text())
    ts, text = pa.timestamp("us", "UTC"), pa.large_string()
    now = pa.scalar(datetime.datetime.now(datetime.timezone.utc), ts)
    arrays = [pa.array(c, t) for c, t in zip(columns[:5], [text, text, text, text, pa.float64()])]
    arrays += [
        pa.array(columns[5], pa.int64()).cast(ts),
        pa.array(columns[6], text),
        pa.repeat(now, n),
        pa.repeat(pa.scalar(path, text), n),
        pa.array(columns[7], text),
        pa.array(columns[8], pa.int64()),
    ]
    del columns
    table = pa.Table.from_arrays(arrays, schema=schema.as_arrow())
    table = table.sort_by([("event_type", "ascending"), ("created_datetime", "ascending")])
    root = Path(warehouse)
    catalog = SqlCatalog("floe", uri=f"sqlite:///{root / 'catalog.db'}", warehouse=root.as_uri())
    catalog.create_namespace("analytics")
    spec = PartitionSpec(
        PartitionField(source_id=6, field_id=1000, transform=DayTransform(), name="created_datetime_day"),
        PartitionField(source_id=3, field_id=1001, transform=IdentityTransform(), name="event_type"),
    )
    events = catalog.create_table(
        "analytics.events",
        schema,
        partition_spec=spec,
        location=(root / "analytics" / "events").as_uri(),
        properties={"write.parquet.compression-codec": "zstd", "write.parquet.compression-level": "1"},
    )
    events.append(table)
    print(json.dumps({"rows": table.num_rows, "rejected": rejected, "json": lib}))


def summary_count(stdout: str, label: str) -> int:
    return int(re.search(rf"{label}\s+([\d,]+)", stdout).group(1).replace(",", ""))


def run(contender: str, binary: str, path: Path, out: Path) -> dict:
    """One timed run of a contender into the fresh folder `out`."""
    if contender == "floe":
        r = timed([binary, "run", "--input", str(path), "--warehouse", str(out)], dict(os.environ, FLOE_PROGRESS="never"))
        # Rows replaced across flushes were written, then position-deleted.
        r["rows"] = summary_count(r["stdout"], "rows written") - summary_count(r["stdout"], "rows deleted")
        r["note"] = f"{summary_count(r['stdout'], 'rejected'):,} rejected"
    else:
        r = timed([sys.executable, __file__, f"_{contender}", str(path), str(out)])
        r.update(json.loads(r["stdout"].strip().splitlines()[-1]))
        r["note"] = f"{r['rejected']:,} rejected, {r['json']}" if contender == "pyiceberg" else ""
    data = out if contender == "duckdb" else out / "analytics" / "events" / "data"
    files = list(data.rglob("*.parquet"))
    r["files"], r["bytes"] = len(files), sum(f.stat().st_size for f in files)
    deletes = sum(f.name.endswith("-deletes.parquet") for f in files)  # Floe's name for position deletes
    if deletes:
        r["note"] += f", {deletes} of the files position deletes"
    return r


FINGERPRINT_SQL = """
SELECT CAST(make_timestamp(epoch_us(created_datetime)) AS DATE) AS day, event_type, count(*) AS n,
       sum(CAST(hash(event_uuid, event_name, event_subtype, epoch_us(created_datetime), json(payload)) AS HUGEINT))
FROM src GROUP BY ALL
"""


def fingerprint_child(contender: str, out: str) -> None:
    """Per (day, event_type): row count and an order-free digest of the rows,
    read back by DuckDB (Floe's and PyIceberg's tables through a PyIceberg
    scan, which applies position deletes). A child process too: the parent
    must stay small, as a child's ru_maxrss starts from the parent's peak
    (it is taken over at exec)."""
    import duckdb

    con = duckdb.connect()
    root = Path(out)
    if contender == "duckdb":
        con.execute(f"CREATE VIEW src AS SELECT * FROM read_parquet('{root}/**/*.parquet', hive_partitioning = false)")
    else:
        from pyiceberg.catalog.sql import SqlCatalog

        catalog = SqlCatalog("floe", uri=f"sqlite:///{root / 'catalog.db'}", warehouse=root.as_uri(), init_catalog_tables="false")
        columns = ("event_uuid", "event_name", "event_type", "event_subtype", "created_datetime", "payload")
        con.register("src", catalog.load_table("analytics.events").scan(selected_fields=columns).to_arrow())
    print(json.dumps([[str(day), kind, n, int(digest)] for day, kind, n, digest in con.execute(FINGERPRINT_SQL).fetchall()]))


def fingerprint(contender: str, out: Path) -> dict:
    """fingerprint_child's answer for the output in `out`."""
    rows = json.loads(timed([sys.executable, __file__, "_fingerprint", contender, str(out)])["stdout"])
    return {(day, kind): (n, digest) for day, kind, n, digest in rows}


def check_rows(fingerprints: dict) -> None:
    """Fails loudly unless every contender holds the same rows as the first."""
    (first, want), *others = fingerprints.items()
    for contender, got in others:
        differ = sorted(k for k in want.keys() | got.keys() if want.get(k) != got.get(k))
        if differ:
            lines = [f"  {d} {t}: {NAMES[first]} {want.get((d, t))}, {NAMES[contender]} {got.get((d, t))}"
                     for d, t in differ[:10]]
            sys.exit(f"rows differ in {len(differ)} of {len(want)} partitions:\n" + "\n".join(lines))
    print(f"rows checked: {len(want)} partitions hold the same rows in {', '.join(NAMES[c] for c in fingerprints)}")


CHILDREN = {"_duckdb": duckdb_child, "_pyiceberg": pyiceberg_child, "_fingerprint": fingerprint_child}


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] in CHILDREN:
        CHILDREN[sys.argv[1]](*sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bin", default=str(ROOT / "target" / "release" / "floe"))
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--peers", default="duckdb,pyiceberg", help="comma-separated subset of duckdb,pyiceberg")
    args = parser.parse_args()
    peers = [p.strip() for p in args.peers.split(",") if p.strip()]
    if not set(peers) <= {"duckdb", "pyiceberg"}:
        parser.error(f"unknown peer in {args.peers!r}")
    contenders = ["floe", *peers]
    # Whole days and bench.py's file name, so the generated file is shared.
    start = (int(time.time()) // DAY - 4) * DAY
    path = generate(args.bin, ROOT / "target" / "bench" / f"dups-{args.events}-d{start // DAY}.jsonl", args.events, start)

    results = {c: [] for c in contenders}
    fingerprints = {}
    for i in range(args.runs):
        order = contenders[i % len(contenders):] + contenders[:i % len(contenders)]
        for contender in order:
            out = Path(tempfile.mkdtemp(prefix=f"floe-bench-{contender}-"))
            try:
                r = run(contender, args.bin, path, out)
                if i == 0:
                    fingerprints[contender] = fingerprint(contender, out)
            finally:
                shutil.rmtree(out, ignore_errors=True)
            results[contender].append(r)
            print(
                f"run {i + 1}/{args.runs} {NAMES[contender]:>9}: {r['wall']:.2f} s wall, {r['cpu']:.2f} CPU-s, "
                f"{r['rss_mib']:.0f} MiB peak, {r['rows']:,} rows, {r['files']} files, "
                f"{r['bytes'] / 1048576:.1f} MiB" + (f" ({r['note']})" if r["note"] else ""),
                flush=True,
            )
        counts = {c: results[c][-1]["rows"] for c in contenders}
        if len(set(counts.values())) != 1:
            sys.exit(f"row counts differ: {counts}")
        if i == 0:
            check_rows({c: fingerprints[c] for c in contenders})

    def median(c: str, key: str) -> float:
        return statistics.median(r[key] for r in results[c])

    print(f"\nmedians of {args.runs} runs, {args.events:,} input events each, {counts['floe']:,} rows out")
    print(f"{'contender':>10} {'wall s':>7} {'events/s':>10} {'CPU-s/1M':>9} {'peak RSS MiB':>13} {'output MiB':>11} {'files':>6}")
    for c in contenders:
        wall = median(c, "wall")
        print(
            f"{NAMES[c]:>10} {wall:>7.2f} {args.events / wall:>10,.0f} {median(c, 'cpu') / (args.events / 1e6):>9.2f} "
            f"{median(c, 'rss_mib'):>13.0f} {median(c, 'bytes') / 1048576:>11.1f} {median(c, 'files'):>6.0f}"
        )
    for p in peers:
        ratio = {k: median(p, k) / median("floe", k) for k in ("wall", "cpu", "rss_mib")}
        print(
            f"{NAMES[p]} takes {ratio['wall']:.2f}× Floe's wall time, {ratio['cpu']:.2f}× its CPU and "
            f"{ratio['rss_mib']:.2f}× its peak RSS; Floe's output is "
            f"{(median('floe', 'bytes') / median(p, 'bytes') - 1) * 100:+.1f}% vs {NAMES[p]}'s"
        )
    if "duckdb" in peers:
        print(
            f"Floe CPU / DuckDB CPU = {median('floe', 'cpu') / median('duckdb', 'cpu'):.2f} (target <= 0.35); "
            f"output {(median('floe', 'bytes') / median('duckdb', 'bytes') - 1) * 100:+.1f}% (target <= +5%)"
        )


if __name__ == "__main__":
    main()
