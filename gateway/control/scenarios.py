"""Scenarios (场景), one review each (一场景一审核): what an operator may build, on which columns.

An operator user applies under one of its tenant's authorizations, naming the datasets and
columns it needs, the output forms and, for differential privacy, the privacy unit. The
authority approves it with :class:`ScenarioTerms` or rejects it. Nothing runs outside an
approved, unexpired scenario whose datasets an authorization still covers (:func:`runnable`).

An approved scenario becomes what the enclave and the review gate enforce:
:func:`scenario_policy` (unrequested columns hidden, the terms' narrowing applied),
:func:`check_parameters` and :func:`dp_config`. Narrowing only tightens a column: any tag
may become ``hidden``, a ``measure`` ``sensitive``, a ``dimension`` ``quasi_identifier``.

The sandbox policy, DP and disclosure types are imported inside the functions that build
them: the control plane also serves token checks and ``veilbox init``, which should not
load sqlglot, opendp and pyarrow.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import ColumnElement, Connection, RowMapping, insert, select, update

from gateway.control.authorizations import covering_authorization, visible_authorization
from gateway.control.db import ControlPlane
from gateway.control.identity import SEES_ALL, Principal, Role, invisible, require_role, tenant_filter
from gateway.control.schema import TEXT_CHARS, aware, labels, names, new_id, scenarios, text, when
from gateway.errors import Conflict, Forbidden, InvalidRequest
from sandbox.catalog import Catalog, Column, Dataset, Tag
from sandbox.errors import CatalogError

if TYPE_CHECKING:
    from outbound_review import CheckParameters
    from sandbox.dp import DpConfig
    from sandbox.policy import ScenarioPolicy

OUTPUT_FORMS = ("aggregate", "model", "verification", "psi", "record")
READERS = SEES_ALL | {Role.REVIEWER}
"""Roles that see every tenant's scenarios."""
_NARROW_TARGETS = frozenset({Tag.HIDDEN, Tag.SENSITIVE, Tag.QUASI_IDENTIFIER})
_TIGHTER = frozenset({(Tag.MEASURE, Tag.SENSITIVE), (Tag.DIMENSION, Tag.QUASI_IDENTIFIER)})

Status = Literal["applied", "approved", "rejected", "closed"]


@dataclass(frozen=True, kw_only=True)
class ScenarioTerms:
    """The terms the authority approves a scenario under; validated when built.

    ``epsilon`` is the scenario's total privacy budget and ``query_epsilon`` what one
    query spends; ``delta``, ``max_rows`` and ``max_groups`` bound each DP query.
    ``min_cell`` is the smallest group released, ``k`` the k-anonymity of record outputs.
    ``narrow`` maps dataset → column → a tighter tag. ``ends_at`` defaults, on approval,
    to the end of the authorization. ``nk_n``/``nk_k``, ``p_percent``, ``zeros_disclosive``
    and ``negatives`` set the disclosure checks' dominance, p-percent, zero and negative
    rules (ACRO's defaults).
    """

    min_cell: int = 10
    k: int | None = None
    epsilon: float
    delta: float = 1e-6
    query_epsilon: float
    max_rows: int = 1
    max_groups: int = 1
    narrow: dict[str, dict[str, str]] = field(default_factory=dict)
    allow_dp: bool = False
    ends_at: datetime | None = None
    nk_n: int = 2
    nk_k: float = 0.9
    p_percent: float = 0.10
    zeros_disclosive: bool = True
    negatives: str = "review"

    def __post_init__(self) -> None:
        _integer("nk_n", self.nk_n, 1)
        if not 0 < _real("nk_k", self.nk_k) <= 1 or not 0 < _real("p_percent", self.p_percent) < 1:
            raise InvalidRequest("G-INPUT", "nk_k must be in (0, 1] and p_percent in (0, 1)")
        if not isinstance(self.zeros_disclosive, bool) or self.negatives not in ("review", "fail"):
            raise InvalidRequest("G-INPUT", "zeros_disclosive is true or false; negatives is review or fail")
        for name, least in (("min_cell", 1), ("max_rows", 1), ("max_groups", 1)):
            _integer(name, getattr(self, name), least)
        if self.k is not None:
            _integer("k", self.k, 2)
        if _real("epsilon", self.epsilon) <= 0 or _real("query_epsilon", self.query_epsilon) <= 0:
            raise InvalidRequest("G-INPUT", "epsilon and query_epsilon must be positive")
        if self.query_epsilon > self.epsilon:
            raise InvalidRequest("G-INPUT", "query_epsilon cannot exceed the scenario's total epsilon")
        if not 0 <= _real("delta", self.delta) < 1:
            raise InvalidRequest("G-INPUT", "delta must be at least 0 and below 1")
        if not isinstance(self.allow_dp, bool):
            raise InvalidRequest("G-INPUT", "allow_dp must be true or false")
        if self.ends_at is not None:
            object.__setattr__(self, "ends_at", aware("ends_at", self.ends_at))
        object.__setattr__(self, "narrow", _narrowing(self.narrow))

    def to_json(self) -> dict[str, Any]:
        """The terms as plain JSON values."""
        return {**asdict(self), "ends_at": None if self.ends_at is None else self.ends_at.isoformat()}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ScenarioTerms:
        """Terms from :meth:`to_json`'s output, validated again."""
        ends_at = data.get("ends_at")
        return cls(**{**data, "ends_at": None if ends_at is None else datetime.fromisoformat(ends_at)})


