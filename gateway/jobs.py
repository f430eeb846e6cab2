"""Jobs in the control plane: submission with the policy's verdict up front, the runner's claim,
status as the review gate moves a result, and the tenant-scoped reads.

A job's life::

    queued ─▶ running ─▶ pending_review ─▶ approved ─▶ released
       │         ├─▶ refused (rule)     ├─▶ returned / rejected (reason)
       │         └─▶ failed (reason)
       └─ (any open state) ─▶ closed    (the authorization ended: G-REVOKED / G-SCENARIO)

Submission runs in the API process: the scenario must be runnable for the caller, and the
query policy checks the SQL against the scenario's policy built from the catalog, so a
refusal comes back at once with its rule. Only then is the job queued for the runner
(:mod:`gateway.runner`), the one process that opens the enclave.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import RowMapping, insert, select, update

from deid.errors import DeidError
from deid.generalize import Generalization, step_from_json
from deid.seal import seal
from gateway.control import ControlPlane, Principal, Role, schema
from gateway.control.identity import invisible, require_role, tenant_filter
from gateway.control.scenarios import (
    Scenario,
    check_parameters,
    dp_config,
    get_scenario,
    runnable,
    scenario_policy,
)
from gateway.errors import Conflict, InvalidRequest
from sandbox.catalog import Catalog
from sandbox.errors import PolicyViolation
from sandbox.jobs import new_job_id
from sandbox.mock import MockResult, run_mock
from sandbox.models import MODELS, check_features
from sandbox.policy import MAX_SQL_CHARS, ScenarioPolicy, check_query

Kind = Literal["sql", "model", "verification", "consent", "psi", "record"]
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
PSI_DOMAINS = {"enterprise": "uscc", "person": "resident_id"}
"""The join domains an operator's list may be matched against, with the column a match is stored in."""


@dataclass(frozen=True)
class SqlSpec:
    """A SQL job; ``dp`` runs it under the scenario's differential-privacy terms."""

    sql: str
    dp: bool = False


@dataclass(frozen=True)
class ModelSpec:
    """A DP model job: a feature query, a model type from the allow-list, its ε."""

    features: str
    model: str
    epsilon: float
    label: str | None = None
    hyperparameters: Mapping[str, bool | int | float] | None = None
    max_rows: int = 1


@dataclass(frozen=True)
class VerificationSpec:
    """One yes/no question about one consenting subject, named by its raw identifier."""

    template: str
    subject: str = field(repr=False)
    params: Mapping[str, object] | None = None


@dataclass(frozen=True)
class ConsentSpec:
    """A subject's consent, as its issuer gave it, for the enclave to record under its pseudonym."""

    domain: str
    subject: str = field(repr=False)
    scope: tuple[str, ...] = ()
    expires_at: datetime | None = None
    evidence: str = ""
    issuer: str = ""


@dataclass(frozen=True)
class PsiSpec:
    """Match the operator's list against one join domain; the operator sends its list blinded."""

    domain: str


@dataclass(frozen=True)
class RecordSpec:
    """A k-anonymous extract of one dataset's columns; ``ladders`` maps a column to its
    generalization steps (``deid.generalize`` JSON), finest first."""

    dataset: str
    columns: tuple[str, ...]
    ladders: Mapping[str, Sequence[Mapping[str, Any]]] | None = None
    max_suppression: float = 0.05


Spec = SqlSpec | ModelSpec | VerificationSpec | ConsentSpec | PsiSpec | RecordSpec
SEALED = (VerificationSpec, ConsentSpec)
"""Specs naming a subject by its raw identifier: it is sealed to the enclave before it is stored."""


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
    kind, body = _validated(scenario, spec)
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
    _check_sql(sql)
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


