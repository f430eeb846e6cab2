"""Meters (可计量): what each job that ran consumed, one record per job.

A meter holds the rows scanned per dataset — and so per provider, since the catalog names
each dataset's provider —, the CPU time the enclave spent on the job, the bytes that left
it, the ε and δ the job was charged, and how many times the runner took the job up. The
job runner measures (:mod:`gateway.metering`) and :func:`record` adds each reading to the
job's meter inside the transaction that records the job's outcome, with a ``job.metered``
ledger entry carrying the meter's hash.

*Rows scanned* is the catalog's row count of every dataset the job's queries read, once
per job: exact for the full scans the policy allows (no index, no sampling) and free to
measure, where DuckDB's profiler would cost a run of its own.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, RowMapping, insert, select, update

from gateway.control import billing_schema as tables
from gateway.control.accounting import digest, intact
from gateway.control.charges import Charge, charge_of
from gateway.control.db import ControlPlane
from gateway.control.identity import Principal, Role, invisible, tenant_filter
from gateway.control.schema import jobs

READERS = frozenset({Role.AUTHORITY, Role.AUDITOR})
_BATCH = 500  # ids per IN list, well under every backend's limit on bound parameters


@dataclass(frozen=True)
class DatasetUse:
    """Rows of one dataset a job read, and the dataset's provider (None if the catalog names none)."""

    dataset: str
    provider: str | None
    rows: int


@dataclass(frozen=True)
class Reading:
    """What one run of a job consumed since the last reading; ε and δ are the job's totals so far."""

    datasets: tuple[DatasetUse, ...]
    cpu_ms: int
    bytes_released: int
    epsilon: float
    delta: float


@dataclass(frozen=True)
class Meter:
    """A job's meter: everything its runs consumed."""

    job_id: str
    operator_id: str
    scenario_id: str
    kind: str
    datasets: tuple[DatasetUse, ...]
    rows_scanned: int
    cpu_ms: int
    bytes_released: int
    epsilon: float
    delta: float
    runs: int
    sha256: str
    created_at: datetime
    updated_at: datetime

    def by_provider(self) -> dict[str, int]:
        """Rows scanned per provider."""
        rows: dict[str, int] = {}
        for use in self.datasets:
            if use.provider is not None:
                rows[use.provider] = rows.get(use.provider, 0) + use.rows
        return dict(sorted(rows.items()))

    def document(self) -> dict[str, Any]:
        """The meter as plain JSON values, without its hash and times: what the hash is taken of."""
        return {
            "job_id": self.job_id, "operator_id": self.operator_id, "scenario_id": self.scenario_id,
            "kind": self.kind, "datasets": [_use_json(use) for use in self.datasets],
            "rows_scanned": self.rows_scanned, "cpu_ms": self.cpu_ms, "bytes_released": self.bytes_released,
            "epsilon": self.epsilon, "delta": self.delta, "runs": self.runs,
        }  # fmt: skip


def record(cp: ControlPlane, conn: Connection, actor: str, job_id: str, reading: Reading) -> Meter:
    """Add ``reading`` to the job's meter (creating it) and append ``job.metered``; call inside
    the transaction that records the job's outcome."""
    job = conn.execute(
        select(jobs.c.operator_id, jobs.c.scenario_id, jobs.c.kind).where(jobs.c.id == job_id)
    ).one()
    row = conn.execute(select(tables.meters).where(tables.meters.c.job_id == job_id)).mappings().first()
    now = cp.now()
    if row is None:
        earlier = Meter(
            job_id, job.operator_id, job.scenario_id, job.kind, (), 0, 0, 0, 0.0, 0.0, 0, "", now, now
        )
    else:
        earlier = _meter(row)
    uses = {use.dataset: use for use in earlier.datasets}
    for use in reading.datasets:  # a dataset counts once per job, however often it was read
        if use.dataset not in uses or use.rows > uses[use.dataset].rows:
            uses[use.dataset] = use
    datasets = tuple(uses[name] for name in sorted(uses))
    merged = Meter(
        job_id, earlier.operator_id, earlier.scenario_id, earlier.kind, datasets,
        sum(u.rows for u in datasets), earlier.cpu_ms + reading.cpu_ms,
        earlier.bytes_released + reading.bytes_released, max(earlier.epsilon, reading.epsilon),
        max(earlier.delta, reading.delta), earlier.runs + 1, "", earlier.created_at, now,
    )  # fmt: skip
    document = merged.document()
    meter = replace(merged, sha256=digest(document))
    values = {**document, "sha256": meter.sha256, "updated_at": now}
    if row is None:
        conn.execute(insert(tables.meters).values(**values, created_at=now))
    else:
        conn.execute(update(tables.meters).where(tables.meters.c.job_id == job_id).values(**values))
    details = {
        key: document[key] for key in ("rows_scanned", "cpu_ms", "bytes_released", "epsilon", "delta", "runs")
    }
    cp.ledger.append(
        actor, "job.metered", job_id, {**details, "providers": meter.by_provider(), "sha256": meter.sha256}
    )
    return meter


def get_meter(cp: ControlPlane, actor: Principal, job_id: str) -> tuple[Meter, Charge | None]:
    """A job's meter and charge, for users who may see the job; NotFound ``G-TENANT`` otherwise
    (and for a job that has not run)."""
    query = select(tables.meters).where(tables.meters.c.job_id == job_id, _readable(actor))
    with cp.transaction(write=False) as conn:
        row = conn.execute(query).mappings().first()
        if row is None:
            raise invisible("meter of job", job_id)
        return _meter(row), charge_of(conn, job_id)


def list_meters(
    cp: ControlPlane, actor: Principal, *, scenario_id: str | None = None, limit: int = 100
) -> list[Meter]:
    """The meters of the jobs the actor may see, newest first."""
    query = select(tables.meters).where(_readable(actor))
    if scenario_id is not None:
        query = query.where(tables.meters.c.scenario_id == scenario_id)
    query = query.order_by(tables.meters.c.created_at.desc(), tables.meters.c.job_id).limit(
        max(1, min(limit, 1000))
    )
    with cp.transaction(write=False) as conn:
        return [_meter(row) for row in conn.execute(query).mappings()]


def meters_of(conn: Connection, job_ids: list[str]) -> dict[str, Meter]:
    """The meters of ``job_ids`` that have one, by job."""
    found = {}
    for start in range(0, len(job_ids), _BATCH):
        batch = job_ids[start : start + _BATCH]
        rows = conn.execute(select(tables.meters).where(tables.meters.c.job_id.in_(batch))).mappings()
        found.update({row["job_id"]: _meter(row) for row in rows})
    return found


def _readable(actor: Principal) -> Any:
    return tenant_filter(actor, tables.meters.c.operator_id, readers=READERS, doing="reading meters")


def _use_json(use: DatasetUse) -> dict[str, Any]:
    return {"dataset": use.dataset, "provider": use.provider, "rows": use.rows}


def _meter(row: RowMapping) -> Meter:
    datasets = tuple(DatasetUse(d["dataset"], d["provider"], int(d["rows"])) for d in row["datasets"])
    meter = Meter(**{**{name: row[name] for name in Meter.__dataclass_fields__}, "datasets": datasets})
    intact(f"the meter of job {meter.job_id}", meter.document(), meter.sha256)
    return meter
