"""What a job asks for, and whether its scenario offers it: the specs of every kind of job.

Each spec is checked against the scenario's output forms and terms before anything is
stored (:func:`validated`), and turned into the JSON body the job row keeps.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Literal

from deid.errors import DeidError
from deid.generalize import Generalization, step_from_json
from gateway.control.scenarios import Scenario, check_parameters, dp_config
from gateway.errors import InvalidRequest
from sandbox.models import MODELS
from sandbox.policy import MAX_SQL_CHARS

Kind = Literal["sql", "model", "verification", "consent", "psi", "record"]
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


def validated(scenario: Scenario, spec: Spec) -> tuple[Kind, dict[str, Any]]:
    """The job's kind and the body its row keeps; InvalidRequest when the scenario does not
    offer this kind of output or the spec is malformed."""
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
        check_sql(spec.sql)
        if "aggregate" not in forms:
            raise InvalidRequest("G-INPUT", f"scenario {scenario.id} does not produce aggregate outputs")
        if spec.dp and dp_config(scenario) is None:
            raise InvalidRequest(
                "G-INPUT", f"scenario {scenario.id} has no differential-privacy terms; submit without dp"
            )
        return "sql", {"sql": spec.sql, "dp": spec.dp}
    check_sql(spec.features)
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


def check_sql(sql: str) -> None:
    """Refuse SQL that is empty, too long or carries a NUL before the policy parses it."""
    if not isinstance(sql, str) or not sql.strip():
        raise InvalidRequest("G-INPUT", "sql must be a non-empty string")
    if len(sql) > MAX_SQL_CHARS:
        raise InvalidRequest("G-INPUT", f"sql is longer than {MAX_SQL_CHARS} characters")
    # Anything that handles the text as a C string would run less than the policy checked.
    if "\x00" in sql:
        raise InvalidRequest("G-INPUT", "sql contains a NUL character")
