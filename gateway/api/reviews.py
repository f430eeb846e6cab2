"""``/v1/reviews``: the outbound-review queue (出域审核) for reviewers.

A reviewer sees every pending result outside its own organisation with the evidence a
decision needs — purpose, code, datasets with levels and row counts, the check report rule
by rule, the differencing findings, the DP guarantee — and the result itself, paged. The
review gate enforces separation of duties, reasons and the two-reviewer rule; this module
only adds that reviewers alone may call it and that another organisation's own results
are invisible to it.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from gateway import jobs
from gateway.api.auth import Caller, Services
from gateway.api.platform import Platform
from gateway.control import Principal, Role
from gateway.control.identity import invisible, require_role
from outbound_review import ReviewItem, ReviewRefused

router = APIRouter(prefix="/v1/reviews", tags=["reviews"])


class Decision(BaseModel):
    """A reviewer's decision and the reason the submitter will read."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"decision": "approve", "reason": "every cell ≥ 10; purpose fits"}]},
    )

    decision: Literal["approve", "reject", "return"]
    reason: str = Field(min_length=1, max_length=2000)


class Mitigation(BaseModel):
    """Suppress the failing cells, or round counts to a base, before anyone approves."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"action": "suppress", "reason": "two district cells below 10"}]},
    )

    action: Literal["suppress", "round"]
    reason: str = Field(min_length=1, max_length=2000)
    base: int = Field(default=0, ge=0, le=1000)


class ReviewSummary(BaseModel):
    """One item of the queue."""

    job_id: str
    scenario: str
    submitter: str
    organisation: str
    level: int
    state: str
    worst_check: str
    approvals: list[str]
    approvals_needed: int


class ReviewView(ReviewSummary):
    """An item with its evidence, decisions and a page of the result."""

    evidence: dict[str, Any]
    decisions: list[dict[str, Any]]
    columns: list[str]
    rows: list[dict[str, Any]]
    total_rows: int
    offset: int


def _summary(item: ReviewItem) -> dict[str, Any]:
    return {
        "job_id": item.job_id,
        "scenario": item.scenario,
        "submitter": item.submitter,
        "organisation": item.organisation,
        "level": item.level,
        "state": item.state,
        "worst_check": item.worst_check,
        "approvals": list(item.approvals),
        "approvals_needed": item.approvals_needed,
    }


def _item(services: Platform, caller: Principal, job_id: str) -> ReviewItem:
    require_role(caller, {Role.REVIEWER}, "reviewing results")
    try:
        item = services.gate.queue.get(job_id)
    except ReviewRefused:
        raise invisible("review", job_id) from None
    if item.organisation == caller.organisation_id:
        raise invisible("review", job_id)
    return item


@router.get("", response_model=list[ReviewSummary], summary="Results waiting for your review")
def pending(caller: Caller, services: Services) -> Any:
    """Pending results of every organisation but your own."""
    require_role(caller, {Role.REVIEWER}, "reviewing results")
    return [_summary(i) for i in services.gate.queue.pending(caller.organisation_id)]


@router.get("/{job_id}", response_model=ReviewView, summary="One result with all its evidence")
def show(
    job_id: str,
    caller: Caller,
    services: Services,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Any:
    """The evidence, the decisions so far and a page of the result table."""
    item = _item(services, caller, job_id)
    table = services.gate.result(job_id)
    return {
        **_summary(item),
        "evidence": item.evidence,
        "decisions": services.gate.queue.decisions(job_id),
        "columns": table.column_names,
        "rows": table.slice(offset, limit).to_pylist(),
        "total_rows": table.num_rows,
        "offset": offset,
    }


@router.post("/{job_id}/decisions", response_model=ReviewSummary, summary="Approve, reject or return")
def decide(job_id: str, body: Decision, caller: Caller, services: Services) -> Any:
    """Record a decision; a result is approved once it has the approvals it needs, and the
    runner then releases it."""
    _item(services, caller, job_id)
    item = services.gate.queue.decide(
        job_id, caller.user_id, caller.organisation_id, body.decision, body.reason
    )
    if item.state != "pending_review":
        jobs.advance(
            services.control,
            job_id,
            item.state,
            expected=("pending_review", "approved"),
            reason=body.reason if item.state != "approved" else None,
        )
    if item.state == "approved":
        services.wake()
    return _summary(item)


@router.post(
    "/{job_id}/mitigations", response_model=ReviewSummary, summary="Suppress or round before approving"
)
def mitigate(job_id: str, body: Mitigation, caller: Caller, services: Services) -> Any:
    """Replace the result by a mitigated version; the checks are re-run on it."""
    _item(services, caller, job_id)
    item = services.gate.mitigate(
        job_id, caller.user_id, caller.organisation_id, body.action, body.reason, base=body.base
    )
    jobs.advance(
        services.control,
        job_id,
        "pending_review",
        expected=("pending_review",),
        result_sha256=item.result_sha256,
    )
    return _summary(item)
