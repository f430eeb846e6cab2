"""The outbound-review desk (出域审核) as service functions: the API and the console call these.

A reviewer sees every result outside its own organisation with the evidence a decision
needs — purpose, code, datasets with levels and row counts, the check report rule by rule,
the differencing findings, the DP guarantee and the budget left — and the result itself,
paged. The review gate enforces separation of duties, reasons and the two-reviewer rule;
these functions add that reviewers alone may call them and that an organisation's own
results are invisible to its reviewers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from deid.budget import Spend
from deid.errors import BudgetError
from gateway import jobs
from gateway.control import Principal, Role
from gateway.control.identity import invisible, require_role
from gateway.platform import Platform
from outbound_review import ReviewItem, ReviewRefused
from outbound_review.queue import State

REVIEWERS = frozenset({Role.REVIEWER})
DECIDED: tuple[State, ...] = ("approved", "released", "rejected", "returned")
"""The states a result reaches once reviewers have decided it."""


@dataclass(frozen=True)
class ReviewPage:
    """One result as a reviewer sees it: the item, the decisions so far, a page of the table
    and, per source dataset, the privacy budget left in the scenario (None: no budget set)."""

    item: ReviewItem
    decisions: list[dict[str, Any]]
    columns: list[str]
    rows: list[dict[str, Any]]
    total_rows: int
    offset: int
    budget_left: dict[str, Spend | None]


def pending(platform: Platform, principal: Principal) -> list[ReviewItem]:
    """Results waiting for review, of every organisation but the reviewer's own."""
    require_role(principal, REVIEWERS, "reviewing results")
    return platform.gate.queue.pending(principal.organisation_id)


def decided(platform: Platform, principal: Principal) -> list[ReviewItem]:
    """Results reviewers have decided, of every organisation but the reviewer's own."""
    require_role(principal, REVIEWERS, "reviewing results")
    found = [i for state in DECIDED for i in platform.gate.queue.items(state)]
    return sorted((i for i in found if i.organisation != principal.organisation_id), key=lambda i: i.job_id)


def item(platform: Platform, principal: Principal, job_id: str) -> ReviewItem:
    """One result the reviewer may see; NotFound ``G-TENANT`` for its own organisation's."""
    require_role(principal, REVIEWERS, "reviewing results")
    try:
        found = platform.gate.queue.get(job_id)
    except ReviewRefused:
        raise invisible("review", job_id) from None
    if found.organisation == principal.organisation_id:
        raise invisible("review", job_id)
    return found


def page(
    platform: Platform, principal: Principal, job_id: str, *, offset: int = 0, limit: int = 100
) -> ReviewPage:
    """The evidence, the decisions so far and rows ``offset`` … ``offset + limit`` of the result."""
    found = item(platform, principal, job_id)
    table = platform.gate.result(job_id)
    budget: dict[str, Spend | None] = {}
    for source in found.evidence.get("sources", []):
        try:
            budget[source["name"]] = platform.budget.remaining(found.scenario, source["name"])
        except BudgetError:
            budget[source["name"]] = None
    return ReviewPage(
        item=found,
        decisions=platform.gate.queue.decisions(job_id),
        columns=table.column_names,
        rows=table.slice(offset, limit).to_pylist(),
        total_rows=table.num_rows,
        offset=offset,
        budget_left=budget,
    )


def decide(
    platform: Platform,
    principal: Principal,
    job_id: str,
    decision: Literal["approve", "reject", "return"],
    reason: str,
) -> ReviewItem:
    """Record a decision; a result is approved once it has the approvals it needs, and the
    runner is then told to release it."""
    item(platform, principal, job_id)
    decided_item = platform.gate.queue.decide(
        job_id, principal.user_id, principal.organisation_id, decision, reason
    )
    if decided_item.state != "pending_review":
        jobs.advance(
            platform.control,
            job_id,
            decided_item.state,
            expected=("pending_review", "approved"),
            reason=reason if decided_item.state != "approved" else None,
        )
    if decided_item.state == "approved":
        platform.wake()
    return decided_item


def mitigate(
    platform: Platform,
    principal: Principal,
    job_id: str,
    action: Literal["suppress", "round"],
    reason: str,
    *,
    base: int = 0,
) -> ReviewItem:
    """Replace the result by a mitigated version (the checks are re-run on it) before anyone approves."""
    item(platform, principal, job_id)
    revised = platform.gate.mitigate(
        job_id, principal.user_id, principal.organisation_id, action, reason, base=base
    )
    jobs.advance(
        platform.control,
        job_id,
        "pending_review",
        expected=("pending_review",),
        result_sha256=revised.result_sha256,
    )
    return revised
