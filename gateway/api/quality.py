"""Data-quality feedback over HTTP (数据质量反馈): operators file, providers answer within five
working days, the authority sees what was escalated. Every check lives in
:mod:`gateway.control.quality`."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from gateway.api.auth import Caller, Services
from gateway.control import quality

router = APIRouter(prefix="/v1/quality", tags=["data quality"])

Text = Annotated[str, Field(min_length=1, max_length=4000)]
Name = Annotated[str, Field(min_length=1, max_length=200)]


class NewIssue(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "dataset": "residents",
                    "category": "completeness",
                    "description": "district is empty for about 3% of rows registered since March",
                    "columns": ["district"],
                }
            ]
        },
    )

    dataset: Name
    category: Literal["accuracy", "completeness", "timeliness", "authenticity", "fitness"]
    description: Text
    columns: list[Name] = Field(default_factory=list, max_length=200)


class Answer(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"resolution": "re-imported from the household register", "fixed_in_version": "2026-05"}
            ]
        },
    )

    resolution: Text
    fixed_in_version: Name | None = None


class Reopening(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"reason": "rows from April are still empty"}]}
    )

    reason: Text


@router.post("", status_code=201, summary="File data-quality feedback on a dataset")
def file_issue(body: NewIssue, caller: Caller, services: Services) -> dict[str, Any]:
    """An operator or developer files on a dataset its tenant is authorized for; the dataset's
    provider must answer within five working days."""
    issue = quality.file_issue(
        services.control,
        services.catalog,
        services.calendar,
        caller,
        dataset=body.dataset,
        category=body.category,
        description=body.description,
        columns=list(body.columns),
    )
    return issue.to_json(services.control.now())


@router.get("", summary="Data-quality feedback you may see")
def list_issues(
    caller: Caller,
    services: Services,
    status: Annotated[Literal["open", "answered", "reopened", "closed"] | None, Query()] = None,
    dataset: Annotated[str | None, Query(max_length=200)] = None,
    escalated: Annotated[
        bool | None, Query(description="Only issues (not) escalated to the authority.")
    ] = None,
) -> list[dict[str, Any]]:
    found = quality.list_issues(services.control, caller, status=status, dataset=dataset, escalated=escalated)
    now = services.control.now()
    return [issue.to_json(now) for issue in found]


@router.get("/calendar", summary="The working-day calendar due dates are counted in")
def calendar(caller: Caller, services: Services) -> dict[str, Any]:
    """Holidays and make-up working days (调休) in force; weekends are off unless listed."""
    return services.calendar.to_json()


@router.post("/sweep", summary="Escalate feedback past its due date to the authority")
def sweep(caller: Caller, services: Services) -> list[dict[str, Any]]:
    """The authority runs the escalation now (the job runner also runs it on its own); each
    overdue issue is escalated once per due date."""
    escalated = quality.sweep(services.control, caller)
    now = services.control.now()
    return [issue.to_json(now) for issue in escalated]


@router.get("/{issue_id}", summary="One piece of data-quality feedback")
def get_issue(issue_id: str, caller: Caller, services: Services) -> dict[str, Any]:
    return quality.get_issue(services.control, caller, issue_id).to_json(services.control.now())


@router.post("/{issue_id}/answer", summary="Answer feedback (the dataset's provider)")
def answer(issue_id: str, body: Answer, caller: Caller, services: Services) -> dict[str, Any]:
    """Only users of the dataset's provider organisation answer; a late answer is marked late."""
    issue = quality.answer(
        services.control, caller, issue_id, resolution=body.resolution, fixed_in_version=body.fixed_in_version
    )
    return issue.to_json(services.control.now())


@router.post("/{issue_id}/confirm", summary="Accept the provider's answer (closes the issue)")
def confirm(issue_id: str, caller: Caller, services: Services) -> dict[str, Any]:
    return quality.confirm(services.control, caller, issue_id).to_json(services.control.now())


@router.post("/{issue_id}/reopen", summary="Reject the provider's answer (due again in five working days)")
def reopen(issue_id: str, body: Reopening, caller: Caller, services: Services) -> dict[str, Any]:
    issue = quality.reopen(services.control, services.calendar, caller, issue_id, reason=body.reason)
    return issue.to_json(services.control.now())
