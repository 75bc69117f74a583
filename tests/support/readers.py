"""Independent Iceberg readers for Floe's end-to-end tests: PyIceberg, DuckDB, Spark.

Floe promises that every engine reads the same rows (DESIGN.md §3.4). These
helpers read a table written by Floe into a local warehouse with an SQLite
catalog, through three implementations that share no code with Floe or with
each other, and return plain Python values that compare with `==`:

* rows are lists of dicts keyed by column name;
* `timestamptz` values are UTC-aware `datetime`s, `timestamp` values naive ones;
* binary values are `bytes`; strings, floats and ints are as-is.

`as_model_row` turns a reader row of `analytics.events` into the shape
`tests/support/expected.py` computes, so a test can compare reader output with
the model in one line.

Warehouse layout: `<root>/catalog.db` is the SQLite catalog (catalog name
`floe`, PyIceberg SqlCatalog / Java JdbcCatalog V1 tables) and `<root>` is the
warehouse folder, so `analytics.events` lives in `<root>/analytics/events`.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import shutil
import sqlite3
import tempfile
import threading
from pathlib import Path
from typing import Any

CATALOG_NAME = "floe"
EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
REPO_ROOT = Path(__file__).resolve().parents[2]
# Built by scripts/test-tools.sh; the runtime jar references these classes but lacks them.
SHADED_JACKSON_JAR = REPO_ROOT / ".tools" / "iceberg-shaded-jackson.jar"
SQLITE_JDBC_JAR = Path("/usr/share/java/sqlite-jdbc.jar")
ICEBERG_RUNTIME_JAR = "iceberg-spark-runtime-3.5_2.12-1.10.2.jar"
LOG4J2_CONFIG = Path(__file__).resolve().parent / "log4j2.properties"


# --------------------------------------------------------------------------- warehouse


class Warehouse:
    """A local warehouse folder and its SQLite catalog file."""

    def __init__(self, path: str | os.PathLike, catalog_db: str | os.PathLike | None = None):
        self.root = Path(path).resolve()
        self.catalog_db = Path(catalog_db).resolve() if catalog_db else self.root / "catalog.db"

    def __repr__(self) -> str:
        return f"Warehouse({str(self.root)!r})"

    @property
    def warehouse_uri(self) -> str:
        """The warehouse as PyIceberg wants it (a file:// URI)."""
        return self.root.as_uri()

    @property
    def sqlalchemy_uri(self) -> str:
        return f"sqlite:///{self.catalog_db}"

    @property
    def jdbc_uri(self) -> str:
        return f"jdbc:sqlite:{self.catalog_db}"

    def table_location(self, ident: str) -> Path:
        """Where Floe puts a table: `<root>/<namespace>/<table>`."""
        namespace, table = split_ident(ident)
        return self.root / namespace / table

    def init_catalog_db(self) -> None:
        """Creates the SQLite file in WAL mode (persistent in the file).

        WAL lets Spark's or DuckDB's readers keep a read transaction open while
        another process commits; in rollback-journal mode such a reader makes
        the writer fail with "database is locked".
        """
        self.root.mkdir(parents=True, exist_ok=True)
        with sqlite3.connect(self.catalog_db) as con:
            mode = con.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if mode.lower() != "wal":
            raise RuntimeError(f"{self.catalog_db}: journal_mode is {mode}, wanted wal")

    def metadata_location(self, ident: str) -> str:
        """The table's current metadata file, as recorded in the catalog."""
        namespace, table = split_ident(ident)
        # Read-only and closed at once: a test must never hold a lock Floe could trip on.
        con = sqlite3.connect(f"{self.catalog_db.as_uri()}?mode=ro", uri=True)
        try:
            row = con.execute(
                "SELECT metadata_location FROM iceberg_tables"
                " WHERE catalog_name = ? AND table_namespace = ? AND table_name = ?",
                (CATALOG_NAME, namespace, table),
            ).fetchone()
        finally:
            con.close()
        if row is None or not row[0]:
            raise LookupError(f"{ident} is not in catalog {CATALOG_NAME!r} of {self.catalog_db}")
        return row[0]


def split_ident(ident: str) -> tuple[str, str]:
    """'analytics.events' -> ('analytics', 'events'); the namespace may have dots."""
    namespace, _, table = ident.rpartition(".")
    if not namespace or not table:
        raise ValueError(f"table identifier needs a namespace: {ident!r}")
    return namespace, table


def local_path(location: str) -> str:
    """A filesystem path for a `file://` URI or a plain path."""
    if location.startswith("file://"):
        return location[len("file://") :]
    if location.startswith("file:"):
        return location[len("file:") :]
    return location


# --------------------------------------------------------------------------- values


def normalize(value: Any) -> Any:
    """Maps one reader's value onto the common representation (see module doc)."""
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, datetime.datetime) and value.tzinfo is not None:
        return value.astimezone(datetime.timezone.utc)
    if isinstance(value, list):
        return [normalize(v) for v in value]
    if isinstance(value, dict):
        return {k: normalize(v) for k, v in value.items()}
    return value


