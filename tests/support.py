"""Helpers the suites share."""

from __future__ import annotations

from pathlib import Path

from ledger import Ledger
from sandbox.city import CITY_COLUMNS
from sandbox.enclave import Enclave
from sandbox.ingest import IngestRequest, ingest

ORIGIN = "test.veilbox/ledger"


def fill(log: Ledger, count: int, start: int = 0) -> None:
    """Append ``count`` varied entries in one durable batch."""
    log.append_many(
        (f"developer:dev{i % 5}", "job.submitted", f"job-{i}", {"rows": i, "note": "数据可用不可见"})
        for i in range(start, start + count)
    )


def ingest_city(enclave: Enclave, city: Path, tables: tuple[str, ...], level: int = 3) -> None:
    """Ingest synthetic city tables from ``city`` with their declared tags and bounds."""
    for table in tables:
        declared = {c.name: c for c in CITY_COLUMNS[table]}
        ingest(
            enclave, IngestRequest(table, (city / f"{table}.parquet",), "bureau", level, declared=declared)
        )
