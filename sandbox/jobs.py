"""Running jobs: policy check, isolated execution, quarantine, and the ledger trail.

Two kinds of job:

- a **query job** is one SQL text, checked and run in a worker process;
- a **Python job** is code run under bubblewrap (:mod:`sandbox.confine`) on the results of
  one or more checked SQL inputs, handed over as Arrow IPC inside the enclave.

The submitter never receives a result. Each function returns what happened — refused
(with the rule), failed (with the reason) or quarantined (with the result's hash and
size) — and every outcome is a ledger entry.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Collection, Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

import pyarrow as pa

from deid.budget import BudgetExceeded, Spend
from sandbox import dp, evidence, usage
from sandbox.backend import Backend
from sandbox.confine import ConfinedLimits, run_confined
from sandbox.derived import open_derived
from sandbox.dp import DpConfig
from sandbox.enclave import Enclave
from sandbox.errors import BackendError, ConfinementError, JobError, JobRefused, PolicyViolation
from sandbox.policy import CheckedQuery, ScenarioPolicy, check_query
from sandbox.quarantine import QuarantinedResult

Status = Literal["refused", "failed", "quarantined"]
CONFINEMENT_RULE = "J-CONFINEMENT"
"""The refusal id when Python jobs cannot be confined here."""
BUDGET_RULE = "DP-BUDGET"
"""The refusal id when a DP query would overspend its privacy budget."""
ENCLAVE_OWNER = "enclave"
"""The owner of results of jobs run for the platform itself rather than for an operator."""


@dataclass(frozen=True)
class QueryJob:
    """A SQL job inside one scenario; with ``dp`` set it runs under differential privacy."""

    sql: str
    actor: str
    scenario: str
    policy: ScenarioPolicy
    job_id: str = ""
    dp: DpConfig | None = None
    owner: str = ENCLAVE_OWNER
    """Whose data key seals the result at rest: the job's operator (see :mod:`deid.datakeys`)."""


@dataclass(frozen=True)
class PythonJob:
    """Python code run confined on named, policy-checked SQL inputs inside one scenario."""

    code: str
    inputs: Mapping[str, str]
    actor: str
    scenario: str
    policy: ScenarioPolicy
    job_id: str = ""
    limits: ConfinedLimits = field(default_factory=ConfinedLimits)
    owner: str = ENCLAVE_OWNER
    """Whose data key seals the result at rest: the job's operator (see :mod:`deid.datakeys`)."""


@dataclass(frozen=True)
class JobOutcome:
    """What became of a job; carries no result values."""

    job_id: str
    status: Status
    reason: str = ""
    rule: str | None = None
    result: QuarantinedResult | None = None
    ledger_index: int | None = None
    checked: CheckedQuery | None = None
    """The policy's reading of a SQL job that passed its check: its outputs and their sources."""


def new_job_id() -> str:
    """A random job id."""
    return f"job_{secrets.token_hex(8)}"


def run_query(enclave: Enclave, job: QueryJob) -> JobOutcome:
    """Check, run and quarantine one SQL job; record each outcome in the ledger."""
    trail = JobTrail(
        enclave,
        job.actor,
        job.job_id or new_job_id(),
        {"scenario": job.scenario, "sql_sha256": _sha(job.sql)},
        job.owner,
    )
    try:
        checked = check_query(job.sql, job.policy)
    except PolicyViolation as exc:
        return trail.refused(exc.reason, exc.rule, exc.fragment)
    trail.details["tables"] = sorted(checked.tables)
    return replace(_run_checked(enclave, job, checked, trail), checked=checked)


def _run_checked(enclave: Enclave, job: QueryJob, checked: CheckedQuery, trail: JobTrail) -> JobOutcome:
    try:
        engine = _engine(enclave, checked.tables, trail)
    except BackendError as exc:
        return trail.failed(JobError(str(exc)))
    if job.dp is not None:
        return _run_dp(enclave, job, job.dp, checked, trail, engine)
    try:
        sql = engine.render(checked, job.policy)
    except PolicyViolation as exc:
        return trail.refused(exc.reason, exc.rule, exc.fragment)
    except JobError as exc:
        return trail.failed(exc)
    trail.started()
    try:
        table = execute_checked(enclave, sql, checked.tables, job.policy.datasets, engine=engine)
    except JobError as exc:
        return trail.failed(exc)
    measured = _evidence(enclave, checked, job.policy, table, engine)
    sources = {"sql": job.sql, "rendered_sql": checked.render(), "evidence": measured}
    if engine.name != "duckdb":
        sources["engine_sql"] = sql
    return trail.quarantined(table, sources)


