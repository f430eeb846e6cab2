"""SmartNoise SQL on the same data and queries, through its SQLite reader (the bench extra only).

The enclave's pseudonymized tables are copied into an in-memory SQLite database, untimed.
SmartNoise's metadata matches Veilbox's terms: ``resident_id`` is the ``private_id`` with
``max_ids: 1`` (one row per resident, sampled as Veilbox samples), measures are clamped to
the catalog's bounds, and dimension censoring (its threshold for group keys) stays on.
SmartNoise spends its ε on each statistic it releases; each query gets an ε per statistic
chosen so that its total, by SmartNoise's own accounting, is the ε one Veilbox query spends.
"""

from __future__ import annotations

import importlib
import importlib.util
import sqlite3
from pathlib import Path
from time import perf_counter
from typing import Any

import duckdb

from benchmarks._query_data import DELTA, EPSILON
from benchmarks._query_set import Cells, EngineFailed, Noise, Prepared, cells_of
from benchmarks._report import progress
from deid.dp import partition_threshold

_SCHEMA = "city"
# What SmartNoise reads of each table: SQLite has no DATE or BOOLEAN, so they become text and 0/1.
_COPIES = {
    "residents": (
        "resident_id, gender, district, education, household_size, CAST(employed AS INTEGER)",
        "resident_id TEXT, gender TEXT, district TEXT, education TEXT, household_size INTEGER, "
        "employed INTEGER",
    ),
    "social_insurance": (
        "resident_id, CAST(month AS VARCHAR), base_salary",
        "resident_id TEXT, pay_month TEXT, base_salary REAL",
    ),
}
_TABLE_TERMS = {
    "max_ids": 1,
    "row_privacy": False,
    "sample_max_ids": True,
    "censor_dims": True,
    "clamp_counts": False,
    "clamp_columns": True,
}
_METADATA = {
    _SCHEMA: {
        _SCHEMA: {
            "residents": {
                **_TABLE_TERMS,
                "resident_id": {"type": "string", "private_id": True},
                "gender": {"type": "string"},
                "district": {"type": "string"},
                "education": {"type": "string"},
                "household_size": {"type": "int", "lower": 1, "upper": 10},
                "employed": {"type": "int", "lower": 0, "upper": 1},
            },
            "social_insurance": {
                **_TABLE_TERMS,
                "resident_id": {"type": "string", "private_id": True},
                "pay_month": {"type": "string"},
                "base_salary": {"type": "float", "lower": 0, "upper": 50_000},
            },
        }
    }
}
_BATCH = 100_000


def unavailable() -> str | None:
    """Why SmartNoise SQL cannot run here, or None when it can."""
    if importlib.util.find_spec("snsql") is None:
        return "smartnoise-sql is not installed: install the bench extra (pip install -e '.[bench]')"
    return None


def version() -> str:
    """The installed smartnoise-sql version."""
    from importlib import metadata

    return metadata.version("smartnoise-sql")


class SmartNoise:
    """SmartNoise SQL private readers over an in-memory SQLite copy of the city."""

    def __init__(self, datasets: dict[str, Path]) -> None:
        started = perf_counter()
        self._db = sqlite3.connect(":memory:")
        self._db.execute(f"ATTACH DATABASE ':memory:' AS {_SCHEMA}")
        for table, (select, columns) in _COPIES.items():
            self._db.execute(f"CREATE TABLE {_SCHEMA}.{table} ({columns})")
            source = duckdb.connect(str(datasets[table]), read_only=True)
            try:
                result = source.execute(f"SELECT {select} FROM {table}")
                marks = ", ".join("?" * len(columns.split(",")))
                while batch := result.fetchmany(_BATCH):
                    self._db.executemany(f"INSERT INTO {_SCHEMA}.{table} VALUES ({marks})", batch)
            finally:
                source.close()
        self._db.commit()
        self._readers: dict[str, tuple[Any, float]] = {}
        progress(f"query: SmartNoise's SQLite copy of the city loaded in {perf_counter() - started:.1f} s")

    def run(self, prepared: Prepared) -> tuple[float, Cells, Noise]:
        """Seconds for SmartNoise to answer the query, its answer and the noise it adds."""
        reader, epsilon = self._reader(prepared)
        sql = str(prepared.query.smartnoise)
        start = perf_counter()
        try:
            rows = reader.execute(sql)
        except MemoryError as exc:
            raise EngineFailed(f"SmartNoise ran out of memory: {exc}") from None
        elapsed = perf_counter() - start
        header, body = rows[0], rows[1:]
        cells = cells_of([dict(zip(header, row, strict=True)) for row in body], prepared.kinds)
        sums = {name: max(abs(lo), abs(hi)) / epsilon for name, (lo, hi) in prepared.plan.bounds.items()}
        threshold = partition_threshold(1, epsilon, DELTA)
        return elapsed, cells, Noise(1 / epsilon, sums, threshold)

    def _reader(self, prepared: Prepared) -> tuple[Any, float]:
        """A reader whose ε per statistic makes this query's total ε the benchmark's."""
        name = prepared.query.name
        if name not in self._readers:
            snsql = importlib.import_module("snsql")  # untyped, and only in the bench extra
            probe = snsql.from_connection(
                self._db, privacy=snsql.Privacy(epsilon=1.0, delta=DELTA), metadata=_METADATA, engine="sqlite"
            )
            statistics, _ = probe.get_privacy_cost(prepared.query.smartnoise)
            epsilon = EPSILON / float(statistics)
            reader = snsql.from_connection(
                self._db,
                privacy=snsql.Privacy(epsilon=epsilon, delta=DELTA),
                metadata=_METADATA,
                engine="sqlite",
            )
            self._readers[name] = reader, epsilon
        return self._readers[name]

    def close(self) -> None:
        self._db.close()
