"""Charges (公共数据运营服务费): what a job earns its operator, decided before the job runs.

A job belongs to the product its scenario holds for the job's form
(:func:`gateway.control.products.product_for`). A public-welfare product charges nothing;
an industry product charges its price per unit — per call, or per ε the job is set to
spend — rounded half up to the fen. :func:`price_job` runs inside the transaction that
queues the job, so the check and the charge are one step for every writer:

- a suspended product refuses the job (``G-PRODUCT``);
- a price now above the product's cap refuses it (``G-CAP``);
- a charge that would take the authorization's total for the accounting year above its
  maximum permitted revenue, or any charge in a year without one, refuses it (``G-REVENUE``).

A refused job never runs and nothing is charged. A charge whose job later ends without
delivering anything is void (:data:`gateway.control.pricing.VOID_STATUSES`) and stops
counting against the year.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy import Connection, insert, select

from gateway.control import billing_schema as tables
from gateway.control.accounting import accounting_year, digest
from gateway.control.authorizations import Category
from gateway.control.db import ControlPlane
from gateway.control.pricing import charged_in_year, limit_of
from gateway.control.products import Product, effective_cap, product_for
from gateway.control.scenarios import Scenario
from gateway.control.schema import new_id


@dataclass(frozen=True)
class Charge:
    """One job's charge under its product; ``quantity`` is an exact decimal in text."""

    id: str
    job_id: str
    operator_id: str
    authorization_id: str
    scenario_id: str
    product_id: str
    unit: str
    quantity: str
    unit_price_fen: int
    amount_fen: int
    year: int
    charged_at: datetime
    sha256: str

    def document(self) -> dict[str, Any]:
        """The charge as plain JSON values, without its own hash."""
        data = asdict(self)
        del data["sha256"]
        return {**data, "charged_at": self.charged_at.isoformat()}


@dataclass(frozen=True)
class Refusal:
    """Why a job may not be charged, and so may not run: a rule and an actionable reason."""

    rule: str
    reason: str
    product_id: str
    amount_fen: int


def price_job(
    conn: Connection, scenario: Scenario, kind: str, epsilon: float | None, job_id: str, now: datetime
) -> Charge | Refusal | None:
    """The charge of a job about to be queued, or why it is refused; None when the job belongs
    to no product. Call inside the write transaction that inserts the job."""
    product = product_for(conn, scenario.id, kind)
    if product is None:
        return None
    if product.status == "suspended":
        reason = (
            f"product {product.code} ({product.name}) is suspended by the authority: no job of it may run"
        )
        return Refusal("G-PRODUCT", reason, product.id, 0)
    quantity = Decimal(1) if product.unit == "call" else Decimal(repr(float(epsilon or 0.0)))
    price = product.price_fen if product.category is Category.INDUSTRY else 0
    amount = int((price * quantity).to_integral_value(ROUND_HALF_UP))
    if price:
        cap = effective_cap(conn, product)
        if cap is None or price > cap:
            reason = (
                f"product {product.code}'s price of {price} fen per {product.unit} is above its cap of "
                f"{cap} fen: the operator must lower the price before the product is charged again"
            )
            return Refusal("G-CAP", reason, product.id, amount)
    year = accounting_year(now)
    if amount:
        refusal = _over_limit(conn, product, year, amount)
        if refusal is not None:
            return refusal
    charge = Charge(
        new_id("chg"), job_id, product.operator_id, product.authorization_id, product.scenario_id,
        product.id, product.unit, f"{quantity.normalize():f}", price, amount, year, now, "",
    )  # fmt: skip
    return replace(charge, sha256=digest(charge.document()))


def record(cp: ControlPlane, conn: Connection, actor: str, charge: Charge) -> None:
    """Store a charge priced by :func:`price_job` and record ``charge.made`` in the ledger."""
    conn.execute(insert(tables.charges).values(**asdict(charge)))
    total = charged_in_year(conn, charge.authorization_id, charge.year)
    details = {**charge.document(), "year_total_fen": total, "sha256": charge.sha256}
    cp.ledger.append(actor, "charge.made", charge.id, details)


def refused(cp: ControlPlane, actor: str, job_id: str, refusal: Refusal) -> None:
    """Record ``charge.refused`` for a job its charge kept from running."""
    details = asdict(refusal)
    cp.ledger.append(actor, "charge.refused", job_id, {**details, "sha256": digest(details)})


def charge_of(conn: Connection, job_id: str) -> Charge | None:
    """The charge of a job, if it was charged."""
    row = conn.execute(select(tables.charges).where(tables.charges.c.job_id == job_id)).mappings().first()
    return None if row is None else Charge(**row)


def _over_limit(conn: Connection, product: Product, year: int, amount: int) -> Refusal | None:
    limit = limit_of(conn, product.authorization_id, year, lock=True)
    if limit is None:
        reason = (
            f"authorization {product.authorization_id} has no maximum permitted revenue set for {year}: "
            "the authority sets one before anything is charged"
        )
        return Refusal("G-REVENUE", reason, product.id, amount)
    charged = charged_in_year(conn, product.authorization_id, year)
    if charged + amount > limit:
        reason = (
            f"a charge of {amount} fen would take authorization {product.authorization_id}'s {year} "
            f"total to {charged + amount} fen, above its maximum permitted revenue of {limit} fen "
            f"({max(0, limit - charged)} fen remain)"
        )
        return Refusal("G-REVENUE", reason, product.id, amount)
    return None