def normalize_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: normalize(v) for k, v in row.items()} for row in rows]


def micros(value: datetime.datetime) -> int:
    """Microseconds since the epoch of a UTC-aware datetime, exactly (no float)."""
    delta = value - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_micros(value: int) -> datetime.datetime:
    return EPOCH + datetime.timedelta(microseconds=value)


def as_model_row(row: dict[str, Any]) -> dict[str, Any]:
    """An `analytics.events` reader row in the shape of `expected.enrich`.

    Drops `_ingested_at` and `_content_hash` (the model cannot know them:
    a clock reading and a hash of Floe's payload text), turns `created_datetime`
    into microseconds and parses `payload` JSON text into a dict.
    """
    out = {k: v for k, v in row.items() if k not in ("_ingested_at", "_content_hash")}
    out["created_datetime"] = micros(out["created_datetime"])
    if out.get("payload") is not None:
        out["payload"] = json.loads(out["payload"])
    return out


def by_key(rows: list[dict[str, Any]], key: str = "event_uuid") -> dict[Any, dict[str, Any]]:
    """Rows indexed by a unique column; raises if the column is not unique."""
    out: dict[Any, dict[str, Any]] = {}
    for row in rows:
        if row[key] in out:
            raise AssertionError(f"duplicate {key} {row[key]!r}")
        out[row[key]] = row
    return out


# --------------------------------------------------------------------------- PyIceberg


def pyiceberg_catalog(wh: Warehouse, create_tables: bool = False):
    """A PyIceberg SqlCatalog named `floe` on the warehouse; close() it when done.

    create_tables=False makes PyIceberg fail on a missing catalog instead of
    quietly creating an empty one, which would hide a Floe bug.
    """
    from pyiceberg.catalog.sql import SqlCatalog

    return SqlCatalog(
        CATALOG_NAME,
        uri=wh.sqlalchemy_uri,
        warehouse=wh.warehouse_uri,
        init_catalog_tables=str(create_tables).lower(),
    )


def pyiceberg_table(wh: Warehouse, ident: str):
    """The table's current snapshot as a pyarrow Table, read by PyIceberg."""
    catalog = pyiceberg_catalog(wh)
    try:
        table = catalog.load_table(ident)
    finally:
        # Release the SQLite connections now; the scan only needs the files.
        catalog.close()
    return table.scan().to_arrow()


def pyiceberg_rows(wh: Warehouse, ident: str) -> list[dict[str, Any]]:
    """The table's rows read by PyIceberg, normalized."""
    return normalize_rows(pyiceberg_table(wh, ident).to_pylist())


# --------------------------------------------------------------------------- DuckDB

_duckdb_installed = False
_duckdb_lock = threading.Lock()