@dataclass(frozen=True)
class Scenario:
    """A scenario; ``policy`` and ``ends_at`` are set once it is approved."""

    id: str
    operator_id: str
    authorization_id: str
    name: str
    purpose: str
    datasets: dict[str, tuple[str, ...]]
    output_forms: tuple[str, ...]
    privacy_unit: str | None
    requested_epsilon: float
    status: Status
    policy: ScenarioTerms | None
    applied_by: str
    decided_by: str | None
    reason: str | None
    ends_at: datetime | None
    created_at: datetime
    decided_at: datetime | None


def apply(
    cp: ControlPlane,
    actor: Principal,
    *,
    authorization_id: str,
    name: str,
    purpose: str,
    datasets: dict[str, list[str]],
    output_forms: list[str],
    privacy_unit: str | None,
    requested_epsilon: float,
) -> Scenario:
    """Apply for a scenario (operator users), under an authorization of the tenant that
    covers ``datasets`` now. ``privacy_unit`` is ``"dataset.column"`` among the requested
    columns, or None; ``requested_epsilon`` is 0 when no DP is wanted.
    """
    require_role(actor, {Role.OPERATOR}, "applying for a scenario")
    name, purpose = text("name", name), text("purpose", purpose, limit=TEXT_CHARS)
    requested = _requested(datasets)
    forms = labels("output_forms", output_forms)
    if not forms or not set(forms) <= set(OUTPUT_FORMS):
        raise InvalidRequest("G-INPUT", f"output_forms must list some of {', '.join(OUTPUT_FORMS)}")
    unit = _privacy_unit(privacy_unit, requested)
    epsilon = _real("requested_epsilon", requested_epsilon)
    if epsilon < 0:
        raise InvalidRequest("G-INPUT", "requested_epsilon cannot be negative")
    with cp.transaction() as conn:
        authorization = visible_authorization(conn, actor, authorization_id)
        now = cp.now()
        if not authorization.covers(requested, now):
            raise Forbidden(
                "G-AUTHORIZATION",
                f"authorization {authorization_id} is not in force now or does not cover all of "
                f"{', '.join(sorted(requested))}: apply under one that does",
            )
        scenario = Scenario(
            new_id("scn"), authorization.operator_id, authorization.id, name, purpose, requested, forms,
            unit, epsilon, "applied", None, actor.user_id, None, None, None, now, None,
        )  # fmt: skip
        conn.execute(insert(scenarios).values(**_fields(scenario)))
        details = {
            "authorization_id": authorization.id, "name": name, "purpose": purpose,
            "datasets": {d: list(c) for d, c in requested.items()}, "output_forms": list(forms),
            "privacy_unit": unit, "requested_epsilon": epsilon,
        }  # fmt: skip
        cp.ledger.append(actor.user_id, "scenario.applied", scenario.id, details)
    return scenario


