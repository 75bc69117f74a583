"""Fixtures shared by Floe's Python end-to-end tests.

Run `bash scripts/test-tools.sh` once to get the virtualenv and the jars, then
`.venv/bin/python -m pytest tests/`.
"""

from __future__ import annotations

import pytest

from support import readers


@pytest.fixture(scope="session")
def spark():
    """One Spark session for the whole run: starting one costs seconds.

    Tests point its `floe` catalog at their own warehouse through
    `readers.spark_sql(spark, wh, ...)`, which switches it as needed.
    """
    session = readers.spark_session()
    yield session
    readers.stop_spark()


@pytest.fixture
def tmp_warehouse(tmp_path) -> readers.Warehouse:
    """A fresh, empty warehouse folder per test (`<root>/catalog.db` not created).

    Whoever writes first (Floe, or a test through PyIceberg) creates the
    catalog file; `Warehouse.init_catalog_db()` creates it in WAL mode.
    """
    root = tmp_path / "warehouse"
    root.mkdir()
    return readers.Warehouse(root)
