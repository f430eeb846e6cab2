"""Statements (对账单): every charge of one operator in one period, its totals, and what remains
of each of its yearly maximums (最高准许收入).

A statement is issued — computed, stored and recorded as ``statement.issued`` with the
SHA-256 of its canonical JSON — by the authority for any operator, or by an operator user
for its own organisation. A period that has not ended yet can be stated too; the
statement then says it is not ``complete``. Void charges (their job delivered nothing) are
listed, marked, and left out of the totals. Every total is an exact sum of the lines.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, RowMapping, insert, select, true

from gateway.control import billing_schema as tables
from gateway.control.accounting import Period, digest, intact, parse_period
from gateway.control.authorizations import Category
from gateway.control.charges import Charge
from gateway.control.db import ControlPlane
from gateway.control.identity import (
    Organisation,
    OrgKind,
    Principal,
    Role,
    invisible,
    require_role,
    visible_organisation,
)
from gateway.control.pricing import VOID_STATUSES, charged_in_year, limit_of
from gateway.control.schema import authorizations, jobs, new_id
from gateway.errors import InvalidRequest

READERS = frozenset({Role.AUTHORITY, Role.AUDITOR})


@dataclass(frozen=True)
class Statement:
    """An issued statement: its document and the hash the ledger recorded of it."""

    id: str
    operator_id: str
    period: str
    document: dict[str, Any]
    sha256: str
    issued_by: str
    issued_at: datetime


def issue(cp: ControlPlane, actor: Principal, *, operator_id: str, period: str) -> Statement:
    """Issue the statement of ``operator_id`` for ``period`` (see :func:`parse_period`): the
    authority for any operator, an operator user for its own organisation."""
    require_role(actor, {Role.AUTHORITY, Role.OPERATOR}, "issuing a statement")
    span = parse_period(period)
    if actor.role is Role.OPERATOR and operator_id != actor.tenant:
        raise invisible("operator", operator_id)  # an operator states its own books only
    with cp.transaction() as conn:
        operator = operator_organisation(conn, actor, operator_id)
        now = cp.now()
        document = {
            "operator": {"id": operator.id, "name": operator.name},
            "period": span.to_json(),
            "as_of": now.isoformat(),
            "complete": span.complete(now),
            **_lines(conn, operator.id, span),
            "yearly": _yearly(conn, operator.id, span.years),
        }
        statement = Statement(
            new_id("stm"), operator.id, span.label, document, digest(document), actor.user_id, now
        )
        conn.execute(insert(tables.statements).values(**asdict(statement)))
        details = {
            "operator_id": operator.id, "period": span.label, "complete": document["complete"],
            "charged_fen": document["totals"]["charged_fen"], "sha256": statement.sha256,
        }  # fmt: skip
        cp.ledger.append(actor.user_id, "statement.issued", statement.id, details)
    return statement


def get_statement(cp: ControlPlane, actor: Principal, statement_id: str) -> Statement:
    """One statement the actor may see; NotFound ``G-TENANT`` otherwise."""
    query = select(tables.statements).where(tables.statements.c.id == statement_id, _readable(actor))
    with cp.transaction(write=False) as conn:
        row = conn.execute(query).mappings().first()
    if row is None:
        raise invisible("statement", statement_id)
    return _statement(row)


def list_statements(cp: ControlPlane, actor: Principal, *, operator_id: str | None = None) -> list[Statement]:
    """The statements the actor may see, newest first: every one for the authority and
    auditors, its own organisation's for an operator user."""
    query = select(tables.statements).where(_readable(actor))
    if operator_id is not None:
        query = query.where(tables.statements.c.operator_id == operator_id)
    query = query.order_by(tables.statements.c.issued_at.desc(), tables.statements.c.id)
    with cp.transaction(write=False) as conn:
        return [_statement(row) for row in conn.execute(query).mappings()]


