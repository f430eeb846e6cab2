"""``veilbox product …``, ``veilbox cap …`` and ``veilbox max-revenue …``: the products and
services list (数据产品和服务清单) and the authority's price guidance, through the API.

Amounts are typed in yuan (``--price 200``, ``--price 12.50``) and sent to the API in fen."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

import typer

from gateway.cli.client import Client, ClientError, command, given

product_app = typer.Typer(
    no_args_is_help=True, help="Products and services (产品登记): register, decide, price, list."
)
cap_app = typer.Typer(no_args_is_help=True, help="Price caps (上限收费标准) per form of product and unit.")
max_revenue_app = typer.Typer(no_args_is_help=True, help="Maximum permitted revenue (最高准许收入) per year.")

Id = Annotated[str, typer.Argument(help="The product's id.", show_default=False)]
Reason = Annotated[str, typer.Option(help="Why; recorded in the ledger.")]
Form = Annotated[str, typer.Option(help="aggregate, model, verification, psi or extract.")]
Unit = Annotated[str, typer.Option(help="What a price is for: call (each job) or epsilon (each ε spent).")]
PRODUCT_COLUMNS = ("id", "code", "name", "form", "category", "unit", "price_fen", "cap_fen", "status")
PUBLIC_COLUMNS = ("code", "name", "operator", "scenario", "form", "category", "unit", "price_fen", "cap_fen")


def fen(option: str, yuan: str) -> int:
    """An amount typed in yuan (at most two decimals), in fen."""
    try:
        amount = Decimal(yuan)
    except InvalidOperation:
        raise ClientError(f"{option} {yuan!r}: expected an amount in yuan such as 200 or 12.50") from None
    cents = amount * 100
    if not amount.is_finite() or amount < 0 or cents != cents.to_integral_value():
        raise ClientError(
            f"{option} {yuan!r}: expected a non-negative amount in yuan with at most two decimals"
        )
    return int(cents)


@command(product_app, "register")
def register(
    api: Client,
    scenario: Annotated[str, typer.Option(help="The approved scenario the product comes from.")],
    name: Annotated[str, typer.Option(help="The product's name.")],
    description: Annotated[str, typer.Option(help="What it delivers (产品服务内容).")],
    usage_scope: Annotated[str, typer.Option(help="Who may use it, for what (使用范围).")],
    form: Form,
    category: Annotated[str, typer.Option(help="public_welfare (free) or industry (charged).")],
    unit: Unit = "call",
    price: Annotated[str, typer.Option(help="The price per unit in yuan; never above the cap.")] = "0",
) -> Any:
    """Register a product of one of your approved scenarios (operators)."""
    body = {
        "scenario_id": scenario, "name": name, "description": description, "usage_scope": usage_scope,
        "form": form, "category": category, "unit": unit, "price_fen": fen("--price", price),
    }  # fmt: skip
    return api.request("POST", "/v1/products", json=body)


@command(product_app, "list", columns=PRODUCT_COLUMNS)
def product_list(
    api: Client, status: Annotated[str | None, typer.Option(help="Only products in this state.")] = None
) -> Any:
    """Products you may see."""
    return api.request("GET", "/v1/products", params={"status": status})


@command(product_app, "public", columns=PUBLIC_COLUMNS)
def product_public(api: Client) -> Any:
    """The public list of approved products, prices and caps (needs no token)."""
    return api.request("GET", "/v1/products/public")


@command(product_app, "show")
def product_show(api: Client, product_id: Id) -> Any:
    """One product."""
    return api.request("GET", f"/v1/products/{product_id}")


@command(product_app, "approve")
def product_approve(
    api: Client,
    product_id: Id,
    reason: Reason,
    cap: Annotated[str | None, typer.Option(help="A lower cap for this product, in yuan.")] = None,
) -> Any:
    """Approve a pending product and issue its registration code (authority)."""
    body = given(decision="approve", reason=reason, cap_fen=None if cap is None else fen("--cap", cap))
    return api.request("POST", f"/v1/products/{product_id}/decision", json=body)


@command(product_app, "reject")
def product_reject(api: Client, product_id: Id, reason: Reason) -> Any:
    """Reject a pending product (authority)."""
    body = {"decision": "reject", "reason": reason}
    return api.request("POST", f"/v1/products/{product_id}/decision", json=body)


@command(product_app, "price")
def product_price(
    api: Client,
    product_id: Id,
    price: Annotated[str, typer.Option(help="The new price per unit in yuan.")],
    reason: Reason,
) -> Any:
    """Change one of your products' price; never above its cap (operators)."""
    body = {"price_fen": fen("--price", price), "reason": reason}
    return api.request("POST", f"/v1/products/{product_id}/price", json=body)


@command(product_app, "suspend")
def product_suspend(api: Client, product_id: Id, reason: Reason) -> Any:
    """Suspend an approved product: its jobs are refused until it is resumed (authority)."""
    return _status(api, product_id, "suspended", reason)


@command(product_app, "resume")
def product_resume(api: Client, product_id: Id, reason: Reason) -> Any:
    """Resume a suspended product (authority)."""
    return _status(api, product_id, "approved", reason)


@command(product_app, "withdraw")
def product_withdraw(api: Client, product_id: Id, reason: Reason) -> Any:
    """Withdraw a product from the list (its operator, or the authority)."""
    return _status(api, product_id, "withdrawn", reason)


def _status(api: Client, product_id: str, status: str, reason: str) -> Any:
    return api.request("POST", f"/v1/products/{product_id}/status", json={"status": status, "reason": reason})


@command(cap_app, "set")
def cap_set(
    api: Client,
    form: Form,
    unit: Unit,
    cap: Annotated[str, typer.Option(help="The cap per unit, in yuan.")],
    reason: Reason,
) -> Any:
    """Set the cap on the price of a form of product per unit (authority)."""
    body = {"form": form, "unit": unit, "cap_fen": fen("--cap", cap), "reason": reason}
    return api.request("POST", "/v1/price-caps", json=body)


@command(cap_app, "list", columns=("form", "unit", "cap_fen", "set_at", "reason"))
def cap_list(api: Client) -> Any:
    """The caps in force."""
    return api.request("GET", "/v1/price-caps")


@command(max_revenue_app, "set")
def max_revenue_set(
    api: Client,
    authorization_id: Annotated[str, typer.Argument(help="The industry authorization.", show_default=False)],
    year: Annotated[int, typer.Option(help="The calendar year it applies to.")],
    amount: Annotated[str, typer.Option(help="The maximum, in yuan.")],
    reason: Reason,
) -> Any:
    """Set an authorization's maximum permitted revenue for a year (authority)."""
    body = {
        "authorization_id": authorization_id,
        "year": year,
        "max_fen": fen("--amount", amount),
        "reason": reason,
    }
    return api.request("POST", "/v1/revenue-limits", json=body)


LIMIT_COLUMNS = ("authorization_id", "operator_id", "year", "max_fen", "charged_fen", "remaining_fen")


@command(max_revenue_app, "list", columns=LIMIT_COLUMNS)
def max_revenue_list(
    api: Client, year: Annotated[int | None, typer.Option(help="Only this year.")] = None
) -> Any:
    """Maximum permitted revenues and what is charged against them."""
    return api.request("GET", "/v1/revenue-limits", params={"year": year})
