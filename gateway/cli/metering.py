"""``veilbox meter …``, ``veilbox statement …`` and ``veilbox revenue-share …``: what each job
consumed and was charged, the books per operator and period, and the split of net income
(收益分配), through the API. Amounts are shown in yuan."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

import typer
from rich.console import Console

from gateway.cli.client import Client, ClientError, command, given, table
from gateway.cli.products import fen

meter_app = typer.Typer(no_args_is_help=True, help="Meters (可计量): what each job read, spent and released.")
statement_app = typer.Typer(no_args_is_help=True, help="Statements: every charge of an operator in a period.")
revenue_app = typer.Typer(
    no_args_is_help=True, help="Revenue sharing (收益分配) between authority, operator, providers."
)

Period = Annotated[str, typer.Option(help="2030, 2030-Q1, 2030-03 or 2030-03-01..2030-03-15 (UTC+8).")]
METER_COLUMNS = ("job_id", "kind", "rows_scanned", "cpu_ms", "bytes_released", "epsilon", "runs")
ISSUED_COLUMNS = ("id", "operator_id", "period", "complete", "issued_at", "sha256")


def yuan(amount: int | None) -> str:
    """Fen as yuan with two decimals, in integers (no float rounding); blank for no amount."""
    if amount is None:
        return ""
    sign = "-" if amount < 0 else ""
    return f"{sign}{abs(amount) // 100}.{abs(amount) % 100:02d}"


def percent(option: str, text: str) -> int:
    """A share typed in percent (at most two decimals), in basis points."""
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise ClientError(f"{option} {text!r}: expected a percentage such as 20 or 12.5") from None
    points = value * 100
    if not value.is_finite() or not 0 <= value <= 100 or points != points.to_integral_value():
        raise ClientError(f"{option} {text!r}: expected 0 to 100 with at most two decimals")
    return int(points)


@command(meter_app, "show")
def meter_show(
    api: Client, job_id: Annotated[str, typer.Argument(help="The job's id.", show_default=False)]
) -> Any:
    """A job's meter — rows scanned per dataset and provider, CPU, bytes released, ε, δ — and its charge."""
    return api.request("GET", f"/v1/meters/{job_id}")


