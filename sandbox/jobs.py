"""Running a query job: policy check, isolated execution, quarantine, and the ledger trail.

The submitter never receives the result. :func:`run_query` returns what happened — refused
(with the rule), failed (with the reason) or quarantined (with the result's hash and
size) — and every outcome is a ledger entry.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Any, Literal

from sandbox.enclave import Enclave
from sandbox.errors import JobError, PolicyViolation
from sandbox.policy import CheckedQuery, ScenarioPolicy, check_query
from sandbox.quarantine import QuarantinedResult

Status = Literal["refused", "failed", "quarantined"]


@dataclass(frozen=True)
class QueryJob:
    """A SQL job inside one scenario."""

    sql: str
    actor: str
    scenario: str
    policy: ScenarioPolicy
    job_id: str = ""


@dataclass(frozen=True)
class JobOutcome:
    """What became of a job; carries no result values."""

    job_id: str
    status: Status
    reason: str = ""
    rule: str | None = None
    result: QuarantinedResult | None = None
    ledger_index: int | None = None


def new_job_id() -> str:
    """A random job id."""
    return f"job_{secrets.token_hex(8)}"


def run_query(enclave: Enclave, job: QueryJob) -> JobOutcome:
    """Check, run and quarantine one SQL job; record each outcome in the ledger."""
    job_id = job.job_id or new_job_id()
    sql_sha256 = hashlib.sha256(job.sql.encode("utf-8", "surrogatepass")).hexdigest()
    base: dict[str, Any] = {"scenario": job.scenario, "sql_sha256": sql_sha256}
    try:
        checked = check_query(job.sql, job.policy)
    except PolicyViolation as exc:
        receipt = enclave.ledger.append(
            job.actor, "job.refused", job_id, {**base, "rule": exc.rule, "fragment": exc.fragment[:500]}
        )
        return JobOutcome(job_id, "refused", exc.reason, exc.rule, ledger_index=receipt.index)
    return _execute(enclave, job, job_id, checked, base)


def _execute(
    enclave: Enclave, job: QueryJob, job_id: str, checked: CheckedQuery, base: dict[str, Any]
) -> JobOutcome:
    datasets, generation = enclave.attachments()
    scoped = [(name, path) for name, path in datasets if name in checked.tables]
    details = {**base, "tables": sorted(checked.tables)}
    enclave.ledger.append(job.actor, "job.started", job_id, details)
    try:
        table = enclave.pool.run(checked.render(), scoped, f"{generation}:{','.join(sorted(checked.tables))}")
    except JobError as exc:
        receipt = enclave.ledger.append(
            job.actor, "job.failed", job_id, {**details, "error": type(exc).__name__, "reason": str(exc)}
        )
        return JobOutcome(job_id, "failed", str(exc), ledger_index=receipt.index)
    result = enclave.quarantine.put(
        job_id,
        table,
        {"actor": job.actor, **details, "sql": job.sql, "rendered_sql": checked.render()},
    )
    receipt = enclave.ledger.append(
        job.actor,
        "job.quarantined",
        job_id,
        {**details, "result_sha256": result.sha256, "rows": result.rows, "columns": list(result.columns)},
    )
    return JobOutcome(job_id, "quarantined", result=result, ledger_index=receipt.index)
