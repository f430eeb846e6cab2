"""Mock data: tables with the real schemas, generated from the catalog alone.

Developers write and debug jobs against these. Every value comes from the catalog's
declarations — declared public domains for dimensions, declared bounds for measures,
the column types otherwise — and never from raw data, so a mock table reveals nothing
about the city. Identifiers are drawn from a small pool per join domain, so joins across
mock tables match the way real pseudonyms do.

A mock run is policy-checked first (the developer sees the same verdict a real
submission would get) and its result comes back directly, marked MOCK.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date

import duckdb
import numpy as np
import pyarrow as pa

from sandbox.catalog import Column, Dataset, Tag
from sandbox.policy import CheckedQuery, ScenarioPolicy, check_query

MARKER = "MOCK"
_DATE_RANGE = (date(2000, 1, 1).toordinal(), date(2025, 12, 31).toordinal())
_EPOCH = date(1970, 1, 1).toordinal()


@dataclass(frozen=True)
class MockResult:
    """A query's result on mock data. ``marker`` is always ``MOCK``: these are not real figures."""

    table: pa.Table
    checked: CheckedQuery
    rows_per_table: int
    marker: str = MARKER


def mock_tables(datasets: Mapping[str, Dataset], rows: int = 1000, seed: int = 0) -> dict[str, pa.Table]:
    """One mock table per dataset, ``rows`` rows each, deterministic for ``seed``."""
    rng = np.random.default_rng(seed)
    pools: dict[str, np.ndarray] = {}
    return {name: _mock_table(d, rows, rng, pools) for name, d in datasets.items()}


def run_mock(sql: str, policy: ScenarioPolicy, rows: int = 1000, seed: int = 0) -> MockResult:
    """Check ``sql`` against ``policy`` (raising PolicyViolation) and run it on mock data."""
    checked = check_query(sql, policy)
    tables = mock_tables({name: policy.datasets[name] for name in checked.tables}, rows, seed)
    con = duckdb.connect(":memory:", config={"threads": 1, "memory_limit": "256MB"})
    try:
        for name, table in tables.items():
            con.register(name, table)
        for setting in (
            "SET enable_external_access = false",
            "SET autoinstall_known_extensions = false",
            "SET autoload_known_extensions = false",
            "SET lock_configuration = true",
        ):
            con.execute(setting)
        result = con.sql(checked.render()).to_arrow_table()
    finally:
        con.close()
    return MockResult(result, checked, rows)


def _mock_table(
    dataset: Dataset, rows: int, rng: np.random.Generator, pools: dict[str, np.ndarray]
) -> pa.Table:
    arrays = [_mock_column(c, rows, rng, pools) for c in dataset.columns]
    return pa.table(arrays, names=[c.name for c in dataset.columns])


def _mock_column(
    column: Column, rows: int, rng: np.random.Generator, pools: dict[str, np.ndarray]
) -> pa.Array:
    if column.tag is Tag.IDENTIFIER:
        domain = column.join_domain or column.name
        if domain not in pools:
            size = max(1, rows // 3)
            pools[domain] = np.array([f"mock_{domain}_{i:06d}" for i in range(size)])
        return pa.array(rng.choice(pools[domain], rows))
    if column.domain:
        return _typed(np.array(column.domain)[rng.integers(0, len(column.domain), rows)], column.type)
    if column.tag in (Tag.MEASURE, Tag.SENSITIVE):
        assert column.lower is not None and column.upper is not None
        values = rng.uniform(column.lower, column.upper, rows)
        return _typed(np.floor(values) if column.type in ("INTEGER", "BIGINT") else values, column.type)
    return _by_type(column, rows, rng)


def _by_type(column: Column, rows: int, rng: np.random.Generator) -> pa.Array:
    if column.type == "VARCHAR":
        return pa.array([f"{column.name}_{k}" for k in rng.integers(0, 8, rows)])
    if column.type == "BOOLEAN":
        return pa.array(rng.random(rows) < 0.5)
    if column.type in ("DATE", "TIMESTAMP"):
        days = rng.integers(*_DATE_RANGE, rows) - _EPOCH
        array = pa.array(days.astype("int32"), pa.date32())
        return array.cast(pa.timestamp("us")) if column.type == "TIMESTAMP" else array
    return _typed(rng.integers(0, 10, rows), column.type)


def _typed(values: np.ndarray, sql_type: str) -> pa.Array:
    arrow = {
        "VARCHAR": pa.string(),
        "BIGINT": pa.int64(),
        "INTEGER": pa.int32(),
        "DOUBLE": pa.float64(),
        "BOOLEAN": pa.bool_(),
    }.get(sql_type)
    if arrow is None:  # a declared domain of dates arrives as strings
        return pa.array(values.astype(str)).cast(pa.date32() if sql_type == "DATE" else pa.timestamp("us"))
    return pa.array(values.astype(str) if arrow == pa.string() else values).cast(arrow)
