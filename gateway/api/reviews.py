"""``/v1/reviews``: the outbound-review queue (出域审核) for reviewers.

Every check lives in :mod:`gateway.reviewing`, which the web console calls too; these
routes only translate between HTTP and those functions.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from gateway import reviewing
from gateway.api.auth import Caller, Services
from outbound_review import ReviewItem

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


@router.get("", response_model=list[ReviewSummary], summary="Results waiting for your review")
def pending(caller: Caller, services: Services) -> Any:
    """Pending results of every organisation but your own."""
    return [_summary(i) for i in reviewing.pending(services, caller)]


@router.get("/{job_id}", response_model=ReviewView, summary="One result with all its evidence")
def show(
    job_id: str,
    caller: Caller,
    services: Services,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Any:
    """The evidence, the decisions so far and a page of the result table."""
    found = reviewing.page(services, caller, job_id, offset=offset, limit=limit)
    return {
        **_summary(found.item),
        "evidence": found.item.evidence,
        "decisions": found.decisions,
        "columns": found.columns,
        "rows": found.rows,
        "total_rows": found.total_rows,
        "offset": found.offset,
    }


@router.post("/{job_id}/decisions", response_model=ReviewSummary, summary="Approve, reject or return")
def decide(job_id: str, body: Decision, caller: Caller, services: Services) -> Any:
    """Record a decision; a result is approved once it has the approvals it needs, and the
    runner then releases it."""
    return _summary(reviewing.decide(services, caller, job_id, body.decision, body.reason))


@router.post(
    "/{job_id}/mitigations", response_model=ReviewSummary, summary="Suppress or round before approving"
)
def mitigate(job_id: str, body: Mitigation, caller: Caller, services: Services) -> Any:
    """Replace the result by a mitigated version; the checks are re-run on it."""
    return _summary(reviewing.mitigate(services, caller, job_id, body.action, body.reason, base=body.base))
