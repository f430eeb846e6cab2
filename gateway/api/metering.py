"""Metering and the books over HTTP (可计量): each job's meter and charge, statements per
operator and period, revenue-share rules and reports. Every check lives in the service
functions (:mod:`gateway.control.meters`, ``statements``, ``revenue_share``)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from gateway.api.auth import Caller, Services
from gateway.api.control import Reason
from gateway.api.control import _plain as plain
from gateway.api.products import Fen
from gateway.control import meters, revenue_share, statements
from gateway.control.accounting import BASIS_POINTS

metered = APIRouter(prefix="/v1/meters", tags=["metering"])
books = APIRouter(prefix="/v1/statements", tags=["metering"])
shares = APIRouter(prefix="/v1/revenue-share", tags=["metering"])
ROUTERS = (metered, books, shares)

PeriodText = Annotated[
    str,
    Field(
        min_length=4,
        max_length=40,
        description="A year (2030), a quarter (2030-Q1), a month (2030-03) or dates "
        "(2030-03-01..2030-03-15, both included), in China Standard Time.",
    ),
]
BasisPoints = Annotated[int, Field(ge=0, le=BASIS_POINTS, description="Basis points: 1 % is 100.")]
Id = Annotated[str | None, Query(min_length=1, max_length=64)]


class StatementRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"operator_id": "org_0123456789abcdef0123", "period": "2030-Q1"}]},
    )

    operator_id: str = Field(min_length=1, max_length=64)
    period: PeriodText


class Rules(BaseModel):
    """Shares of net income: the authority's and the operator's; the providers get the rest."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "authority_bp": 2000,
                    "operator_bp": 6000,
                    "weighting": "rows_scanned",
                    "reason": "as agreed in the authorization agreements of 2030",
                }
            ]
        },
    )

    authority_bp: BasisPoints
    operator_bp: BasisPoints
    weighting: Literal["rows_scanned", "datasets_touched"] = "rows_scanned"
    reason: Reason


class ReportRequest(BaseModel):
    """A period, optionally one operator, and the costs recognised per operator in fen."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "period": "2030",
                    "operator_id": "org_0123456789abcdef0123",
                    "costs": {"org_0123456789abcdef0123": 1_200_000},
                }
            ]
        },
    )

    period: PeriodText
    operator_id: str | None = Field(default=None, min_length=1, max_length=64)
    costs: dict[Annotated[str, Field(min_length=1, max_length=64)], Fen] = Field(
        default_factory=dict, max_length=100
    )


# ----------------------------------------------------------------- meters


@metered.get("", summary="Meters of the jobs you may see")
def list_meters(
    caller: Caller,
    services: Services,
    scenario_id: Id = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    """Newest first: rows scanned per dataset, CPU, bytes released, ε and δ of each job that ran."""
    return [
        _meter(m) for m in meters.list_meters(services.control, caller, scenario_id=scenario_id, limit=limit)
    ]


@metered.get("/{job_id}", summary="One job's meter and charge")
def show_meter(job_id: str, caller: Caller, services: Services) -> dict[str, Any]:
    meter, charge = meters.get_meter(services.control, caller, job_id)
    return {
        **_meter(meter),
        "charge": None if charge is None else {**charge.document(), "sha256": charge.sha256},
    }


def _meter(meter: meters.Meter) -> dict[str, Any]:
    return {**plain(meter), "providers": meter.by_provider()}


# ----------------------------------------------------------------- statements


@books.post("", status_code=201, summary="Issue an operator's statement for a period")
def issue_statement(body: StatementRequest, caller: Caller, services: Services) -> dict[str, Any]:
    """Every charge of the period, void ones marked, with totals and what remains of each
    yearly maximum; recorded in the ledger with the document's SHA-256."""
    return plain(statements.issue(services.control, caller, operator_id=body.operator_id, period=body.period))


@books.get("", summary="Statements you may see (without their lines)")
def list_statements(caller: Caller, services: Services, operator_id: Id = None) -> list[dict[str, Any]]:
    return [
        _summary(s) for s in statements.list_statements(services.control, caller, operator_id=operator_id)
    ]


@books.get("/{statement_id}", summary="One statement")
def show_statement(statement_id: str, caller: Caller, services: Services) -> dict[str, Any]:
    return plain(statements.get_statement(services.control, caller, statement_id))


def _summary(issued: statements.Statement | revenue_share.RevenueReport) -> dict[str, Any]:
    """An issued document's header and totals, without its lines."""
    summary = plain(issued)
    document = summary.pop("document")
    return {**summary, "complete": document["complete"], "totals": document["totals"]}


# ----------------------------------------------------------------- revenue share


@shares.get("/rules", summary="The revenue-share rules in force (null before any are set)")
def show_rules(caller: Caller, services: Services) -> dict[str, Any]:
    rules = revenue_share.current_rules(services.control)
    return {"rules": None if rules is None else {**plain(rules), "providers_bp": rules.providers_bp}}


@shares.post("/rules", status_code=201, summary="Set the revenue-share rules (收益分配)")
def set_rules(body: Rules, caller: Caller, services: Services) -> dict[str, Any]:
    rules = revenue_share.set_rules(services.control, caller, **body.model_dump())
    return {**plain(rules), "providers_bp": rules.providers_bp}


@shares.post("", status_code=201, summary="Issue a revenue-share report for a period")
def issue_report(body: ReportRequest, caller: Caller, services: Services) -> dict[str, Any]:
    """Net income per operator split between the authority, the operator and the providers
    by data contribution, in whole fen that add up exactly; recorded with its SHA-256."""
    report = revenue_share.issue(
        services.control, caller, period=body.period, operator_id=body.operator_id, costs=body.costs
    )
    return plain(report)


@shares.get("", summary="Revenue-share reports (without their sections)")
def list_reports(caller: Caller, services: Services) -> list[dict[str, Any]]:
    return [_summary(r) for r in revenue_share.list_reports(services.control, caller)]


@shares.get("/{report_id}", summary="One revenue-share report")
def show_report(report_id: str, caller: Caller, services: Services) -> dict[str, Any]:
    return plain(revenue_share.get_report(services.control, caller, report_id))
