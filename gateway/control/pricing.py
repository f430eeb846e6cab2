"""The authority's price guidance (政府指导价): a cap for each kind of product and service
(上限收费标准) and each industry authorization's maximum permitted revenue for a calendar year
(最高准许收入).

Caps are set per product form and pricing unit; each setting is kept and the latest is in
force. An operator's price may never be above its product's cap (:mod:`gateway.control.products`),
and the charges made under an authorization in one accounting year may never add up to more
than its maximum (:mod:`gateway.control.charges`). Without a maximum set for the year no
industry charge can be made at all: the books fail closed.

A charge counts against the year unless its job ended without delivering anything
(``VOID_STATUSES``), which frees its amount again.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, RowMapping, func, insert, select, true, update

from gateway.control import billing_schema as tables
from gateway.control.accounting import accounting_year, digest, fen
from gateway.control.authorizations import Category, visible_authorization
from gateway.control.db import ControlPlane
from gateway.control.identity import Principal, Role, require_role
from gateway.control.schema import TEXT_CHARS, authorizations, jobs, new_id, text
from gateway.errors import InvalidRequest

FORMS = ("aggregate", "model", "verification", "psi", "extract")
"""What a product delivers (提供形式): an aggregate report, a model, verifications, PSI
matches, or a k-anonymous record extract."""
UNITS = ("call", "epsilon")
"""What a price is for: each job (``call``), or each whole ε the job is set to spend."""
EPSILON_FORMS = ("aggregate", "model")
"""The forms whose jobs spend ε, and so may be priced per ε."""
VOID_STATUSES = ("refused", "failed", "rejected", "returned", "closed")
"""Job states that delivered nothing: a charge of such a job is void."""
LIMIT_READERS = frozenset({Role.AUTHORITY, Role.AUDITOR})


@dataclass(frozen=True)
class PriceCap:
    """A cap the authority set on the price of one form of product per one unit."""

    id: str
    form: str
    unit: str
    cap_fen: int
    reason: str
    set_by: str
    set_at: datetime


@dataclass(frozen=True)
class RevenueLimit:
    """An authorization's maximum permitted revenue in one year, and what is charged against it."""

    authorization_id: str
    operator_id: str
    year: int
    max_fen: int
    charged_fen: int
    remaining_fen: int
    reason: str
    set_by: str
    set_at: datetime


def set_cap(
    cp: ControlPlane, actor: Principal, *, form: str, unit: str, cap_fen: int, reason: str
) -> PriceCap:
    """Set the cap on the price of products of ``form`` per ``unit`` (authority only).

    New registrations are held to it at once; a product registered earlier keeps its own
    cap too, and is held to the lower of the two. Recorded as ``price_cap.set``.
    """
    require_role(actor, {Role.AUTHORITY}, "setting a price cap")
    form, unit = check_form(form), check_unit(form, unit)
    cap = PriceCap(
        new_id("cap"), form, unit, fen("cap_fen", cap_fen), text("reason", reason, limit=TEXT_CHARS),
        actor.user_id, cp.now(),
    )  # fmt: skip
    with cp.transaction() as conn:
        previous = current_cap(conn, form, unit)
        conn.execute(insert(tables.price_caps).values(**asdict(cap)))
        details = {**_cap_json(cap), "previous_fen": previous, "sha256": digest(_cap_json(cap))}
        cp.ledger.append(actor.user_id, "price_cap.set", cap.id, details)
    return cap


def list_caps(cp: ControlPlane) -> list[PriceCap]:
    """The caps in force, by form and unit: published guidance that anyone may read."""
    with cp.transaction(write=False) as conn:
        latest = _latest_caps().subquery()
        rows = conn.execute(
            select(tables.price_caps)
            .join(latest, tables.price_caps.c.id == latest.c.id)
            .order_by(tables.price_caps.c.form, tables.price_caps.c.unit)
        )
        return [
            PriceCap(**{name: row[name] for name in PriceCap.__dataclass_fields__}) for row in rows.mappings()
        ]


def current_cap(conn: Connection, form: str, unit: str) -> int | None:
    """The cap in force for ``form`` per ``unit``, or None if none was ever set."""
    query = (
        select(tables.price_caps.c.cap_fen)
        .where(tables.price_caps.c.form == form, tables.price_caps.c.unit == unit)
        .order_by(tables.price_caps.c.seq.desc())
        .limit(1)
    )
    found: int | None = conn.scalar(query)
    return found