def duckdb_connection():
    """A new in-memory DuckDB connection with iceberg (and avro) loaded, UTC session.

    The extensions come from the pinned `duckdb-extension-*` wheels: INSTALL
    copies them into ~/.duckdb once per process, LOAD is per connection. avro
    must be loaded explicitly because autoloading would try the network.
    """
    global _duckdb_installed
    import duckdb
    from duckdb_extensions import import_extension

    con = duckdb.connect()
    with _duckdb_lock:
        if not _duckdb_installed:
            for name in ("avro", "iceberg", "httpfs"):
                import_extension(name, con=con)
            _duckdb_installed = True
    con.execute("LOAD avro")
    con.execute("LOAD iceberg")
    # timestamptz values come back as datetimes in the session zone: make it UTC.
    con.execute("SET TimeZone = 'UTC'")
    return con


def duckdb_query(wh: Warehouse, ident: str, sql: str, params: list | None = None) -> list[dict[str, Any]]:
    """Runs `sql` against the table's current snapshot, exposed as the view `t`.

    The current metadata file is looked up in the SQLite catalog, so this also
    checks that Floe's catalog pointer is right.
    """
    metadata = local_path(wh.metadata_location(ident)).replace("'", "''")
    con = duckdb_connection()
    try:
        con.execute(f"CREATE VIEW t AS SELECT * FROM iceberg_scan('{metadata}')")
        cur = con.execute(sql, params or [])
        names = [d[0] for d in cur.description]
        return normalize_rows([dict(zip(names, r)) for r in cur.fetchall()])
    finally:
        con.close()


def duckdb_rows(wh: Warehouse, ident: str) -> list[dict[str, Any]]:
    return duckdb_query(wh, ident, "SELECT * FROM t")


# --------------------------------------------------------------------------- Glue + S3 (moto)


def glue_catalog(aws):
    """PyIceberg's Glue catalog on a `support.aws.MotoServer`, S3 included."""
    from pyiceberg.catalog.glue import GlueCatalog

    from support.aws import ACCESS_KEY_ID, REGION, SECRET_ACCESS_KEY

    creds = {"region": REGION, "access-key-id": ACCESS_KEY_ID, "secret-access-key": SECRET_ACCESS_KEY}
    props = {f"glue.{k}": v for k, v in creds.items()} | {f"s3.{k}": v for k, v in creds.items()}
    return GlueCatalog(CATALOG_NAME, **props, **{"glue.endpoint": aws.endpoint, "s3.endpoint": aws.endpoint})


def glue_rows(aws, ident: str) -> list[dict[str, Any]]:
    """The table's rows read by PyIceberg through Glue and S3, normalized."""
    return normalize_rows(glue_catalog(aws).load_table(ident).scan().to_arrow().to_pylist())


def duckdb_s3_query(aws, metadata_location: str, sql: str) -> list[dict[str, Any]]:
    """Runs `sql` with the view `t` over an Iceberg table on moto's S3."""
    from support.aws import ACCESS_KEY_ID, REGION, SECRET_ACCESS_KEY

    con = duckdb_connection()
    try:
        con.execute("LOAD httpfs")
        con.execute(
            f"CREATE SECRET (TYPE s3, KEY_ID '{ACCESS_KEY_ID}', SECRET '{SECRET_ACCESS_KEY}', REGION '{REGION}', "
            f"ENDPOINT '127.0.0.1:{aws.port}', URL_STYLE 'path', USE_SSL false)"
        )
        con.execute(f"CREATE VIEW t AS SELECT * FROM iceberg_scan('{metadata_location}')")
        cur = con.execute(sql)
        names = [d[0] for d in cur.description]
        return normalize_rows([dict(zip(names, r)) for r in cur.fetchall()])
    finally:
        con.close()


# --------------------------------------------------------------------------- Spark

_spark = None
# Spark's own (Hive-style) warehouse; unused, but Spark creates it at start-up.
_spark_scratch: str | None = None
_spark_lock = threading.Lock()
# The warehouse the Spark catalog `floe` currently points at (see attach_spark_catalog).
_spark_attached: Warehouse | None = None


