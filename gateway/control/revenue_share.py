"""Revenue sharing (收益分配): the net income of a period split between the authority, the
operator and the data providers, by "who invests, who contributes, who benefits"
(谁投入、谁贡献、谁受益).

The authority sets the rules (:func:`set_rules`, each setting kept, the latest in force):
the authority's share and the operator's share of net income, in basis points, the rest
going to the providers by their data contribution — the rows their datasets gave to the
period's charged jobs (``rows_scanned``, the default) or how many of those jobs touched
their datasets (``datasets_touched``), read from the jobs' meters.

A report (:func:`issue`) covers one operator or all of them. For each operator, net income
is its charges in the period (void ones left out) less the costs the authority recognises
for compensation (成本补偿), never below zero. Each operator's net income is apportioned by
the largest-remainder method, so the shares are whole fen that add up to it exactly; a pool
no provider contributed to (no metered rows) goes to the authority. Issued reports are
stored and recorded as ``revenue_share.issued`` with their SHA-256.

>>> apportion(100, [Fraction(1, 3), Fraction(1, 3), Fraction(1, 3)])
[34, 33, 33]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from fractions import Fraction
from typing import Any

from sqlalchemy import Connection, RowMapping, insert, select, true

from gateway.control import billing_schema as tables
from gateway.control.accounting import BASIS_POINTS, Period, digest, fen, intact, parse_period
from gateway.control.db import ControlPlane
from gateway.control.identity import Principal, Role, invisible, require_role
from gateway.control.meters import Meter, meters_of
from gateway.control.schema import TEXT_CHARS, new_id, organisations, text
from gateway.control.statements import charge_lines, operator_organisation
from gateway.errors import Conflict, InvalidRequest

WEIGHTINGS = ("rows_scanned", "datasets_touched")
READERS = frozenset({Role.AUTHORITY, Role.AUDITOR, Role.PROVIDER})


@dataclass(frozen=True)
class RevenueRules:
    """The shares of net income: the authority's and the operator's in basis points, the
    providers' the rest, split by ``weighting``."""

    id: str
    authority_bp: int
    operator_bp: int
    weighting: str
    reason: str
    set_by: str
    set_at: datetime

    @property
    def providers_bp(self) -> int:
        return BASIS_POINTS - self.authority_bp - self.operator_bp

    def to_json(self) -> dict[str, Any]:
        """The rules as plain JSON values."""
        return {
            "id": self.id, "authority_bp": self.authority_bp, "operator_bp": self.operator_bp,
            "providers_bp": self.providers_bp, "weighting": self.weighting,
        }  # fmt: skip


@dataclass(frozen=True)
class RevenueReport:
    """An issued report: its document and the hash the ledger recorded of it."""

    id: str
    operator_id: str | None
    period: str
    document: dict[str, Any]
    sha256: str
    issued_by: str
    issued_at: datetime


def set_rules(
    cp: ControlPlane, actor: Principal, *, authority_bp: int, operator_bp: int, weighting: str, reason: str
) -> RevenueRules:
    """Set the revenue-share rules in force from now (authority only); recorded as
    ``revenue_rules.set``. The two shares may not add up to more than 100 %."""
    require_role(actor, {Role.AUTHORITY}, "setting revenue-share rules")
    for field, value in (("authority_bp", authority_bp), ("operator_bp", operator_bp)):
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= BASIS_POINTS:
            raise InvalidRequest(
                "G-INPUT", f"{field} must be basis points from 0 to {BASIS_POINTS}, not {value!r}"
            )
    if authority_bp + operator_bp > BASIS_POINTS:
        raise InvalidRequest("G-INPUT", "the authority's and the operator's shares add up to more than 100 %")
    if weighting not in WEIGHTINGS:
        raise InvalidRequest(
            "G-INPUT", f"weighting must be one of {', '.join(WEIGHTINGS)}, not {weighting!r:.40}"
        )
    rules = RevenueRules(
        new_id("rul"), authority_bp, operator_bp, weighting, text("reason", reason, limit=TEXT_CHARS),
        actor.user_id, cp.now(),
    )  # fmt: skip
    with cp.transaction() as conn:
        conn.execute(insert(tables.revenue_rules).values(**asdict(rules)))
        document = rules.to_json()
        cp.ledger.append(
            actor.user_id,
            "revenue_rules.set",
            rules.id,
            {**document, "reason": rules.reason, "sha256": digest(document)},
        )
    return rules


