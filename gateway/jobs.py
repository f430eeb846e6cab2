"""Jobs in the control plane: submission with the policy's verdict up front, the runner's claim,
status as the review gate moves a result, and the tenant-scoped reads.

A job's life::

    queued ─▶ running ─▶ pending_review ─▶ approved ─▶ released
       │         ├─▶ refused (rule)     ├─▶ returned / rejected (reason)
       │         └─▶ failed (reason)
       └─ (any open state) ─▶ closed    (the authorization ended: G-REVOKED / G-SCENARIO)

Submission runs in the API process: the scenario must be runnable for the caller, and the
query policy checks the SQL against the scenario's policy built from the catalog, so a
refusal comes back at once with its rule. A job of a registered product is then priced
in the same transaction that queues it (:mod:`gateway.control.charges`): a charge the
product's cap or the yearly maximum forbids refuses the job, which never runs. Only then
is the job queued for the runner (:mod:`gateway.runner`), the one process that opens the
enclave.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import RowMapping, insert, select, update

from deid.seal import seal
from gateway import metering
from gateway.control import ControlPlane, Principal, Role, charges, meters, schema
from gateway.control.charges import Charge, Refusal, price_job
from gateway.control.identity import invisible, require_role, tenant_filter
from gateway.control.oversight_schema import suspensions
from gateway.control.scenarios import (
    Scenario,
    query_epsilon,
    runnable,
    scenario_policy,
)
from gateway.errors import Conflict, InvalidRequest
from gateway.specs import SEALED, Kind, Spec, check_sql, validated
from sandbox.catalog import Catalog
from sandbox.errors import PolicyViolation
from sandbox.jobs import new_job_id
from sandbox.mock import MockResult, run_mock
from sandbox.models import check_features
from sandbox.policy import ScenarioPolicy, check_query

Status = Literal[
    "queued",
    "running",
    "refused",
    "failed",
    "pending_review",
    "approved",
    "returned",
    "rejected",
    "released",
    "answered",
    "recorded",
    "awaiting_reply",
    "receiving",
    "matched",
    "closed",
]
READERS = frozenset({Role.AUTHORITY, Role.AUDITOR})
"""Roles that see every tenant's jobs (their status, never their results)."""
SUBMITTERS = frozenset({Role.OPERATOR, Role.DEVELOPER})


@dataclass(frozen=True)
class JobRecord:
    """A job as the control plane holds it: never its result."""

    id: str
    scenario_id: str
    operator_id: str
    submitter_id: str
    kind: Kind
    status: Status
    spec: dict[str, Any]
    reason: str | None
    rule: str | None
    result_sha256: str | None
    outcome: dict[str, Any] | None
    created_at: datetime
    updated_at: datetime

    def to_json(self) -> dict[str, Any]:
        """The job as plain JSON values."""
        data = asdict(self)
        data["created_at"], data["updated_at"] = self.created_at.isoformat(), self.updated_at.isoformat()
        return data

    def sql(self) -> str:
        """The SQL the job runs (for a model, its feature query)."""
        return str(self.spec.get("sql") or self.spec.get("features") or "")


