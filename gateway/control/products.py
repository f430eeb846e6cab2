"""The products and services list (数据产品和服务清单) and product registration (产品登记).

An operator registers each product it offers under one of its approved scenarios: its
name, content and scope of use, its form (which the scenario must produce), its category —
``public_welfare`` (公共治理、公益事业: free, for everyone and the providers first of all) or
``industry`` (产业发展、行业发展: charged) — and, for industry products, its price per unit.
The price may never be above the product's cap: the authority's cap for that form and unit
(:mod:`gateway.control.pricing`), lowered further for this product when the authority
approves it. The authority approves (issuing the registration code ``VBX-P-<year>-<serial>``)
or rejects with a reason; it may suspend an approved product and resume it; the operator
may withdraw its own. Only approved products are on the public list
(:mod:`gateway.control.product_list`).

A scenario holds at most one product per form at a time, so each job belongs to exactly
one product or none (:func:`product_for`): jobs under a suspended product are refused.

States::

    pending ─▶ approved ⇄ suspended
       │          │          │
       ├─▶ rejected          │
       └──────────┴──────────┴─▶ withdrawn
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import ColumnElement, Connection, RowMapping, func, insert, select, update

from gateway.control import billing_schema as tables
from gateway.control.accounting import accounting_year, digest, fen
from gateway.control.authorizations import Category, visible_authorization
from gateway.control.db import ControlPlane
from gateway.control.identity import SEES_ALL, Principal, Role, invisible, require_role, tenant_filter
from gateway.control.pricing import check_form, check_unit, current_cap
from gateway.control.scenarios import visible_scenario
from gateway.control.schema import TEXT_CHARS, choice, new_id, text
from gateway.errors import Conflict, Forbidden, InvalidRequest

Status = Literal["pending", "approved", "rejected", "suspended", "withdrawn"]
HELD: tuple[Status, ...] = ("pending", "approved", "suspended")
"""States in which a product holds its scenario's form and its name."""
OUTPUT_OF_FORM = {
    "aggregate": "aggregate",
    "model": "model",
    "verification": "verification",
    "psi": "psi",
    "extract": "record",
}
"""The scenario output form (:data:`gateway.control.scenarios.OUTPUT_FORMS`) each product form needs."""
FORM_OF_KIND = {
    "sql": "aggregate",
    "model": "model",
    "verification": "verification",
    "psi": "psi",
    "record": "extract",
}
"""The product form a job of each kind delivers; a consent delivers none."""
CODE_PREFIX = "VBX-P"


@dataclass(frozen=True)
class Product:
    """A registered product; ``code`` is issued on approval, ``cap_fen`` is None when it is free."""

    id: str
    operator_id: str
    scenario_id: str
    authorization_id: str
    name: str
    description: str
    usage_scope: str
    form: str
    category: Category
    unit: str
    price_fen: int
    cap_fen: int | None
    status: Status
    code: str | None
    reason: str | None
    registered_by: str
    decided_by: str | None
    created_at: datetime
    decided_at: datetime | None
    updated_at: datetime

    def document(self) -> dict[str, Any]:
        """What the product is, as plain JSON values: what the ledger's hashes are taken of."""
        return {
            "id": self.id, "operator_id": self.operator_id, "scenario_id": self.scenario_id,
            "name": self.name, "description": self.description, "usage_scope": self.usage_scope,
            "form": self.form, "category": str(self.category), "unit": self.unit,
            "price_fen": self.price_fen, "cap_fen": self.cap_fen, "status": self.status, "code": self.code,
        }  # fmt: skip


