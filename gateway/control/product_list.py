"""The public products and services list (数据产品和服务清单): every approved product of a
running scenario with its registration code, operator, scenario, form, category, price and
cap — what the operator must publish (明码标价) — and nothing internal: no ids, users or
decision reasons. Anyone may read it, without a token."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, RowMapping, select

from gateway.control import billing_schema as tables
from gateway.control.db import ControlPlane
from gateway.control.products import effective_cap, from_row
from gateway.control.schema import organisations, scenarios


@dataclass(frozen=True)
class PublicProduct:
    """A line of the public list: what anyone may know of an approved product."""

    code: str
    name: str
    operator: str
    scenario: str
    form: str
    category: str
    unit: str
    price_fen: int
    cap_fen: int | None
    description: str
    usage_scope: str
    approved_at: datetime


def public_list(cp: ControlPlane) -> list[PublicProduct]:
    """The approved products by registration code, each with its price and the cap it is held
    to; a product whose scenario has closed or ended cannot be delivered and is left out."""
    query = (
        select(tables.products, organisations.c.name.label("operator"), scenarios.c.name.label("scenario"))
        .join(organisations, organisations.c.id == tables.products.c.operator_id)
        .join(scenarios, scenarios.c.id == tables.products.c.scenario_id)
        .where(
            tables.products.c.status == "approved",
            scenarios.c.status == "approved",
            scenarios.c.ends_at > cp.now(),
        )
        .order_by(tables.products.c.code)
    )
    with cp.transaction(write=False) as conn:
        return [_line(conn, row) for row in conn.execute(query).mappings()]


def _line(conn: Connection, row: RowMapping) -> PublicProduct:
    product = from_row(row)
    return PublicProduct(
        str(product.code), product.name, row["operator"], row["scenario"], product.form,
        str(product.category), product.unit, product.price_fen, effective_cap(conn, product),
        product.description, product.usage_scope, product.decided_at or product.created_at,
    )  # fmt: skip