def claim(cp: ControlPlane) -> JobRecord | None:
    """The oldest queued job, now ``running``; None when nothing waits."""
    with cp.transaction() as conn:
        row = (
            conn.execute(
                select(schema.jobs)
                .where(schema.jobs.c.status == "queued")
                .order_by(schema.jobs.c.created_at, schema.jobs.c.id)
                .limit(1)
            )
            .mappings()
            .first()
        )
        if row is None:
            return None
        conn.execute(
            update(schema.jobs)
            .where(schema.jobs.c.id == row["id"])
            .values(status="running", updated_at=cp.now())
        )
        return _job(conn, row["id"])


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
    (a revocation closed it meanwhile), in which case nothing changes."""
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
        return bool(done.rowcount)


def scenario_of(cp: ControlPlane, actor: Principal, job: JobRecord) -> Scenario:
    """The scenario a job ran in, as the actor may see it."""
    return get_scenario(cp, actor, job.scenario_id)


def _validated(scenario: Scenario, spec: Spec) -> tuple[Kind, dict[str, Any]]:
    forms = set(scenario.output_forms)
    if isinstance(spec, RecordSpec):
        if "record" not in forms or check_parameters(scenario).k is None:
            raise InvalidRequest(
                "G-INPUT", f"scenario {scenario.id} does not offer record-level products with a k to reach"
            )
        if not 0.0 <= spec.max_suppression <= 0.2:
            raise InvalidRequest("G-INPUT", "max_suppression must be a share from 0 to 0.2")
        ladders = {column: [dict(step) for step in steps] for column, steps in (spec.ladders or {}).items()}
        try:
            record_ladders(ladders)
        except DeidError as exc:
            raise InvalidRequest("G-INPUT", f"ladders: {exc}") from None
        body = {"dataset": spec.dataset, "columns": list(spec.columns), "ladders": ladders}
        return "record", {**body, "max_suppression": spec.max_suppression}
    if isinstance(spec, PsiSpec):
        if "psi" not in forms:
            raise InvalidRequest("G-INPUT", f"scenario {scenario.id} does not offer private set intersection")
        if spec.domain not in PSI_DOMAINS:
            raise InvalidRequest(
                "G-INPUT", f"domain must be one of {sorted(PSI_DOMAINS)}, not {spec.domain!r}"
            )
        return "psi", {"domain": spec.domain}
    if isinstance(spec, SEALED):
        if "verification" not in forms:
            raise InvalidRequest("G-INPUT", f"scenario {scenario.id} does not offer verification")
        if not isinstance(spec.subject, str) or not 1 <= len(spec.subject) <= 64:
            raise InvalidRequest("G-INPUT", "the subject must be an identifier of 1 to 64 characters")
        if isinstance(spec, VerificationSpec):
            return "verification", {"template": spec.template, "params": dict(spec.params or {})}
        if spec.expires_at is None:
            raise InvalidRequest("G-INPUT", "a consent needs the time it expires")
        return "consent", {
            "domain": spec.domain,
            "scope": list(spec.scope),
            "expires_at": spec.expires_at.isoformat(),
            "evidence": spec.evidence,
            "issuer": spec.issuer,
        }
    if isinstance(spec, SqlSpec):
        _check_sql(spec.sql)
        if "aggregate" not in forms:
            raise InvalidRequest("G-INPUT", f"scenario {scenario.id} does not produce aggregate outputs")
        if spec.dp and dp_config(scenario) is None:
            raise InvalidRequest(
                "G-INPUT", f"scenario {scenario.id} has no differential-privacy terms; submit without dp"
            )
        return "sql", {"sql": spec.sql, "dp": spec.dp}
    _check_sql(spec.features)
    if "model" not in forms:
        raise InvalidRequest("G-INPUT", f"scenario {scenario.id} does not produce models")
    if spec.model not in MODELS:
        raise InvalidRequest("G-INPUT", f"model must be one of {sorted(MODELS)}, not {spec.model!r}")
    if dp_config(scenario) is None:
        raise InvalidRequest("G-INPUT", f"scenario {scenario.id} has no privacy unit to train a DP model on")
    body = asdict(spec)
    body["hyperparameters"] = dict(spec.hyperparameters or {})
    return "model", body


def record_ladders(data: Mapping[str, Sequence[Mapping[str, Any]]]) -> dict[str, list[Generalization]]:
    """Generalization ladders from their JSON; DeidError names a step that is not one."""
    ladders = {column: [step_from_json(step) for step in steps] for column, steps in data.items()}
    for column, steps in ladders.items():
        if any(step.column != column for step in steps):
            raise DeidError(f"every step of the ladder of {column!r} must generalize {column!r}")
    return ladders


def _check_sql(sql: str) -> None:
    if not isinstance(sql, str) or not sql.strip():
        raise InvalidRequest("G-INPUT", "sql must be a non-empty string")
    if len(sql) > MAX_SQL_CHARS:
        raise InvalidRequest("G-INPUT", f"sql is longer than {MAX_SQL_CHARS} characters")
    # Anything that handles the text as a C string would run less than the policy checked.
    if "\x00" in sql:
        raise InvalidRequest("G-INPUT", "sql contains a NUL character")


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