def spark_jars() -> list[str]:
    """The jars Spark needs to read Iceberg from an SQLite JDBC catalog."""
    from snowpark_connect_deps_iceberg import get_jar_path

    jars = [str(get_jar_path(ICEBERG_RUNTIME_JAR)), str(SHADED_JACKSON_JAR), str(SQLITE_JDBC_JAR)]
    missing = [j for j in jars if not Path(j).is_file()]
    if missing:
        raise FileNotFoundError(f"missing jars {missing}: run scripts/test-tools.sh")
    return jars


def spark_session(wh: Warehouse | None = None):
    """The one Spark session of this process (local[2], UTC, quiet), created on first use.

    Starting Spark costs seconds, so tests share it; each test points the `floe`
    catalog at its own warehouse through `attach_spark_catalog` (done here when
    `wh` is given, and by `spark_sql` anyway).
    """
    spark = _shared_spark_session()
    if wh is not None:
        attach_spark_catalog(spark, wh)
    return spark


def _shared_spark_session():
    global _spark, _spark_scratch
    with _spark_lock:
        if _spark is not None:
            return _spark
        from pyspark.sql import SparkSession

        # The default `spark-warehouse/` would appear in the current directory (the repo).
        _spark_scratch = tempfile.mkdtemp(prefix="floe-spark-")

        # Spark otherwise picks the first non-loopback address of the host name.
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        _spark = (
            SparkSession.builder.master("local[2]")
            .appName("floe-tests")
            .config("spark.jars", ",".join(spark_jars()))
            .config("spark.sql.extensions", "org.apache.iceberg.spark.extensions.IcebergSparkSessionExtensions")
            .config("spark.driver.memory", "1g")
            .config(
                "spark.driver.extraJavaOptions",
                f"-Duser.timezone=UTC -Dlog4j2.configurationFile={LOG4J2_CONFIG.as_uri()}",
            )
            .config("spark.sql.session.timeZone", "UTC")
            .config("spark.sql.warehouse.dir", os.path.join(_spark_scratch, "spark-warehouse"))
            .config("spark.sql.shuffle.partitions", "2")
            .config("spark.default.parallelism", "2")
            .config("spark.ui.enabled", "false")
            .config("spark.ui.showConsoleProgress", "false")
            # Loopback only: the machine may have no resolvable host name.
            .config("spark.driver.host", "127.0.0.1")
            .config("spark.driver.bindAddress", "127.0.0.1")
            .getOrCreate()
        )
        _spark.sparkContext.setLogLevel("ERROR")
        return _spark


def stop_spark() -> None:
    """Stops the shared session (end of the pytest session)."""
    global _spark, _spark_attached, _spark_scratch
    with _spark_lock:
        if _spark is not None:
            _spark.stop()
        if _spark_scratch is not None:
            shutil.rmtree(_spark_scratch, ignore_errors=True)
        _spark = None
        _spark_attached = None
        _spark_scratch = None


def _spark_catalog_conf(wh: Warehouse) -> dict[str, str]:
    prefix = f"spark.sql.catalog.{CATALOG_NAME}"
    return {
        prefix: "org.apache.iceberg.spark.SparkCatalog",
        f"{prefix}.type": "jdbc",
        f"{prefix}.uri": wh.jdbc_uri,
        f"{prefix}.warehouse": str(wh.root),
        # The catalog file is made by PyIceberg or Floe with the V1 tables.
        f"{prefix}.jdbc.schema-version": "V1",
        # true would make Spark probe/create the tables and keep a read lock on the file.
        f"{prefix}.jdbc.init-catalog-tables": "false",
        # Wait for Floe's short write transactions instead of failing at once.
        f"{prefix}.jdbc.busy_timeout": "10000",
        # Another process commits between our reads: never serve a cached snapshot.
        f"{prefix}.cache-enabled": "false",
    }


