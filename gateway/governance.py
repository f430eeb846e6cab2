"""The authority's decisions that reach past the control plane, as service functions the API
and the console call: a grant checked against the catalog, a revocation that withdraws
what it closed from review and deletes its results, a scenario approval that sets the
privacy budget, and what each scenario has spent of it.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from deid.errors import BudgetError
from gateway import exits
from gateway.control import Principal, authorizations, scenarios
from gateway.control.authorizations import Authorization, ExitSummary
from gateway.control.scenarios import Scenario, ScenarioTerms
from gateway.errors import InvalidRequest
from gateway.exits import ExitReport
from gateway.platform import Platform

MAX_TOTAL_DELTA = 0.5


@dataclass(frozen=True)
class BudgetUse:
    """One dataset's privacy budget in one scenario: the total ε set, what is spent and left."""

    scenario_id: str
    scenario: str
    dataset: str
    total: float
    spent: float
    left: float
    charges: int


def grant(
    platform: Platform,
    principal: Principal,
    *,
    operator_id: str,
    mode: str,
    scope: list[str],
    datasets: list[str],
    category: str,
    starts_at: datetime | None = None,
    ends_at: datetime | None = None,
) -> Authorization:
    """Grant an operator an authorization over registered datasets; under a ``domain``
    authorization each must come from a provider the scope names."""
    registered = {d.name: d.provider for d in platform.catalog.list() if not d.extra.get("operator")}
    unknown = sorted(set(datasets) - set(registered))
    if unknown:
        raise InvalidRequest("G-INPUT", f"no registered dataset is named {', '.join(unknown)}")
    if mode == "domain":
        outside = sorted(d for d in datasets if registered[d] not in scope)
        if outside:
            raise InvalidRequest(
                "G-INPUT", f"{', '.join(outside)} come from providers outside the domain scope {scope}"
            )
    granted = authorizations.grant(
        platform.control,
        principal,
        operator_id=operator_id,
        mode=mode,
        scope=scope,
        datasets=datasets,
        category=category,
        starts_at=starts_at,
        ends_at=ends_at,
    )
    # An operator back after an exit gets a new data key; what it left before stays shredded.
    platform.keys.renew(granted.operator_id, actor=principal.user_id)
    return granted


def revoke(
    platform: Platform, principal: Principal, authorization_id: str, *, reason: str, voluntary: bool = False
) -> tuple[ExitSummary, ExitReport, str]:
    """End an authorization and carry out its exit (:mod:`gateway.exits`); returns what the
    control plane closed, the exit report and the report's SHA-256."""
    summary = authorizations.revoke(
        platform.control, principal, authorization_id, reason=reason, voluntary=voluntary
    )
    report, digest = exits.finish(platform, principal, summary, reason=reason, voluntary=voluntary)
    return summary, report, digest


def approve(
    platform: Platform, principal: Principal, scenario_id: str, *, terms: ScenarioTerms, reason: str
) -> Scenario:
    """Approve a scenario under ``terms`` and set its budget on every one of its datasets: ε as
    approved, and δ for as many queries as ε allows (``terms.delta`` is per query)."""
    found = scenarios.approve(platform.control, principal, scenario_id, policy=terms, reason=reason)
    total_delta = min(terms.delta * max(1.0, terms.epsilon / terms.query_epsilon), MAX_TOTAL_DELTA)
    for dataset in sorted(found.datasets):
        platform.budget.set_budget(found.id, dataset, terms.epsilon, total_delta, actor=principal.user_id)
    return found


def budget_use(platform: Platform, principal: Principal) -> list[BudgetUse]:
    """The privacy budget of every approved scenario the caller may see, per dataset."""
    found = []
    for scenario in scenarios.list_scenarios(platform.control, principal):
        if scenario.policy is None:
            continue
        spent: dict[str, float] = defaultdict(float)
        counted: dict[str, int] = defaultdict(int)
        for receipt in platform.budget.charges(scenario.id):
            for dataset, cost in receipt.costs.items():
                spent[dataset] += cost.epsilon
                counted[dataset] += 1
        for dataset in sorted(scenario.datasets):
            try:
                left = platform.budget.remaining(scenario.id, dataset).epsilon
            except BudgetError:
                continue  # no budget was set on this dataset, so nothing can be spent from it
            found.append(
                BudgetUse(
                    scenario_id=scenario.id,
                    scenario=scenario.name,
                    dataset=dataset,
                    total=spent[dataset] + left,
                    spent=spent[dataset],
                    left=left,
                    charges=counted[dataset],
                )
            )
    return found