def submit(
    cp: ControlPlane,
    catalog: Catalog,
    actor: Principal,
    scenario_id: str,
    spec: Spec,
    *,
    seal_to: str | None = None,
) -> JobRecord:
    """Check and queue a job; a policy refusal is stored (status ``refused``) and returned, not raised.

    ``seal_to`` is the enclave's published input key: a raw subject is sealed to it, bound
    to the job id, before anything is stored, so neither this database nor the ledger can
    give it back.
    """
    require_role(actor, SUBMITTERS, "submitting a job")
    scenario = runnable(cp, actor, scenario_id)
    job_id = new_job_id()
    kind, body = validated(scenario, spec)
    if isinstance(spec, SEALED):
        if seal_to is None:
            raise Conflict("G-STATE", "the enclave's input key is not published yet: start the job runner")
        body["subject_sealed"] = base64.b64encode(seal(seal_to, spec.subject, job_id.encode())).decode()
    status: Status = "queued"
    reason = rule = None
    try:
        policy = policy_of(scenario, catalog)
        if kind == "model":
            check_features(body["features"], policy)
        elif kind == "sql":
            check_query(body["sql"], policy)
    except PolicyViolation as exc:
        status, reason, rule = "refused", exc.reason, exc.rule
    now = cp.now()
    with cp.transaction() as conn:
        price = (
            None
            if status == "refused"
            else price_job(conn, scenario, kind, _epsilon(scenario, body), job_id, now)
        )
        if isinstance(price, Refusal):
            status, reason, rule = "refused", price.reason, price.rule
        conn.execute(
            insert(schema.jobs).values(
                id=job_id,
                scenario_id=scenario.id,
                operator_id=scenario.operator_id,
                submitter_id=actor.user_id,
                kind=kind,
                status=status,
                mock=False,
                spec=body,
                reason=reason,
                rule=rule,
                result_sha256=None,
                created_at=now,
                updated_at=now,
            )
        )
        details: dict[str, Any] = {"scenario": scenario.id, "kind": kind}
        if kind in ("sql", "model"):
            details["sql_sha256"] = _sha(body.get("sql") or body["features"])
        elif kind == "verification":
            details["template"] = body["template"]
        cp.ledger.append(actor.user_id, "job.submitted", job_id, details)
        if isinstance(price, Charge):
            charges.record(cp, conn, actor.user_id, price)
        elif isinstance(price, Refusal):
            charges.refused(cp, actor.user_id, job_id, price)
        if status == "refused":
            cp.ledger.append(
                actor.user_id, "job.refused", job_id, {**details, "rule": rule, "reason": reason}
            )
        return _job(conn, job_id)


def mock(
    cp: ControlPlane, catalog: Catalog, actor: Principal, scenario_id: str, sql: str, rows: int
) -> MockResult:
    """Run SQL on mock data generated from the catalog; the verdict is the real policy's.

    Refusals raise :class:`PolicyViolation` (the caller shows the rule). Recorded as ``job.mock``.
    """
    require_role(actor, SUBMITTERS, "running a job on mock data")
    scenario = runnable(cp, actor, scenario_id)
    check_sql(sql)
    if not 1 <= rows <= 100_000:
        raise InvalidRequest("G-INPUT", f"mock rows must be 1 to 100000, not {rows}")
    details = {"scenario": scenario.id, "sql_sha256": _sha(sql), "rows": rows}
    try:
        result = run_mock(sql, policy_of(scenario, catalog), rows=rows)
    except PolicyViolation as exc:
        cp.ledger.append(actor.user_id, "job.mock", scenario.id, {**details, "rule": exc.rule})
        raise
    cp.ledger.append(actor.user_id, "job.mock", scenario.id, {**details, "rule": None})
    return result


def policy_of(scenario: Scenario, catalog: Catalog) -> ScenarioPolicy:
    """The scenario's policy, with the datasets the enclave derived for it (its PSI matches)."""
    base = scenario_policy(scenario, catalog)
    derived = {d.name: d for d in catalog.list() if d.extra.get("scenario") == scenario.id}
    return replace(base, datasets={**base.datasets, **derived}) if derived else base


def receive_reply(cp: ControlPlane, actor: Principal, job_id: str, store: Callable[[], None]) -> JobRecord:
    """Take the operator's reply to a PSI request: ``store`` writes it while the job is held in
    ``receiving``, so a second reply cannot race the first; then the job is queued again."""
    job = get_job(cp, actor, job_id)
    require_role(actor, SUBMITTERS, "answering a PSI request")
    if job.kind != "psi" or not advance(cp, job_id, "receiving", expected=("awaiting_reply",)):
        raise Conflict("G-STATE", f"job {job_id} is not a PSI request waiting for a reply")
    try:
        store()
    except BaseException:
        advance(cp, job_id, "awaiting_reply", expected=("receiving",))
        raise
    advance(cp, job_id, "queued", expected=("receiving",))
    return get_job(cp, actor, job_id)


def get_job(cp: ControlPlane, actor: Principal, job_id: str) -> JobRecord:
    """One job the actor may see: its tenant's, or any for the authority and auditors."""
    visible = tenant_filter(actor, schema.jobs.c.operator_id, readers=READERS, doing="reading jobs")
    with cp.transaction(write=False) as conn:
        row = conn.execute(select(schema.jobs).where(schema.jobs.c.id == job_id, visible)).mappings().first()
    if row is None:
        raise invisible("job", job_id)
    return _record(row)