def approve(
    cp: ControlPlane, actor: Principal, scenario_id: str, *, policy: ScenarioTerms, reason: str
) -> Scenario:
    """Approve an applied scenario under ``policy`` (authority only).

    The scenario ends at ``policy.ends_at``, by default when its authorization ends, and
    never later; the authorization must cover it now.
    """
    require_role(actor, {Role.AUTHORITY}, "approving a scenario")
    reason = text("reason", reason, limit=TEXT_CHARS)
    if not isinstance(policy, ScenarioTerms):
        raise InvalidRequest("G-INPUT", "policy must be ScenarioTerms")
    with cp.transaction() as conn:
        scenario = _pending(conn, actor, scenario_id)
        _check_terms(scenario, policy)
        now = cp.now()
        authorization = visible_authorization(conn, actor, scenario.authorization_id)
        if not authorization.covers(scenario.datasets, now):
            raise Forbidden(
                "G-AUTHORIZATION",
                f"authorization {authorization.id} no longer covers scenario {scenario_id}: reject it",
            )
        ends_at = policy.ends_at or authorization.ends_at
        if not now < ends_at <= authorization.ends_at:
            raise InvalidRequest(
                "G-INPUT",
                f"the scenario must end in the future and no later than its authorization, "
                f"{when(authorization.ends_at)}",
            )
        terms = replace(policy, ends_at=ends_at).to_json()
        details = {"terms": terms, "reason": reason}
        return _decide(
            cp, conn, actor, scenario_id, "scenario.approved", details,
            status="approved", policy=terms, ends_at=ends_at, reason=reason,
        )  # fmt: skip


def reject(cp: ControlPlane, actor: Principal, scenario_id: str, *, reason: str) -> Scenario:
    """Reject an applied scenario, with the reason the operator will read (authority only)."""
    require_role(actor, {Role.AUTHORITY}, "rejecting a scenario")
    reason = text("reason", reason, limit=TEXT_CHARS)
    with cp.transaction() as conn:
        _pending(conn, actor, scenario_id)
        details = {"reason": reason}
        return _decide(
            cp, conn, actor, scenario_id, "scenario.rejected", details, status="rejected", reason=reason
        )


def get_scenario(cp: ControlPlane, actor: Principal, scenario_id: str) -> Scenario:
    """One scenario the actor may see; NotFound ``G-TENANT`` otherwise."""
    with cp.transaction(write=False) as conn:
        return visible_scenario(conn, actor, scenario_id)


def list_scenarios(cp: ControlPlane, actor: Principal) -> list[Scenario]:
    """Every scenario for the authority, auditors and reviewers; the tenant's own for its users."""
    query = select(scenarios).where(_readable(actor)).order_by(scenarios.c.created_at, scenarios.c.id)
    with cp.transaction(write=False) as conn:
        return [_scenario(row) for row in conn.execute(query).mappings()]


def runnable(cp: ControlPlane, actor: Principal, scenario_id: str) -> Scenario:
    """The scenario, if the actor (an operator or developer of its tenant) may run jobs in it now.

    Raises Forbidden ``G-ROLE``, NotFound ``G-TENANT``, Forbidden ``G-SCENARIO`` (not
    approved, or ended) or Forbidden ``G-AUTHORIZATION`` (no authorization covers it).
    """
    require_role(actor, {Role.OPERATOR, Role.DEVELOPER}, "running jobs")
    with cp.transaction(write=False) as conn:
        scenario = visible_scenario(conn, actor, scenario_id)
        now = cp.now()
        if scenario.status != "approved" or scenario.ends_at is None:
            raise Forbidden(
                "G-SCENARIO",
                f"scenario {scenario_id} is {scenario.status}: jobs run only in approved scenarios",
            )
        if scenario.ends_at <= now:
            raise Forbidden(
                "G-SCENARIO", f"scenario {scenario_id} ended at {when(scenario.ends_at)}: apply for a new one"
            )
        covering_authorization(conn, scenario.operator_id, scenario.datasets, now)
    return scenario


def scenario_policy(scenario: Scenario, catalog: Catalog) -> ScenarioPolicy:
    """The query policy of an approved scenario: its datasets from ``catalog`` with every
    unrequested column hidden and the terms' narrowing applied.

    Raises Forbidden ``G-SCENARIO`` if the catalog no longer holds what the scenario
    requested, InvalidRequest ``G-NARROW`` if a narrowing would loosen a catalog tag.
    """
    from sandbox.policy import ScenarioPolicy  # noqa: PLC0415 - see the module docstring

    terms = _terms(scenario)
    datasets = {
        name: _narrowed(scenario, _dataset(scenario, catalog, name), columns, terms.narrow.get(name, {}))
        for name, columns in scenario.datasets.items()
    }
    return ScenarioPolicy(datasets, min_group_size=terms.min_cell, allow_dp=terms.allow_dp)


