"""Shared fixtures of the sandbox suites: one enclave on the Spark backend for the whole session.

Starting Spark costs a JVM (10-20 s), so every Spark test shares one enclave, its datasets
and its Spark driver. The data is the synthetic city roughed up with what makes engines
disagree: NULLs, negative and out-of-range measures, exact duplicate rows (ties), Unicode
and LIKE-special text, month ends and leap days; ``probes`` holds values of every type for
expressions to be tried on. Without pyspark or Java the Spark tests are skipped with the
reason, unless ``VEILBOX_REQUIRE_SPARK=1`` (CI), when they fail instead.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import math
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from sandbox.backend import BackendConfig
from sandbox.catalog import Column, Tag
from sandbox.enclave import Enclave
from sandbox.ingest import IngestRequest, ingest
from sandbox.limits import Limits
from sandbox.policy import ScenarioPolicy
from sandbox.synth import generate_city
from tests.support import ingest_city

CITY = ("residents", "social_insurance", "enterprises", "credit_records", "utility_usage")
PROBE_COLUMNS = {
    c.name: c
    for c in (
        Column("id", "VARCHAR", Tag.IDENTIFIER, join_domain="person", entity="CN_RESIDENT_ID"),
        Column("x", "DOUBLE", Tag.DIMENSION),
        Column("i", "INTEGER", Tag.DIMENSION),
        Column("s", "VARCHAR", Tag.DIMENSION),
        Column("d", "DATE", Tag.DIMENSION),
        Column("d2", "DATE", Tag.DIMENSION),
        Column("b", "BOOLEAN", Tag.DIMENSION),
        Column("m", "DOUBLE", Tag.MEASURE, lower=-100, upper=100),
        Column("k", "INTEGER", Tag.MEASURE, lower=0, upper=1000),
    )
}
TEXTS = [
    "ΣΑΣ",
    "straße",
    "İstanbul",
    "🦆",
    "e\u0301",
    "a\\b",
    "100%",
    "x_y",
    "xy",
    "",
    "  pad ",
    "城东区",
    "Ab",
]
SPECIAL_DOUBLES = [1.005, 2.675, 0.125, -2.5, 0.5, -0.5, 1.5, 2.5, 1e15 + 0.5, -0.0, 0.0, 1e300, -1e300]
SPECIAL_DOUBLES += [math.inf, -math.inf, 123.4565, 0.045, 1234.5678, -7.25e-5]


def spark_missing() -> str | None:
    """Why the Spark backend cannot run here, or None if it can."""
    if importlib.util.find_spec("pyspark") is None:
        return "pyspark is not installed (pip install 'veilbox[spark]')"
    if shutil.which("java") is None and "JAVA_HOME" not in os.environ:
        return "no Java runtime (java on PATH or JAVA_HOME)"
    return None


def require_spark() -> None:
    """Skip the calling test without Spark, or fail it if VEILBOX_REQUIRE_SPARK=1 (CI)."""
    reason = spark_missing()
    if reason is None:
        return
    if os.environ.get("VEILBOX_REQUIRE_SPARK") == "1":
        pytest.fail(f"VEILBOX_REQUIRE_SPARK=1 but {reason}")
    pytest.skip(f"the Spark backend cannot run here: {reason}")


def _where(table: pa.Table, column: str, mask: np.ndarray, values: pa.Array) -> pa.Table:
    index = table.column_names.index(column)
    field = table.schema.field(column)
    mixed = pc.if_else(pa.array(mask), values.cast(field.type), table.column(column))
    return table.set_column(index, field, mixed)


def _roughen(
    table: pa.Table, rng: np.random.Generator, column: str, share: float, choices: list[object]
) -> pa.Table:
    """``share`` of ``column`` replaced by picks from ``choices`` (None for NULL)."""
    mask = rng.random(table.num_rows) < share
    picks = [choices[j] for j in rng.integers(0, len(choices), table.num_rows)]
    return _where(table, column, mask, pa.array(picks, table.schema.field(column).type))


def _city(out: Path, seed: int) -> None:
    generate_city(240, seed, out)
    rng = np.random.default_rng(seed)
    people = pq.read_table(out / "residents.parquet")
    for column in ("district", "education", "gender", "birth_date", "employed"):
        people = _roughen(people, rng, column, 0.06, [None])
    people = _roughen(people, rng, "district", 0.05, ["ΣΑΣ", "🦆区", "a\\b", "x_y%"])
    people = _roughen(people, rng, "household_size", 0.08, [None, -3, 0, 50, 1_000_000])
    people = _roughen(people, rng, "birth_date", 0.04, [dt.date(1900, 1, 1), dt.date(2024, 2, 29)])
    pq.write_table(people, out / "residents.parquet")
    paid = pq.read_table(out / "social_insurance.parquet")
    paid = pa.concat_tables([paid, paid.take(rng.integers(0, paid.num_rows, paid.num_rows // 10))])
    paid = _roughen(paid, rng, "base_salary", 0.08, [None, -500.0, 0.0, 75_000.0, 1e12])
    paid = _roughen(paid, rng, "month", 0.03, [None])
    paid = _roughen(paid, rng, "resident_id", 0.02, [None])
    pq.write_table(paid, out / "social_insurance.parquet")
    firms = pq.read_table(out / "enterprises.parquet")
    firms = _roughen(firms, rng, "industry", 0.08, [None])
    firms = _roughen(firms, rng, "registered_capital", 0.1, [None, -1.0, 5e6])
    firms = _roughen(firms, rng, "employee_count", 0.1, [None, -2, 99_999])
    pq.write_table(firms, out / "enterprises.parquet")


def _probes(out: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 320
    days = [dt.date(1900, 1, 1) + dt.timedelta(days=int(v)) for v in rng.integers(0, 73_000, n)]
    ends = [dt.date(2024, 1, 31), dt.date(2024, 2, 29), dt.date(2023, 12, 31), dt.date(2025, 1, 1)]
    table = pa.table(
        {
            "id": [f"probe-{int(v)}" for v in rng.integers(0, 90, n)],
            "x": [*SPECIAL_DOUBLES, *np.round(rng.normal(0, 500, n - len(SPECIAL_DOUBLES)), 4)],
            "i": pa.array(rng.integers(-20, 20, n), pa.int32()),
            "s": [TEXTS[int(v)] for v in rng.integers(0, len(TEXTS), n)],
            "d": [ends[j % 4] if j % 7 == 0 else day for j, day in enumerate(days)],
            "d2": [dt.date(2024, 1, 1) + dt.timedelta(days=int(v)) for v in rng.integers(-800, 800, n)],
            "b": rng.random(n) < 0.5,
            "m": np.round(rng.normal(0, 80, n), 3),
            "k": pa.array(rng.integers(-50, 1200, n), pa.int32()),
        }
    )
    for column in ("x", "i", "s", "d", "d2", "b", "m", "k"):
        table = _roughen(table, rng, column, 0.05, [None])
    pq.write_table(table, out / "probes.parquet")


@pytest.fixture(scope="session")
def spark_enclave(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Enclave]:
    """An enclave whose queries run on Spark (local mode), over the roughened city and probes."""
    require_spark()
    root = tmp_path_factory.mktemp("spark")
    _city(root / "city", 20)
    _probes(root / "city", 21)
    # Tiny data: one shuffle partition and no code generation save most of Spark's per-query cost.
    tiny = {"spark.sql.shuffle.partitions": "1", "spark.sql.codegen.wholeStage": "false"}
    config = BackendConfig("spark", "local[2]", spark_conf=tiny)
    with Enclave.open(root / "work", backend=config, limits=Limits(timeout_s=60), workers=1) as enclave:
        ingest_city(enclave, root / "city", CITY)
        request = IngestRequest(
            "probes", (root / "city" / "probes.parquet",), "bureau", 3, declared=PROBE_COLUMNS
        )
        ingest(enclave, request)
        yield enclave


@pytest.fixture(scope="session")
def spark_policy(spark_enclave: Enclave) -> ScenarioPolicy:
    """Every dataset of the Spark enclave, with DP allowed."""
    names = (*CITY, "probes")
    return ScenarioPolicy({n: spark_enclave.catalog.get(n) for n in names}, allow_dp=True)