def register(
    cp: ControlPlane,
    actor: Principal,
    *,
    scenario_id: str,
    name: str,
    description: str,
    usage_scope: str,
    form: str,
    category: str,
    unit: str = "call",
    price_fen: int = 0,
) -> Product:
    """Register a product under one of the tenant's approved scenarios (operator users).

    Refused with InvalidRequest ``G-INPUT`` for a form the scenario does not produce,
    ``G-CATEGORY`` for an industry product under a public-welfare authorization or a
    public-welfare product with a price, ``G-CAP`` for a price above the cap (or no cap set
    yet); Forbidden ``G-SCENARIO`` if the scenario is not approved and running; Conflict
    ``G-EXISTS`` if the scenario already holds a product of this form or the tenant one of
    this name. Recorded as ``product.registered``.
    """
    require_role(actor, {Role.OPERATOR}, "registering a product")
    name, form = text("name", name), check_form(form)
    description = text("description", description, limit=TEXT_CHARS)
    usage_scope = text("usage_scope", usage_scope, limit=TEXT_CHARS)
    kind, unit, price = (
        choice(Category, "category", category),
        check_unit(form, unit),
        fen("price_fen", price_fen),
    )
    with cp.transaction() as conn:
        now = cp.now()
        scenario = visible_scenario(conn, actor, scenario_id)
        if scenario.status != "approved" or scenario.ends_at is None or scenario.ends_at <= now:
            raise Forbidden(
                "G-SCENARIO", f"scenario {scenario_id} is not approved and running: products need one that is"
            )
        if OUTPUT_OF_FORM[form] not in scenario.output_forms:
            raise InvalidRequest(
                "G-INPUT",
                f"scenario {scenario_id} produces {', '.join(scenario.output_forms)}, not {form} products",
            )
        authorization = visible_authorization(conn, actor, scenario.authorization_id)
        cap = _registration_cap(conn, kind, authorization.category, form, unit, price)
        _check_free(conn, scenario.id, scenario.operator_id, form, name)
        product = Product(
            new_id("prd"), scenario.operator_id, scenario.id, authorization.id, name, description,
            usage_scope, form, kind, unit, price, cap, "pending", None, None, actor.user_id, None, now,
            None, now,
        )  # fmt: skip
        conn.execute(insert(tables.products).values(**_fields(product)))
        _record(cp, actor, "product.registered", product, {})
    return product


def decide(
    cp: ControlPlane,
    actor: Principal,
    product_id: str,
    *,
    approve: bool,
    reason: str,
    cap_fen: int | None = None,
) -> Product:
    """Approve a pending product, issuing its registration code, or reject it (authority only).

    ``cap_fen`` lowers an industry product's own cap on approval; it may not be below the
    operator's price (``G-CAP``: reject the product, or let the operator lower its price).
    Recorded as ``product.approved`` (with the code) or ``product.rejected``.
    """
    require_role(actor, {Role.AUTHORITY}, "deciding on a product")
    reason = text("reason", reason, limit=TEXT_CHARS)
    with cp.transaction() as conn:
        product = _visible(conn, actor, product_id)
        if product.status != "pending":
            raise Conflict(
                "G-STATE", f"product {product_id} is {product.status}; only pending ones are decided"
            )
        now = cp.now()
        values: dict[str, Any] = {
            "reason": reason,
            "decided_by": actor.user_id,
            "decided_at": now,
            "updated_at": now,
        }
        if not approve:
            return _change(cp, conn, actor, product, "product.rejected", status="rejected", **values)
        if cap_fen is not None:
            if product.category is not Category.INDUSTRY or product.cap_fen is None:
                raise InvalidRequest("G-CATEGORY", f"product {product_id} is free: it takes no cap")
            values["cap_fen"] = min(fen("cap_fen", cap_fen), product.cap_fen)
        cap = effective_cap(conn, replace(product, **values))
        if cap is not None and cap < product.price_fen:
            raise InvalidRequest(
                "G-CAP",
                f"product {product_id}'s price of {product.price_fen} fen is above its cap of {cap} fen: "
                "reject it, or approve it once the operator has lowered the price",
            )
        values["code"] = _next_code(conn, accounting_year(now))
        return _change(cp, conn, actor, product, "product.approved", status="approved", **values)