def charge_lines(conn: Connection, where: ColumnElement[bool], period: Period) -> list[dict[str, Any]]:
    """The charges matching ``where`` made in ``period``, in order, each with its product and
    whether its job's outcome made it void."""
    query = (
        select(
            tables.charges,
            jobs.c.status.label("job_status"),
            tables.products.c.code.label("product_code"),
            tables.products.c.name.label("product_name"),
        )
        .join(jobs, jobs.c.id == tables.charges.c.job_id)
        .join(tables.products, tables.products.c.id == tables.charges.c.product_id)
        .where(where, tables.charges.c.charged_at >= period.start, tables.charges.c.charged_at < period.end)
        .order_by(tables.charges.c.charged_at, tables.charges.c.id)
    )
    return [_line(row) for row in conn.execute(query).mappings()]


def operator_organisation(conn: Connection, actor: Principal, operator_id: str) -> Organisation:
    """The operator organisation ``operator_id``; NotFound ``G-TENANT`` if the actor may not see
    it, InvalidRequest ``G-INPUT`` if it is another kind of organisation."""
    operator = visible_organisation(conn, actor, operator_id)
    if operator.kind is not OrgKind.OPERATOR:
        raise InvalidRequest("G-INPUT", f"{operator_id} is a {operator.kind} organisation, not an operator")
    return operator


def _lines(conn: Connection, operator_id: str, period: Period) -> dict[str, Any]:
    lines = charge_lines(conn, tables.charges.c.operator_id == operator_id, period)
    products: dict[str, dict[str, Any]] = {}
    for line in lines:
        if line["status"] == "charged":
            entry = products.setdefault(
                line["product_id"],
                {"product_id": line["product_id"], "code": line["product_code"], "name": line["product_name"],
                 "charges": 0, "amount_fen": 0},
            )  # fmt: skip
            entry["charges"] += 1
            entry["amount_fen"] += line["amount_fen"]
    charged = [line for line in lines if line["status"] == "charged"]
    totals = {
        "charges": len(charged),
        "charged_fen": sum(line["amount_fen"] for line in charged),
        "void_charges": len(lines) - len(charged),
        "void_fen": sum(line["amount_fen"] for line in lines if line["status"] == "void"),
    }
    return {
        "charges": lines,
        "by_product": sorted(products.values(), key=lambda p: str(p["code"])),
        "totals": totals,
    }


def _yearly(conn: Connection, operator_id: str, years: Iterable[int]) -> list[dict[str, Any]]:
    """Each industry authorization's maximum, charged total and remainder, for every year the
    period touches — totals of the whole year as of now."""
    held = conn.scalars(
        select(authorizations.c.id)
        .where(
            authorizations.c.operator_id == operator_id, authorizations.c.category == Category.INDUSTRY.value
        )
        .order_by(authorizations.c.created_at, authorizations.c.id)
    ).all()
    found = []
    for year in years:
        for authorization_id in held:
            limit, charged = (
                limit_of(conn, authorization_id, year),
                charged_in_year(conn, authorization_id, year),
            )
            if limit is None and not charged:
                continue
            found.append({
                "year": year, "authorization_id": authorization_id, "max_fen": limit, "charged_fen": charged,
                "remaining_fen": None if limit is None else max(0, limit - charged),
            })  # fmt: skip
    return found


def _line(row: RowMapping) -> dict[str, Any]:
    charge = Charge(**{name: row[name] for name in Charge.__dataclass_fields__})
    intact(f"charge {charge.id}", charge.document(), charge.sha256)
    void = row["job_status"] in VOID_STATUSES
    return {
        "charge_id": row["id"], "job_id": row["job_id"], "job_status": row["job_status"],
        "operator_id": row["operator_id"], "product_id": row["product_id"],
        "product_code": row["product_code"], "product_name": row["product_name"],
        "scenario_id": row["scenario_id"], "authorization_id": row["authorization_id"], "unit": row["unit"],
        "quantity": row["quantity"], "unit_price_fen": row["unit_price_fen"], "amount_fen": row["amount_fen"],
        "charged_at": row["charged_at"].isoformat(), "status": "void" if void else "charged",
        "sha256": row["sha256"],
    }  # fmt: skip


def _readable(actor: Principal) -> ColumnElement[bool]:
    require_role(actor, {*READERS, Role.OPERATOR}, "reading statements")
    return true() if actor.role in READERS else tables.statements.c.operator_id == actor.tenant


def _statement(row: RowMapping) -> Statement:
    statement = Statement(**{name: row[name] for name in Statement.__dataclass_fields__})
    intact(f"statement {statement.id}", statement.document, statement.sha256)
    return statement