def set_revenue_limit(
    cp: ControlPlane, actor: Principal, *, authorization_id: str, year: int, max_fen: int, reason: str
) -> RevenueLimit:
    """Set an industry authorization's maximum permitted revenue for ``year`` (authority only).

    The year must fall in the authorization's term. A maximum may be lowered below what is
    already charged: nothing more can then be charged that year. Recorded as
    ``revenue_limit.set`` with the maximum it replaces.
    """
    require_role(actor, {Role.AUTHORITY}, "setting a maximum permitted revenue")
    reason, amount = text("reason", reason, limit=TEXT_CHARS), fen("max_fen", max_fen)
    if isinstance(year, bool) or not isinstance(year, int):
        raise InvalidRequest("G-INPUT", f"year must be a whole number, not {year!r}")
    with cp.transaction() as conn:
        authorization = visible_authorization(conn, actor, authorization_id)
        if authorization.category is not Category.INDUSTRY:
            raise InvalidRequest(
                "G-CATEGORY",
                f"authorization {authorization_id} is {authorization.category}: only industry "
                "authorizations earn revenue to limit",
            )
        first, last = accounting_year(authorization.starts_at), accounting_year(authorization.ends_at)
        if not first <= year <= last:
            raise InvalidRequest(
                "G-INPUT",
                f"year {year} is outside authorization {authorization_id}'s term, {first} to {last}",
            )
        key = (
            tables.revenue_limits.c.authorization_id == authorization.id,
            tables.revenue_limits.c.year == year,
        )
        previous = conn.scalar(select(tables.revenue_limits.c.max_fen).where(*key))
        values = {"max_fen": amount, "reason": reason, "set_by": actor.user_id, "set_at": cp.now()}
        if previous is None:
            conn.execute(
                insert(tables.revenue_limits).values(authorization_id=authorization.id, year=year, **values)
            )
        else:
            conn.execute(update(tables.revenue_limits).where(*key).values(**values))
        limit = _limits(conn, tables.revenue_limits.c.authorization_id == authorization.id, year)[0]
        document = {"authorization_id": authorization.id, "year": year, "max_fen": amount, "reason": reason}
        details = {
            **document,
            "previous_fen": previous,
            "charged_fen": limit.charged_fen,
            "sha256": digest(document),
        }
        cp.ledger.append(actor.user_id, "revenue_limit.set", authorization.id, details)
    return limit


def list_revenue_limits(cp: ControlPlane, actor: Principal, *, year: int | None = None) -> list[RevenueLimit]:
    """The maximum permitted revenues the actor may see, with what each year has charged:
    every one for the authority and auditors, its own tenant's for an operator user."""
    require_role(actor, {*LIMIT_READERS, Role.OPERATOR}, "reading maximum permitted revenues")
    mine = true() if actor.role in LIMIT_READERS else authorizations.c.operator_id == actor.tenant
    with cp.transaction(write=False) as conn:
        return _limits(conn, mine, year)


def limit_of(conn: Connection, authorization_id: str, year: int, *, lock: bool = False) -> int | None:
    """The maximum permitted revenue of an authorization in ``year``, or None if none is set.

    ``lock`` takes the row for the rest of the transaction (PostgreSQL; SQLite's write
    transactions are serialized already), so two charges cannot both read the same room.
    """
    query = select(tables.revenue_limits.c.max_fen).where(
        tables.revenue_limits.c.authorization_id == authorization_id, tables.revenue_limits.c.year == year
    )
    found: int | None = conn.scalar(query.with_for_update() if lock else query)
    return found


def charged_in_year(conn: Connection, authorization_id: str, year: int) -> int:
    """What is charged under an authorization in an accounting year, void charges left out."""
    query = select(func.coalesce(func.sum(tables.charges.c.amount_fen), 0)).where(
        tables.charges.c.authorization_id == authorization_id, tables.charges.c.year == year, live()
    )
    return int(conn.scalar(query) or 0)


def live() -> ColumnElement[bool]:
    """Charges whose job has not ended undelivered."""
    return tables.charges.c.job_id.in_(select(jobs.c.id).where(jobs.c.status.not_in(VOID_STATUSES)))


def check_form(value: object) -> str:
    """``value`` if it is one of ``FORMS``."""
    if value not in FORMS:
        raise InvalidRequest("G-INPUT", f"form must be one of {', '.join(FORMS)}, not {value!r:.40}")
    return str(value)


def check_unit(form: str, value: object) -> str:
    """``value`` if it is one of ``UNITS`` and fits ``form``: per ε only where jobs spend ε."""
    if value not in UNITS:
        raise InvalidRequest("G-INPUT", f"unit must be one of {', '.join(UNITS)}, not {value!r:.40}")
    if value == "epsilon" and form not in EPSILON_FORMS:
        raise InvalidRequest("G-INPUT", f"{form} jobs spend no ε: price them per call")
    return str(value)


def _latest_caps() -> Any:
    newest = (
        select(
            tables.price_caps.c.id,
            func.row_number()
            .over(
                partition_by=(tables.price_caps.c.form, tables.price_caps.c.unit),
                order_by=tables.price_caps.c.seq.desc(),
            )
            .label("rank"),
        )
    ).subquery()
    return select(newest.c.id).where(newest.c.rank == 1)


def _limits(conn: Connection, where: ColumnElement[bool], year: int | None) -> list[RevenueLimit]:
    query = (
        select(tables.revenue_limits, authorizations.c.operator_id)
        .join(authorizations, authorizations.c.id == tables.revenue_limits.c.authorization_id)
        .where(where)
        .order_by(
            tables.revenue_limits.c.year,
            authorizations.c.operator_id,
            tables.revenue_limits.c.authorization_id,
        )
    )
    if year is not None:
        query = query.where(tables.revenue_limits.c.year == year)
    found = []
    for row in conn.execute(query).mappings():
        charged = charged_in_year(conn, row["authorization_id"], row["year"])
        found.append(_limit(row, charged))
    return found


def _limit(row: RowMapping, charged: int) -> RevenueLimit:
    return RevenueLimit(
        authorization_id=row["authorization_id"], operator_id=row["operator_id"], year=row["year"],
        max_fen=row["max_fen"], charged_fen=charged, remaining_fen=max(0, row["max_fen"] - charged),
        reason=row["reason"], set_by=row["set_by"], set_at=row["set_at"],
    )  # fmt: skip


def _cap_json(cap: PriceCap) -> dict[str, Any]:
    return {"form": cap.form, "unit": cap.unit, "cap_fen": cap.cap_fen, "reason": cap.reason}