def change_price(
    cp: ControlPlane, actor: Principal, product_id: str, *, price_fen: int, reason: str
) -> Product:
    """Change the price of one of the tenant's industry products (operator users).

    The new price is held to the lower of the product's cap and the cap in force for its
    form and unit (``G-CAP``). Recorded as ``product.price_changed``.
    """
    require_role(actor, {Role.OPERATOR}, "changing a product's price")
    reason, price = text("reason", reason, limit=TEXT_CHARS), fen("price_fen", price_fen)
    with cp.transaction() as conn:
        product = _visible(conn, actor, product_id)
        if product.status not in HELD:
            raise Conflict("G-STATE", f"product {product_id} is {product.status}: its price is final")
        if product.category is not Category.INDUSTRY:
            raise InvalidRequest("G-CATEGORY", f"product {product_id} is public welfare: it stays free")
        cap = effective_cap(conn, product)
        if cap is None or price > cap:
            raise InvalidRequest(
                "G-CAP",
                f"a price of {price} fen is above product {product_id}'s cap of {cap} fen per {product.unit}",
            )
        extra = {"previous_fen": product.price_fen, "reason": reason}
        return _change(
            cp, conn, actor, product, "product.price_changed", extra, price_fen=price, updated_at=cp.now()
        )


_MOVES: dict[Status, tuple[tuple[Status, ...], frozenset[Role], str]] = {
    "suspended": (("approved",), frozenset({Role.AUTHORITY}), "product.suspended"),
    "approved": (("suspended",), frozenset({Role.AUTHORITY}), "product.resumed"),
    "withdrawn": (HELD, frozenset({Role.AUTHORITY, Role.OPERATOR}), "product.withdrawn"),
}


def set_status(cp: ControlPlane, actor: Principal, product_id: str, *, status: str, reason: str) -> Product:
    """Suspend an approved product or resume a suspended one (authority), or withdraw one
    (its operator, or the authority; only the authority withdraws a suspended product, so
    that withdrawing is no way out of a suspension). Recorded as ``product.suspended``,
    ``product.resumed`` or ``product.withdrawn``."""
    if status not in _MOVES:
        raise InvalidRequest("G-INPUT", f"status must be one of {', '.join(_MOVES)}, not {status!r:.40}")
    target: Status = status
    sources, roles, action = _MOVES[target]
    require_role(actor, roles, f"moving a product to {target}")
    reason = text("reason", reason, limit=TEXT_CHARS)
    with cp.transaction() as conn:
        product = _visible(conn, actor, product_id)
        if actor.role is Role.OPERATOR and product.status == "suspended":
            raise Forbidden(
                "G-ROLE", f"product {product_id} is suspended: only the authority may withdraw it"
            )
        if product.status not in sources:
            raise Conflict("G-STATE", f"product {product_id} is {product.status}: it cannot become {target}")
        return _change(
            cp,
            conn,
            actor,
            product,
            action,
            {"reason": reason},
            status=target,
            reason=reason,
            updated_at=cp.now(),
        )


def get_product(cp: ControlPlane, actor: Principal, product_id: str) -> Product:
    """One product the actor may see; NotFound ``G-TENANT`` otherwise."""
    with cp.transaction(write=False) as conn:
        return _visible(conn, actor, product_id)


def list_products(cp: ControlPlane, actor: Principal, *, status: str | None = None) -> list[Product]:
    """Every product for the authority and auditors; the tenant's own for its users."""
    query = select(tables.products).where(_readable(actor))
    if status is not None:
        query = query.where(tables.products.c.status == status)
    with cp.transaction(write=False) as conn:
        rows = conn.execute(query.order_by(tables.products.c.created_at, tables.products.c.id))
        return [from_row(row) for row in rows.mappings()]


def product_for(conn: Connection, scenario_id: str, kind: str) -> Product | None:
    """The approved or suspended product a job of ``kind`` in the scenario belongs to, if any."""
    form = FORM_OF_KIND.get(kind)
    if form is None:
        return None
    query = select(tables.products).where(
        tables.products.c.scenario_id == scenario_id,
        tables.products.c.form == form,
        tables.products.c.status.in_(("approved", "suspended")),
    )
    row = conn.execute(query).mappings().first()
    return None if row is None else from_row(row)