@command(meter_app, "list", columns=METER_COLUMNS)
def meter_list(
    api: Client,
    scenario: Annotated[str | None, typer.Option(help="Only this scenario's jobs.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="At most this many, newest first.")] = 100,
) -> Any:
    """Meters of the jobs you may see."""
    return api.request("GET", "/v1/meters", params={"scenario_id": scenario, "limit": limit})


def show_statement(statement: dict[str, Any]) -> None:
    """A statement as a person reads it: who, when, every charge, the totals, the yearly room."""
    console, document = Console(highlight=False), statement["document"]
    period = document["period"]
    state = "complete" if document["complete"] else f"not complete (as of {document['as_of']})"
    console.print(
        f"Statement {statement['id']} of {document['operator']['name']} ({document['operator']['id']})"
    )
    console.print(
        f"Period {period['label']}: {period['first']} to {period['last']} ({period['timezone']}), {state}"
    )
    rows = [
        {**line, "unit_price": yuan(line["unit_price_fen"]), "amount": yuan(line["amount_fen"])}
        for line in document["charges"]
    ]
    columns = ("charged_at", "product_code", "job_id", "unit", "quantity", "unit_price", "amount", "status")
    console.print(table(rows, columns, title="Charges (yuan)"))
    totals = document["totals"]
    console.print(
        f"Charged: {yuan(totals['charged_fen'])} yuan in {totals['charges']} charges; "
        f"void: {yuan(totals['void_fen'])} yuan in {totals['void_charges']}"
    )
    yearly = [
        {
            **y,
            "max": yuan(y["max_fen"]),
            "charged": yuan(y["charged_fen"]),
            "remaining": yuan(y["remaining_fen"]),
        }
        for y in document["yearly"]
    ]
    console.print(
        table(yearly, ("year", "authorization_id", "max", "charged", "remaining"), title="Yearly maximum")
    )
    console.print(f"SHA-256 (recorded in the ledger): {statement['sha256']}")


@command(statement_app, "issue", render=show_statement)
def statement_issue(
    api: Client,
    operator: Annotated[str, typer.Argument(help="The operator organisation's id.", show_default=False)],
    period: Period,
) -> Any:
    """Issue an operator's statement for a period (the authority, or the operator itself)."""
    return api.request("POST", "/v1/statements", json={"operator_id": operator, "period": period})


@command(statement_app, "list", columns=ISSUED_COLUMNS)
def statement_list(
    api: Client, operator: Annotated[str | None, typer.Option(help="Only this operator.")] = None
) -> Any:
    """Statements you may see."""
    return api.request("GET", "/v1/statements", params={"operator_id": operator})


@command(statement_app, "show", render=show_statement)
def statement_show(api: Client, statement_id: Annotated[str, typer.Argument(show_default=False)]) -> Any:
    """One statement."""
    return api.request("GET", f"/v1/statements/{statement_id}")


def show_report(report: dict[str, Any]) -> None:
    """A revenue-share report: each operator's net income and who gets what of it."""
    console, document = Console(highlight=False), report["document"]
    rules = document["rules"]
    split = ", ".join(
        f"{party} {rules[f'{party}_bp'] / 100:g}%" for party in ("authority", "operator", "providers")
    )
    label, weighting = document["period"]["label"], rules["weighting"]
    console.print(f"Revenue share {report['id']} for {label}: {split} (providers by {weighting})")
    for section in document["sections"]:
        console.print(
            f"{section['operator_name']}: gross {yuan(section['gross_fen'])}, costs compensated "
            f"{yuan(section['compensated_fen'])}, net {yuan(section['net_fen'])} yuan"
        )
        shares = [{**s, "yuan": yuan(s["fen"])} for s in section["shares"]]
        console.print(table(shares, ("party", "id", "yuan")))
    console.print(f"Net income: {yuan(document['totals']['net_fen'])} yuan. SHA-256: {report['sha256']}")


@command(revenue_app, "rules")
def revenue_rules(api: Client) -> Any:
    """The revenue-share rules in force."""
    return api.request("GET", "/v1/revenue-share/rules")


@command(revenue_app, "set-rules")
def revenue_set_rules(
    api: Client,
    authority_share: Annotated[str, typer.Option(help="The authority's share of net income, in percent.")],
    operator_share: Annotated[
        str, typer.Option(help="The operator's share, in percent; providers get the rest.")
    ],
    reason: Annotated[str, typer.Option(help="Why; recorded in the ledger.")],
    weighting: Annotated[str, typer.Option(help="rows_scanned or datasets_touched.")] = "rows_scanned",
) -> Any:
    """Set the revenue-share rules (authority)."""
    body = {
        "authority_bp": percent("--authority-share", authority_share),
        "operator_bp": percent("--operator-share", operator_share),
        "weighting": weighting,
        "reason": reason,
    }
    return api.request("POST", "/v1/revenue-share/rules", json=body)


@command(revenue_app, "issue", render=show_report)
def revenue_issue(
    api: Client,
    period: Period,
    operator: Annotated[str | None, typer.Option(help="Only this operator; default: every one.")] = None,
    cost: Annotated[
        list[str] | None, typer.Option(help="OPERATOR=YUAN, costs recognised for compensation; repeatable.")
    ] = None,
) -> Any:
    """Issue the revenue-share report of a period (authority)."""
    costs = {}
    for item in cost or []:
        operator_id, _, amount = item.partition("=")
        if not operator_id or not amount:
            raise ClientError(f"--cost {item!r}: expected OPERATOR=YUAN")
        costs[operator_id] = fen("--cost", amount)
    return api.request(
        "POST", "/v1/revenue-share", json=given(period=period, operator_id=operator, costs=costs)
    )


@command(revenue_app, "list", columns=("id", "operator_id", "period", "complete", "issued_at", "sha256"))
def revenue_list(api: Client) -> Any:
    """Revenue-share reports."""
    return api.request("GET", "/v1/revenue-share")


@command(revenue_app, "show", render=show_report)
def revenue_show(api: Client, report_id: Annotated[str, typer.Argument(show_default=False)]) -> Any:
    """One revenue-share report."""
    return api.request("GET", f"/v1/revenue-share/{report_id}")