def _engine(enclave: Enclave, tables: Collection[str], trail: JobTrail) -> Backend:
    """The engine for a job reading ``tables``; a job off the default one says so in its ledger entries."""
    engine = enclave.engine_for(tables)
    if engine.name != "duckdb":
        trail.details["engine"] = engine.name
    return engine


def _run_dp(
    enclave: Enclave, job: QueryJob, config: DpConfig, checked: CheckedQuery, trail: JobTrail, engine: Backend
) -> JobOutcome:
    """Plan, charge the budget, run bounded, noise, quarantine — or reuse the earlier answer."""
    try:
        plan = dp.plan(checked, config, job.policy, engine.renderer(checked.statement, job.policy))
    except PolicyViolation as exc:
        return trail.refused(exc.reason, exc.rule, exc.fragment)
    fingerprint = _sha(json.dumps([checked.render(), asdict(config)], sort_keys=True))
    earlier = enclave.budget.cached(fingerprint, job.scenario)
    if earlier is not None:
        return trail.reused(earlier)
    epsilon, delta = plan.cost
    try:
        enclave.budget.charge(
            trail.job_id, job.scenario, {config.unit_dataset: Spend(epsilon, delta)}, actor=job.actor
        )
    except BudgetExceeded as exc:
        return trail.refused(str(exc), BUDGET_RULE, "")
    trail.started()
    try:
        exact = execute_checked(enclave, plan.sql, checked.tables, job.policy.datasets, engine=engine)
    except JobError as exc:
        return trail.failed(exc)  # the charge stands: the data was touched
    noisy, guarantee = dp.finish(plan, exact)
    sources = {"sql": job.sql, "rendered_sql": checked.render(), "guarantee": guarantee.to_json()}
    outcome = trail.quarantined(noisy, sources, {"epsilon": epsilon, "delta": delta})
    enclave.budget.remember(fingerprint, job.scenario, trail.job_id)
    return outcome


def run_python(enclave: Enclave, job: PythonJob, *, bwrap: str | None = None) -> JobOutcome:
    """Check every input query, run them, run the code confined on their results, quarantine its output."""
    trail = JobTrail(
        enclave,
        job.actor,
        job.job_id or new_job_id(),
        {"scenario": job.scenario, "code_sha256": _sha(job.code)},
        job.owner,
    )
    checked: dict[str, CheckedQuery] = {}
    for name, sql in job.inputs.items():
        try:
            checked[name] = check_query(sql, job.policy)
        except PolicyViolation as exc:
            return trail.refused(f"input {name!r}: {exc.reason}", exc.rule, exc.fragment)
    trail.details["tables"] = sorted({t for c in checked.values() for t in c.tables})
    trail.details["inputs"] = {name: _sha(sql) for name, sql in job.inputs.items()}
    rendered: dict[str, tuple[Backend, str]] = {}
    for name, c in checked.items():
        try:
            engine = _engine(enclave, c.tables, trail)
            rendered[name] = (engine, engine.render(c, job.policy))
        except BackendError as exc:
            return trail.failed(JobError(str(exc)))
        except JobError as exc:
            return trail.failed(exc)
        except PolicyViolation as exc:
            return trail.refused(f"input {name!r}: {exc.reason}", exc.rule, exc.fragment)
    trail.started()
    try:
        tables = {
            name: execute_checked(enclave, sql, checked[name].tables, job.policy.datasets, engine=engine)
            for name, (engine, sql) in rendered.items()
        }
        output = run_confined(job.code, tables, limits=job.limits, bwrap=bwrap)
    except ConfinementError as exc:
        return trail.refused(str(exc), CONFINEMENT_RULE, "")
    except JobError as exc:
        return trail.failed(exc)
    table = output.table if output.table is not None else pa.table({"value": [json.dumps(output.value)]})
    sources = {
        "code": job.code,
        "inputs": dict(job.inputs),
        "kind": "table" if output.table is not None else "json",
    }
    return trail.quarantined(table, sources)


