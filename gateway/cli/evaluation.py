"""``veilbox evaluation report|record|list``: the annual evaluation (年度评估) of operators."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from gateway.cli.client import Client, command
from gateway.cli.control import Id, Reason

evaluation_app = typer.Typer(no_args_is_help=True, help="Annual evaluation (年度评估) of operators.")
Year = Annotated[int, typer.Option(help="The calendar year evaluated (Beijing time).")]


@command(evaluation_app, "report")
def evaluation_report(api: Client, operator_id: Id, year: Year) -> Any:
    """An operator's report for a year: usage, products, revenue, incidents, feedback, budgets."""
    return api.request("GET", "/v1/evaluations/report", params={"operator_id": operator_id, "year": year})


@command(evaluation_app, "record")
def evaluation_record(
    api: Client,
    operator_id: Id,
    year: Year,
    outcome: Annotated[str, typer.Option(help="pass, rectify (30 days) or fail (exit).")],
    reason: Reason,
) -> Any:
    """Record the authority's outcome; a fail or a second rectify ends the operator's authorizations."""
    body = {"operator_id": operator_id, "year": year, "outcome": outcome, "reason": reason}
    return api.request("POST", "/v1/evaluations", json=body)


@command(
    evaluation_app, "list", columns=("operator_id", "year", "round", "outcome", "rectify_due", "overdue_at")
)
def evaluation_list(api: Client) -> Any:
    """Evaluation outcomes you may see."""
    return api.request("GET", "/v1/evaluations")