def check_parameters(scenario: Scenario) -> CheckParameters:
    """The disclosure-check thresholds of an approved scenario."""
    from outbound_review import CheckParameters  # noqa: PLC0415 - see the module docstring

    terms = _terms(scenario)
    negatives: Literal["review", "fail"] = "fail" if terms.negatives == "fail" else "review"
    return CheckParameters(
        min_cell=terms.min_cell,
        k=terms.k,
        nk_n=terms.nk_n,
        nk_k=terms.nk_k,
        p_percent=terms.p_percent,
        zeros_disclosive=terms.zeros_disclosive,
        negatives=negatives,
    )


def dp_config(scenario: Scenario) -> DpConfig | None:
    """The per-query DP parameters of an approved scenario; None without a privacy unit or DP."""
    from sandbox.dp import DpConfig  # noqa: PLC0415 - see the module docstring

    terms = _dp_terms(scenario)
    if terms is None or scenario.privacy_unit is None:
        return None
    dataset, column = scenario.privacy_unit.split(".")
    return DpConfig(
        dataset,
        column,
        terms.query_epsilon,
        delta=terms.delta,
        max_rows=terms.max_rows,
        max_groups=terms.max_groups,
    )


def query_epsilon(scenario: Scenario) -> float | None:
    """The ε one DP query of an approved scenario spends; None when it allows no DP."""
    terms = _dp_terms(scenario)
    return None if terms is None else terms.query_epsilon


# ----------------------------------------------------------------- internals


def _readable(actor: Principal) -> ColumnElement[bool]:
    return tenant_filter(actor, scenarios.c.operator_id, readers=READERS, doing="reading scenarios")


def visible_scenario(conn: Connection, actor: Principal, scenario_id: str) -> Scenario:
    """The scenario if the actor may see it, in an open transaction; NotFound ``G-TENANT`` otherwise."""
    row = (
        conn.execute(select(scenarios).where(scenarios.c.id == scenario_id, _readable(actor)))
        .mappings()
        .first()
    )
    if row is None:
        raise invisible("scenario", scenario_id)
    return _scenario(row)


def _pending(conn: Connection, actor: Principal, scenario_id: str) -> Scenario:
    scenario = visible_scenario(conn, actor, scenario_id)
    if scenario.status != "applied":
        raise Conflict(
            "G-STATE", f"scenario {scenario_id} is already {scenario.status}; only applied ones are decided"
        )
    return scenario


def _decide(
    cp: ControlPlane,
    conn: Connection,
    actor: Principal,
    scenario_id: str,
    action: str,
    details: dict[str, Any],
    **values: Any,
) -> Scenario:
    """Store the authority's decision on a scenario and record it in the ledger."""
    decided = {"decided_by": actor.user_id, "decided_at": cp.now(), **values}
    conn.execute(update(scenarios).where(scenarios.c.id == scenario_id).values(**decided))
    cp.ledger.append(actor.user_id, action, scenario_id, details)
    return visible_scenario(conn, actor, scenario_id)


def _terms(scenario: Scenario) -> ScenarioTerms:
    if scenario.status != "approved" or scenario.policy is None:
        raise Forbidden(
            "G-SCENARIO", f"scenario {scenario.id} is {scenario.status}, not approved: it has no terms"
        )
    return scenario.policy


def _dp_terms(scenario: Scenario) -> ScenarioTerms | None:
    terms = _terms(scenario)
    return terms if terms.allow_dp and scenario.privacy_unit is not None else None


def _check_terms(scenario: Scenario, terms: ScenarioTerms) -> None:
    """The terms fit the scenario: narrowing names requested columns, DP has a privacy unit."""
    for dataset, columns in terms.narrow.items():
        for column in columns:
            if column not in scenario.datasets.get(dataset, ()):
                raise InvalidRequest(
                    "G-INPUT",
                    f"narrow names {dataset}.{column}, which scenario {scenario.id} does not request",
                )
    if terms.allow_dp and scenario.privacy_unit is None:
        raise InvalidRequest(
            "G-INPUT", f"allow_dp needs a privacy unit, and scenario {scenario.id} names none"
        )