def current_rules(cp: ControlPlane) -> RevenueRules | None:
    """The rules in force, or None before the authority sets any; published to every signed-in user."""
    with cp.transaction(write=False) as conn:
        return _current(conn)


def issue(
    cp: ControlPlane,
    actor: Principal,
    *,
    period: str,
    operator_id: str | None = None,
    costs: Mapping[str, int] | None = None,
) -> RevenueReport:
    """Issue the revenue-share report of ``period`` for one operator or all (authority only).

    ``costs`` maps an operator's id to the costs recognised for it in fen. Conflict
    ``G-STATE`` before any rules are set; InvalidRequest ``G-INPUT`` for costs of an
    operator outside the report.
    """
    require_role(actor, {Role.AUTHORITY}, "issuing a revenue-share report")
    span, recognised = (
        parse_period(period),
        {str(k): fen(f"costs of {k}", v) for k, v in (costs or {}).items()},
    )
    with cp.transaction() as conn:
        rules = _current(conn)
        if rules is None:
            raise Conflict("G-STATE", "no revenue-share rules are set: the authority sets them first")
        if operator_id is not None:
            operator_organisation(conn, actor, operator_id)
        for other in sorted(recognised):
            if operator_id is not None and other != operator_id:
                raise InvalidRequest("G-INPUT", f"costs name {other}, outside this report of {operator_id}")
            operator_organisation(conn, actor, other)
        now = cp.now()
        document = _document(conn, rules, span, operator_id, recognised, now)
        report = RevenueReport(
            new_id("rev"), operator_id, span.label, document, digest(document), actor.user_id, now
        )
        conn.execute(insert(tables.revenue_reports).values(**asdict(report)))
        details = {
            "period": span.label, "operator_id": operator_id, "net_fen": document["totals"]["net_fen"],
            "rules": rules.id, "sha256": report.sha256,
        }  # fmt: skip
        cp.ledger.append(actor.user_id, "revenue_share.issued", report.id, details)
    return report


def get_report(cp: ControlPlane, actor: Principal, report_id: str) -> RevenueReport:
    """One report; NotFound ``G-TENANT`` if there is none by that id."""
    require_role(actor, READERS, "reading revenue-share reports")
    query = select(tables.revenue_reports).where(tables.revenue_reports.c.id == report_id)
    with cp.transaction(write=False) as conn:
        row = conn.execute(query).mappings().first()
    if row is None:
        raise invisible("revenue-share report", report_id)
    return _report(row)


def list_reports(cp: ControlPlane, actor: Principal) -> list[RevenueReport]:
    """Every report, newest first (the authority, auditors and providers)."""
    require_role(actor, READERS, "reading revenue-share reports")
    query = select(tables.revenue_reports).order_by(
        tables.revenue_reports.c.issued_at.desc(), tables.revenue_reports.c.id
    )
    with cp.transaction(write=False) as conn:
        return [_report(row) for row in conn.execute(query).mappings()]


def apportion(total: int, shares: Sequence[Fraction]) -> list[int]:
    """``total`` fen split in proportion to ``shares`` (which add up to 1) as whole fen that add
    up to ``total`` exactly: each part rounded down, the fen left over going one each to the
    largest remainders (the earlier part first among equal ones)."""
    exact = [total * share for share in shares]
    parts = [int(value) for value in exact]  # the values are never negative: int() rounds down
    order = sorted(range(len(exact)), key=lambda i: (-(exact[i] - parts[i]), i))
    for i in order[: total - sum(parts)]:
        parts[i] += 1
    return parts


