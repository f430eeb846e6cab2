"""``/v1/evaluations``: the annual evaluation (年度评估) of operators — the report of a year,
the authority's outcome, and the list of outcomes. Every check lives in
:mod:`gateway.evaluation`."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from gateway import evaluation
from gateway.api.auth import Caller, Services

router = APIRouter(prefix="/v1/evaluations", tags=["evaluations"])


class Outcome(BaseModel):
    """The authority's outcome of an operator's year, with the reason recorded."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "operator_id": "org_…",
                    "year": 2026,
                    "outcome": "rectify",
                    "reason": "two incidents reported late",
                }
            ]
        },
    )

    operator_id: str = Field(min_length=1, max_length=64)
    year: int = Field(ge=2000, le=2200)
    outcome: Literal["pass", "rectify", "fail"]
    reason: str = Field(min_length=1, max_length=4000)


def _plain(found: evaluation.Evaluation) -> dict[str, Any]:
    data = asdict(found)
    return {
        k: v.isoformat() if hasattr(v, "isoformat") else list(v) if isinstance(v, tuple) else v
        for k, v in data.items()
    }


@router.get("/report", summary="An operator's evaluation report for a year")
def report(
    caller: Caller,
    services: Services,
    operator_id: Annotated[str, Query(min_length=1, max_length=64)],
    year: Annotated[int, Query(ge=2000, le=2200)],
) -> dict[str, Any]:
    """Usage, products, revenue against each yearly maximum, incidents, quality feedback and
    budget use; for the authority, auditors and the operator itself."""
    return evaluation.report(services, caller, operator_id, year)


@router.post("", status_code=201, summary="Record an evaluation outcome (authority)")
def record(body: Outcome, caller: Caller, services: Services) -> dict[str, Any]:
    """``rectify`` opens a 30-day deadline; ``fail``, or a second ``rectify``, revokes every
    authorization of the operator still in force (its exit)."""
    found = evaluation.record(
        services, caller, body.operator_id, body.year, outcome=body.outcome, reason=body.reason
    )
    return _plain(found)


@router.get("", summary="Evaluation outcomes you may see")
def listing(caller: Caller, services: Services) -> list[dict[str, Any]]:
    return [_plain(e) for e in evaluation.list_evaluations(services, caller)]
