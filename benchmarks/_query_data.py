"""The query benchmark's data: a synthetic city generated and ingested once per size, and its terms.

The city is ``sandbox.synth`` output for ``rows`` residents, ingested through the real
ingest path (PII detection, pseudonymization, catalog registration) into a scratch workdir
that every engine then reads. Only the columns a scenario can query are ingested: the
residents' name, address and phone are hidden columns no query may reference, and
pseudonymizing and vaulting them would triple the ingest time without touching any timing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from time import perf_counter

import pyarrow.parquet as pq

from benchmarks._report import progress
from sandbox.city import CITY_COLUMNS, CITY_LEVELS, CITY_PROVIDERS
from sandbox.dp import DpConfig
from sandbox.enclave import Enclave
from sandbox.ingest import IngestRequest, ingest
from sandbox.limits import Limits
from sandbox.policy import ScenarioPolicy
from sandbox.synth import generate_city

COLUMNS = {
    "residents": ("resident_id", "gender", "district", "education", "household_size", "employed"),
    "social_insurance": ("resident_id", "month", "base_salary"),
}
"""The ingested columns of each table, those the queries read; a scenario requests them all."""
UNIT = ("residents", "resident_id")
ACTOR = "bench:developer"
EPSILON = 1.0
"""ε of one query, the same for every engine."""
DELTA = 1e-6
"""δ of one query whose groups have no public domain (δ = 0 otherwise)."""
MIN_CELL = 10
WORKERS = 2
PROVINCE_SCALE = 5_000_000
"""From this many residents the benchmark gives each job more memory and time than the defaults."""
"""Enclave worker processes, as the job runner opens them (one per core on the reference machine)."""


def limits_for(residents: int) -> Limits:
    """Each job's limits at a city size: the defaults, raised for province-scale data as an
    operator would raise them (``veilbox serve --worker-memory-mb … --job-timeout …``)."""
    if residents < PROVINCE_SCALE:
        return Limits()
    return Limits(timeout_s=900.0, cpu_s=1800.0, memory_mb=4096)


@dataclass(frozen=True)
class City:
    """One size's data: the workdir its enclave lives in and the rows of each ingested table."""

    residents: int
    workdir: Path
    tables: dict[str, int]


def prepare(scratch: Path, residents: int, seed: int) -> City:
    """Generate the city for ``residents`` with ``seed`` and ingest the queried tables into a workdir."""
    started = perf_counter()
    source, trimmed, workdir = scratch / "synth", scratch / "ingest", scratch / "work"
    generate_city(residents, seed, source)
    trimmed.mkdir(parents=True, exist_ok=True)
    tables = {}
    with Enclave.open(workdir, workers=WORKERS) as enclave:
        for table, columns in COLUMNS.items():
            path = trimmed / f"{table}.parquet"
            pq.write_table(pq.read_table(source / f"{table}.parquet", columns=list(columns)), path)
            declared = {c.name: c for c in CITY_COLUMNS[table] if c.name in columns}
            request = IngestRequest(
                table, (path,), CITY_PROVIDERS[table], CITY_LEVELS[table], declared=declared
            )
            tables[table] = ingest(enclave, request).dataset.row_count
    progress(
        f"query: {residents:,} residents generated and ingested in {perf_counter() - started:.1f} s "
        f"({', '.join(f'{name} {rows:,} rows' for name, rows in tables.items())})"
    )
    return City(residents, workdir, tables)


def policy(enclave: Enclave) -> ScenarioPolicy:
    """The scenario policy of the in-process engine: the catalog's tags, DP allowed."""
    return ScenarioPolicy(
        {name: enclave.catalog.get(name) for name in COLUMNS}, min_group_size=MIN_CELL, allow_dp=True
    )


def dp_config() -> DpConfig:
    """Every engine's DP terms: one row and one group per resident, ε and δ per query."""
    return DpConfig(*UNIT, epsilon=EPSILON, delta=DELTA, max_rows=1, max_groups=1)