def attach_spark_catalog(spark, wh: Warehouse) -> str:
    """Points the Spark catalog `floe` at `wh` and returns the catalog name.

    Iceberg's JdbcCatalog uses the Spark catalog name as `catalog_name` in its
    SQL, so the Spark catalog must be called `floe`: a per-warehouse name
    would find no table. Spark builds a catalog from the conf on first use and
    then keeps it, so switching warehouses first drops the loaded one
    (`detach_spark_catalog`); the next query builds it from the new conf.
    """
    global _spark_attached
    with _spark_lock:
        if _spark_attached is not None and _spark_attached.catalog_db == wh.catalog_db:
            return CATALOG_NAME
        _detach_locked(spark)
        for key, value in _spark_catalog_conf(wh).items():
            spark.conf.set(key, value)
        _spark_attached = wh
        return CATALOG_NAME


def detach_spark_catalog(spark) -> None:
    """Closes the `floe` catalog's JDBC connections and makes Spark forget it.

    Needed only by a test that deletes and recreates a catalog file in place:
    Spark would otherwise keep reading the deleted file through open connections.
    """
    with _spark_lock:
        _detach_locked(spark)


def _detach_locked(spark) -> None:
    global _spark_attached
    # SHOW CATALOGS lists only catalogs Spark has built; asking the manager for an
    # unbuilt one would build it (and open, even create, its SQLite file) just to close it.
    loaded = {row[0] for row in spark.sql("SHOW CATALOGS").collect()}
    manager = spark._jsparkSession.sessionState().catalogManager()
    if CATALOG_NAME in loaded:
        manager.catalog(CATALOG_NAME).icebergCatalog().close()
    # CatalogManager.reset is private[sql] in Scala, hence public in bytecode.
    manager.reset()
    _spark_attached = None


def _timestamps_as_micros(df):
    """Selects timestamp columns as epoch microseconds, other columns unchanged.

    collect() turns timestamps into naive datetimes in the Python process's
    local zone, losing the zone; microseconds are exact and zone-free.
    """
    from pyspark.sql import functions as F
    from pyspark.sql.types import TimestampNTZType, TimestampType

    kinds: dict[str, str] = {}
    cols = []
    for field in df.schema.fields:
        col = F.col(f"`{field.name}`")
        if isinstance(field.dataType, TimestampType):
            kinds[field.name] = "tz"
            col = F.unix_micros(col).alias(field.name)
        elif isinstance(field.dataType, TimestampNTZType):
            kinds[field.name] = "ntz"
            # With the session zone UTC, the cast keeps the wall-clock value.
            col = F.unix_micros(col.cast("timestamp")).alias(field.name)
        cols.append(col)
    return df.select(*cols), kinds


def spark_sql(spark, wh: Warehouse, sql: str, **idents: str) -> list[dict[str, Any]]:
    """Runs SQL in Spark against the warehouse's JDBC catalog and collects the rows.

    `{table}` in `sql` becomes `floe.analytics.events`; pass e.g.
    `rejected="analytics.events_rejected"` to get `{rejected}` as well. Other
    braces (JSON literals) are left alone.
    """
    catalog = attach_spark_catalog(spark, wh)
    names = {"table": "analytics.events", **idents}
    text = re.sub(
        r"\{(\w+)\}",
        lambda m: f"{catalog}.{names[m.group(1)]}" if m.group(1) in names else m.group(0),
        sql,
    )
    df, kinds = _timestamps_as_micros(spark.sql(text))
    rows = []
    for row in df.collect():
        values = row.asDict(recursive=True)
        for name, kind in kinds.items():
            if values[name] is not None:
                ts = from_micros(values[name])
                values[name] = ts if kind == "tz" else ts.replace(tzinfo=None)
        rows.append(values)
    return normalize_rows(rows)


def spark_rows(spark, wh: Warehouse, ident: str) -> list[dict[str, Any]]:
    return spark_sql(spark, wh, "SELECT * FROM {t}", t=ident)