def _dataset(scenario: Scenario, catalog: Catalog, name: str) -> Dataset:
    try:
        return catalog.get(name)
    except CatalogError as exc:
        raise Forbidden("G-SCENARIO", f"scenario {scenario.id} cannot run: {exc}") from None


def _narrowed(
    scenario: Scenario, dataset: Dataset, requested: tuple[str, ...], narrow: Mapping[str, str]
) -> Dataset:
    missing = sorted(set(requested) - {c.name for c in dataset.columns})
    if missing:
        raise Forbidden(
            "G-SCENARIO",
            f"scenario {scenario.id} cannot run: {dataset.name} no longer has {', '.join(missing)}",
        )
    columns = []
    for column in dataset.columns:
        tag = column.tag if column.name in requested else Tag.HIDDEN
        if column.name in narrow:
            target = Tag(narrow[column.name])
            if not (target is Tag.HIDDEN or target is tag or (tag, target) in _TIGHTER):
                raise InvalidRequest(
                    "G-NARROW",
                    f"narrowing {dataset.name}.{column.name} from {tag} to {target} would loosen it: a "
                    "column may only become hidden, a measure sensitive, a dimension a quasi_identifier",
                )
            tag = target
        columns.append(_retagged(column, tag))
    return replace(dataset, columns=tuple(columns))


def _retagged(column: Column, tag: Tag) -> Column:
    if tag is column.tag:
        return column
    if tag is Tag.HIDDEN:  # a hidden column keeps no bounds or public domain to describe it
        return replace(column, tag=tag, lower=None, upper=None, domain=None)
    return replace(column, tag=tag)


def _narrowing(narrow: object) -> dict[str, dict[str, str]]:
    if not isinstance(narrow, Mapping) or not all(isinstance(c, Mapping) for c in narrow.values()):
        raise InvalidRequest("G-INPUT", "narrow must map dataset → column → tag")
    result: dict[str, dict[str, str]] = {}
    for dataset, columns in narrow.items():
        for column, tag in columns.items():
            if not isinstance(tag, str) or tag not in _NARROW_TARGETS:
                raise InvalidRequest(
                    "G-NARROW",
                    f"narrow {dataset}.{column} to {tag!r}? A scenario may only tighten a column: to "
                    "hidden, a measure to sensitive, or a dimension to quasi_identifier",
                )
            result.setdefault(str(dataset), {})[str(column)] = Tag(tag).value
    return result


def _requested(datasets: object) -> dict[str, tuple[str, ...]]:
    if not isinstance(datasets, Mapping) or not datasets:
        raise InvalidRequest("G-INPUT", "datasets must map at least one dataset to the columns needed")
    names("datasets", list(datasets))
    return {name: names(f"columns of {name}", columns) for name, columns in datasets.items()}


def _privacy_unit(unit: str | None, requested: Mapping[str, tuple[str, ...]]) -> str | None:
    if unit is None:
        return None
    dataset, _, column = str(unit).partition(".")
    if column not in requested.get(dataset, ()):
        raise InvalidRequest("G-INPUT", "privacy_unit must be 'dataset.column' among the requested columns")
    return f"{dataset}.{column}"


def _integer(name: str, value: object, least: int) -> int:
    if type(value) is not int or value < least:
        raise InvalidRequest("G-INPUT", f"{name} must be a whole number of at least {least}, not {value!r}")
    return value


def _real(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidRequest("G-INPUT", f"{name} must be a finite number, not {value!r}")
    return float(value)


def _fields(scenario: Scenario) -> dict[str, Any]:
    return {
        **asdict(scenario),
        "datasets": {name: list(columns) for name, columns in scenario.datasets.items()},
        "output_forms": list(scenario.output_forms),
        "policy": None if scenario.policy is None else scenario.policy.to_json(),
    }


def _scenario(row: RowMapping) -> Scenario:
    policy = row["policy"]
    return Scenario(
        **{
            **row,
            "datasets": {name: tuple(columns) for name, columns in row["datasets"].items()},
            "output_forms": tuple(row["output_forms"]),
            "policy": None if policy is None else ScenarioTerms.from_json(policy),
        }
    )