def list_jobs(
    cp: ControlPlane,
    actor: Principal,
    *,
    status: str | None = None,
    scenario_id: str | None = None,
    limit: int = 100,
) -> list[JobRecord]:
    """The jobs the actor may see, newest first."""
    query = select(schema.jobs).where(
        tenant_filter(actor, schema.jobs.c.operator_id, readers=READERS, doing="listing jobs")
    )
    if status is not None:
        query = query.where(schema.jobs.c.status == status)
    if scenario_id is not None:
        query = query.where(schema.jobs.c.scenario_id == scenario_id)
    query = query.order_by(schema.jobs.c.created_at.desc(), schema.jobs.c.id).limit(max(1, min(limit, 1000)))
    with cp.transaction(write=False) as conn:
        return [_record(row) for row in conn.execute(query).mappings()]


def load(cp: ControlPlane, job_id: str) -> JobRecord:
    """A job by id, for the runner and the review gate (no caller to scope by)."""
    with cp.transaction(write=False) as conn:
        return _job(conn, job_id)


def claim(cp: ControlPlane, *, more: Callable[[], None] | None = None) -> JobRecord | None:
    """The oldest queued job of an operator not suspended, now ``running``; None when nothing waits.

    ``more`` is called after the claim when other jobs still wait, so another thread can
    take the next one meanwhile.
    """
    with cp.transaction() as conn:
        rows = (
            conn.execute(
                select(schema.jobs.c.id)
                .where(schema.jobs.c.status == "queued", schema.jobs.c.operator_id.not_in(_SUSPENDED))
                .order_by(schema.jobs.c.created_at, schema.jobs.c.id)
                .limit(2)
            )
            .scalars()
            .all()
        )
        if not rows:
            return None
        taken = update(schema.jobs).where(schema.jobs.c.id == rows[0])
        conn.execute(taken.values(status="running", updated_at=cp.now()))
        job = _job(conn, rows[0])
    if more is not None and len(rows) > 1:
        more()
    return job


def advance(
    cp: ControlPlane,
    job_id: str,
    status: Status,
    *,
    expected: tuple[Status, ...],
    reason: str | None = None,
    rule: str | None = None,
    result_sha256: str | None = None,
    outcome: dict[str, Any] | None = None,
) -> bool:
    """Move a job to ``status`` if it is still in one of ``expected``; False if it moved on
    (a revocation closed it meanwhile), in which case its status stays as it is.

    When this thread is measuring the job (:mod:`gateway.metering`), what it measured is
    added to the job's meter in the same transaction, whether the job moved or not.
    """
    measured = metering.take(job_id)
    values: dict[str, Any] = {"status": status, "updated_at": cp.now()}
    if outcome is not None:
        values["outcome"] = outcome
    if reason is not None or rule is not None:
        values.update(reason=reason, rule=rule)
    if result_sha256 is not None:
        values["result_sha256"] = result_sha256
    with cp.transaction() as conn:
        done = conn.execute(
            update(schema.jobs)
            .where(schema.jobs.c.id == job_id, schema.jobs.c.status.in_(expected))
            .values(**values)
        )
        if measured is not None:
            meters.record(cp, conn, measured[0], job_id, measured[1])
        return bool(done.rowcount)


_SUSPENDED = select(suspensions.c.operator_id).where(suspensions.c.reinstated_at.is_(None))
"""Operators whose jobs the runner leaves queued."""


def _epsilon(scenario: Scenario, body: dict[str, Any]) -> float | None:
    """The ε a job is set to spend, which a product priced per ε charges for."""
    if "features" in body:
        return float(body["epsilon"])
    return query_epsilon(scenario) if body.get("dp") else None


def _job(conn: Any, job_id: str) -> JobRecord:
    row = conn.execute(select(schema.jobs).where(schema.jobs.c.id == job_id)).mappings().first()
    if row is None:
        raise Conflict("G-STATE", f"job {job_id} does not exist")
    return _record(row)


def _record(row: RowMapping) -> JobRecord:
    return JobRecord(
        id=row["id"],
        scenario_id=row["scenario_id"],
        operator_id=row["operator_id"],
        submitter_id=row["submitter_id"],
        kind=row["kind"],
        status=row["status"],
        spec=dict(row["spec"]),
        reason=row["reason"],
        rule=row["rule"],
        result_sha256=row["result_sha256"],
        outcome=row["outcome"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