def effective_cap(conn: Connection, product: Product) -> int | None:
    """The cap a free product does not have, else the lower of its own and the one in force."""
    if product.category is not Category.INDUSTRY or product.cap_fen is None:
        return None
    current = current_cap(conn, product.form, product.unit)
    return product.cap_fen if current is None else min(product.cap_fen, current)


# ----------------------------------------------------------------- internals


def _registration_cap(
    conn: Connection, kind: Category, granted: Category, form: str, unit: str, price: int
) -> int | None:
    if kind is Category.PUBLIC_WELFARE:
        if price:
            raise InvalidRequest("G-CATEGORY", "public-welfare products are free: register them with price 0")
        return None
    if granted is not Category.INDUSTRY:
        raise InvalidRequest(
            "G-CATEGORY",
            "the scenario's authorization is public welfare: its products cannot be industry ones",
        )
    cap = current_cap(conn, form, unit)
    if cap is None:
        raise InvalidRequest(
            "G-CAP",
            f"no cap is set for {form} products per {unit}: the authority sets one before any is priced",
        )
    if price > cap:
        raise InvalidRequest("G-CAP", f"a price of {price} fen is above the cap of {cap} fen per {unit}")
    return cap


def _check_free(conn: Connection, scenario_id: str, operator_id: str, form: str, name: str) -> None:
    held = tables.products.c.status.in_(HELD)
    same_form = (tables.products.c.scenario_id == scenario_id, tables.products.c.form == form, held)
    taken = conn.scalar(select(tables.products.c.id).where(*same_form))
    if taken is not None:
        raise Conflict("G-EXISTS", f"scenario {scenario_id} already has {form} product {taken}")
    same_name = (tables.products.c.operator_id == operator_id, tables.products.c.name == name, held)
    if conn.scalar(select(tables.products.c.id).where(*same_name)) is not None:
        raise Conflict("G-EXISTS", f"you already have a product named {name!r}: choose another name")


def _next_code(conn: Connection, year: int) -> str:
    """The next registration code of ``year``; write transactions are serialized, and the code
    column is unique besides."""
    prefix = f"{CODE_PREFIX}-{year}-"
    issued = conn.scalar(select(func.count()).where(tables.products.c.code.like(f"{prefix}%"))) or 0
    return f"{prefix}{issued + 1:06d}"


def _readable(actor: Principal) -> ColumnElement[bool]:
    return tenant_filter(actor, tables.products.c.operator_id, readers=SEES_ALL, doing="reading products")


def _visible(conn: Connection, actor: Principal, product_id: str) -> Product:
    query = select(tables.products).where(tables.products.c.id == product_id, _readable(actor))
    row = conn.execute(query).mappings().first()
    if row is None:
        raise invisible("product", product_id)
    return from_row(row)


def _change(
    cp: ControlPlane,
    conn: Connection,
    actor: Principal,
    product: Product,
    action: str,
    extra: dict[str, Any] | None = None,
    **values: Any,
) -> Product:
    """Store a change to a product and record it in the ledger with the changed product's hash."""
    conn.execute(update(tables.products).where(tables.products.c.id == product.id).values(**values))
    changed = replace(product, **values)
    _record(cp, actor, action, changed, extra if extra is not None else {"reason": values.get("reason")})
    return changed


def _record(cp: ControlPlane, actor: Principal, action: str, product: Product, extra: dict[str, Any]) -> None:
    document = product.document()
    cp.ledger.append(actor.user_id, action, product.id, {**document, **extra, "sha256": digest(document)})


def _fields(product: Product) -> dict[str, Any]:
    return {**asdict(product), "category": str(product.category)}


def from_row(row: RowMapping) -> Product:
    """A product from its row of the products table."""
    return Product(
        **{name: row[name] for name in Product.__dataclass_fields__} | {"category": Category(row["category"])}
    )