def _document(
    conn: Connection,
    rules: RevenueRules,
    span: Period,
    operator_id: str | None,
    costs: Mapping[str, int],
    now: datetime,
) -> dict[str, Any]:
    where = true() if operator_id is None else tables.charges.c.operator_id == operator_id
    lines = [
        line for line in charge_lines(conn, where, span) if line["status"] == "charged" and line["amount_fen"]
    ]
    meters = meters_of(conn, [line["job_id"] for line in lines])
    by_operator: dict[str, list[dict[str, Any]]] = {key: [] for key in costs}
    for line in lines:
        by_operator.setdefault(str(line["operator_id"]), []).append(line)
    named = select(organisations.c.id, organisations.c.name).where(
        organisations.c.id.in_(sorted(by_operator))
    )
    names = {row.id: row.name for row in conn.execute(named)}
    sections = [
        _section(rules, operator, names.get(operator, operator), charged, meters, costs.get(operator, 0))
        for operator, charged in sorted(by_operator.items())
    ]
    return {
        "period": span.to_json(),
        "operator_id": operator_id,
        "as_of": now.isoformat(),
        "complete": span.complete(now),
        "rules": rules.to_json(),
        "sections": sections,
        "totals": _totals(sections),
    }


def _section(
    rules: RevenueRules,
    operator_id: str,
    name: str,
    lines: list[dict[str, Any]],
    meters: Mapping[str, Meter],
    costs: int,
) -> dict[str, Any]:
    gross = sum(line["amount_fen"] for line in lines)
    compensated = min(costs, gross)
    net = gross - compensated
    weights = _contributions(
        rules.weighting, [meters[line["job_id"]] for line in lines if line["job_id"] in meters]
    )
    total_weight = sum(weights.values())
    parties: list[tuple[str, str | None, Fraction]] = [
        ("authority", None, Fraction(rules.authority_bp, BASIS_POINTS)),
        ("operator", operator_id, Fraction(rules.operator_bp, BASIS_POINTS)),
    ]
    pool = Fraction(rules.providers_bp, BASIS_POINTS)
    if total_weight:
        parties += [("provider", p, pool * Fraction(w, total_weight)) for p, w in sorted(weights.items())]
    else:  # nothing metered to attribute the providers' pool by: it stays with the public
        parties[0] = ("authority", None, parties[0][2] + pool)
    amounts = apportion(net, [share for _, _, share in parties])
    return {
        "operator_id": operator_id, "operator_name": name, "charges": len(lines), "gross_fen": gross,
        "costs_fen": costs, "compensated_fen": compensated, "net_fen": net,
        "contributions": dict(sorted(weights.items())), "unattributed": not total_weight,
        "shares": [{"party": p, "id": i, "fen": f} for (p, i, _), f in zip(parties, amounts, strict=True)],
    }  # fmt: skip


def _contributions(weighting: str, meters: Sequence[Meter]) -> dict[str, int]:
    weights: dict[str, int] = {}
    for meter in meters:
        for provider, rows in meter.by_provider().items():
            weights[provider] = weights.get(provider, 0) + (rows if weighting == "rows_scanned" else 1)
    return {provider: weight for provider, weight in weights.items() if weight}


def _totals(sections: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    shares: dict[tuple[str, str | None], int] = {}
    for section in sections:
        for share in section["shares"]:
            key = (share["party"], share["id"])
            shares[key] = shares.get(key, 0) + share["fen"]
    return {
        "gross_fen": sum(s["gross_fen"] for s in sections),
        "compensated_fen": sum(s["compensated_fen"] for s in sections),
        "net_fen": sum(s["net_fen"] for s in sections),
        "shares": [{"party": p, "id": i, "fen": f} for (p, i), f in shares.items()],
    }


def _current(conn: Connection) -> RevenueRules | None:
    query = select(tables.revenue_rules).order_by(tables.revenue_rules.c.seq.desc()).limit(1)
    row = conn.execute(query).mappings().first()
    return (
        None
        if row is None
        else RevenueRules(**{name: row[name] for name in RevenueRules.__dataclass_fields__})
    )


def _report(row: RowMapping) -> RevenueReport:
    report = RevenueReport(**{name: row[name] for name in RevenueReport.__dataclass_fields__})
    intact(f"revenue-share report {report.id}", report.document, report.sha256)
    return report