def _evidence(
    enclave: Enclave, checked: CheckedQuery, policy: ScenarioPolicy, table: pa.Table, engine: Backend
) -> dict[str, Any]:
    """What the disclosure checks need about each cell, measured in the workers (see sandbox.evidence)."""
    try:
        sql = evidence.evidence_sql(checked, policy, engine.renderer(checked.statement, policy))
    except PolicyViolation as exc:
        return {"unavailable": f"the cells cannot be measured on this engine: {exc.reason}"}
    if sql is None:
        return {
            "unavailable": "this query shape has no per-cell evidence; the review gate treats it as failing"
        }
    try:
        measured = execute_checked(enclave, sql, checked.tables, policy.datasets, engine=engine)
    except JobError as exc:  # the result stands; the gate fails it for want of evidence
        return {"unavailable": f"measuring the cells failed: {exc}"}
    return evidence.align(checked, table, measured)


def execute_checked(
    enclave: Enclave,
    sql: str,
    tables: frozenset[str],
    scope: Collection[str] | None = None,
    *,
    engine: Backend | None = None,
) -> pa.Table:
    """Run SQL derived from a checked query (enclave side only), on ``engine`` (DuckDB by default).

    The worker attaches ``scope`` (the scenario's datasets, which must hold ``tables``) or
    else only ``tables``. The policy has already confined the query to its own tables; an
    engine holding the scenario's whole scope stays warm across the scenario's jobs and
    still holds nothing the scenario may not read. A derived dataset among ``tables`` is
    opened here with its operator's data key and handed to the worker in memory for this
    job alone (:mod:`sandbox.derived`; JobRefused if it was shredded or is damaged). The
    tables read are noted for metering (:mod:`sandbox.usage`). ``sql`` must be written for
    ``engine`` (see :mod:`sandbox.backend`).
    """
    attach = frozenset(tables if scope is None else scope)
    if not tables <= attach:
        raise JobError(f"the job reads {sorted(tables - attach)}, outside its scenario's datasets")
    in_memory = open_derived(enclave, tables)
    usage.note_tables(tables)
    datasets, generation = enclave.attachments()
    scoped = [(name, path) for name, path in datasets if name in attach]
    generation = f"{generation}:{','.join(sorted(attach))}"
    return (engine or enclave.duckdb).run(sql, scoped, generation, tables=in_memory)


class JobTrail:
    """One job's ledger entries, from start to outcome; every kind of job records through it."""

    def __init__(
        self, enclave: Enclave, actor: str, job_id: str, details: dict[str, Any], owner: str
    ) -> None:
        self.enclave, self.actor, self.job_id, self.details = enclave, actor, job_id, details
        self.owner = owner

    def _record(self, action: str, extra: dict[str, Any]) -> int:
        return self.enclave.ledger.append(self.actor, action, self.job_id, {**self.details, **extra}).index

    def started(self) -> None:
        self._record("job.started", {})

    def refused(self, reason: str, rule: str, fragment: str) -> JobOutcome:
        index = self._record("job.refused", {"rule": rule, "fragment": fragment[:500], "reason": reason})
        return JobOutcome(self.job_id, "refused", reason, rule, ledger_index=index)

    def failed(self, exc: JobError) -> JobOutcome:
        if isinstance(exc, JobRefused):  # its data could not be opened: refused under the rule
            return self.refused(str(exc), exc.rule, "")
        index = self._record("job.failed", {"error": type(exc).__name__, "reason": str(exc)})
        return JobOutcome(self.job_id, "failed", str(exc), ledger_index=index)

    def quarantined(
        self, table: pa.Table, sources: dict[str, Any], extra: dict[str, Any] | None = None
    ) -> JobOutcome:
        result = self.enclave.quarantine.put(
            self.job_id, table, {"actor": self.actor, **self.details, **sources}, self.owner
        )
        index = self._record(
            "job.quarantined",
            {
                "result_sha256": result.sha256,
                "rows": result.rows,
                "columns": list(result.columns),
                **(extra or {}),
            },
        )
        return JobOutcome(self.job_id, "quarantined", result=result, ledger_index=index)

    def reused(self, earlier: str) -> JobOutcome:
        """A repeated DP query: the earlier noisy answer, at no new cost (never a fresh draw)."""
        result = self.enclave.quarantine.describe(earlier)
        index = self._record("job.reused", {"answer_of": earlier, "result_sha256": result.sha256})
        reason = f"the same query was answered by {earlier}; its noisy answer is reused at no cost"
        return JobOutcome(self.job_id, "quarantined", reason, result=result, ledger_index=index)


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
