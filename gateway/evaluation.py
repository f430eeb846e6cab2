"""Annual evaluation (年度评估) of an operator, and what each outcome sets in motion.

The report of a year gathers what the platform already recorded about the operator: its
jobs by outcome and what their meters measured, its products, what it charged against
each yearly maximum, its security incidents and how promptly it reported them, the
data-quality feedback it filed and how promptly providers answered, and its scenarios'
privacy budget use. The authority records an outcome with the report it saw (its
SHA-256 goes in the ledger):

- ``pass`` closes the year;
- ``rectify`` (整改) opens a 30-day deadline, after which the authority evaluates again; a
  rectification not re-evaluated by its deadline is flagged once
  (:mod:`gateway.control.rectification`);
- ``fail``, or a second ``rectify``, ends in exit: every authorization of the operator still
  in force is revoked (:func:`gateway.governance.revoke`), with its exit report.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import func, insert, select

from gateway import governance
from gateway.control import Principal, Role, authorizations, schema
from gateway.control.accounting import ACCOUNTING_TZ
from gateway.control.billing_schema import charges, meters, products, revenue_limits
from gateway.control.evaluation_tables import evaluations
from gateway.control.identity import invisible, require_role, visible_organisation
from gateway.control.oversight_schema import incidents, quality_issues
from gateway.control.pricing import VOID_STATUSES
from gateway.control.rectification import RULE
from gateway.control.schema import TEXT_CHARS, new_id, text
from gateway.errors import Conflict, InvalidRequest
from gateway.platform import Platform
from ledger import canonical_json

Outcome = Literal["pass", "rectify", "fail"]
RECTIFY_DAYS = 30
_READERS = frozenset({Role.AUTHORITY, Role.AUDITOR})


@dataclass(frozen=True)
class Evaluation:
    """One recorded outcome of an operator's evaluation for a year."""

    id: str
    operator_id: str
    year: int
    round: int
    outcome: Outcome
    reason: str
    report_sha256: str
    decided_by: str
    decided_at: datetime
    rectify_due: datetime | None
    overdue_at: datetime | None
    exited: tuple[str, ...] = ()
    """Authorizations this outcome revoked (a fail or a second rectify)."""


def report(platform: Platform, principal: Principal, operator_id: str, year: int) -> dict[str, Any]:
    """The evaluation report of ``operator_id`` for calendar ``year`` (Beijing time): for the
    authority and auditors, and for the operator about itself."""
    require_role(principal, {*_READERS, Role.OPERATOR}, "reading an evaluation report")
    if principal.role is Role.OPERATOR and principal.tenant != operator_id:
        raise invisible("operator", operator_id)
    start, end = _year(year)
    cp = platform.control
    with cp.transaction(write=False) as conn:
        operator = visible_organisation(conn, principal, operator_id)
        jobs: Counter[str] = Counter(
            dict(
                conn.execute(
                    select(schema.jobs.c.status, func.count())
                    .where(
                        _in_year(schema.jobs.c.created_at, start, end),
                        schema.jobs.c.operator_id == operator_id,
                    )
                    .where(schema.jobs.c.mock.is_(False))
                    .group_by(schema.jobs.c.status)
                ).all()
            )
        )
        metered = conn.execute(
            select(
                func.count(),
                func.coalesce(func.sum(meters.c.rows_scanned), 0),
                func.coalesce(func.sum(meters.c.cpu_ms), 0),
                func.coalesce(func.sum(meters.c.bytes_released), 0),
                func.coalesce(func.sum(meters.c.epsilon), 0.0),
            ).where(meters.c.operator_id == operator_id, _in_year(meters.c.created_at, start, end))
        ).one()
        listed = conn.execute(
            select(products.c.name, products.c.form, products.c.category, products.c.status, products.c.code)
            .where(products.c.operator_id == operator_id)
            .order_by(products.c.created_at)
        ).all()
        charged = conn.execute(
            select(charges.c.authorization_id, func.sum(charges.c.amount_fen))
            .join(schema.jobs, schema.jobs.c.id == charges.c.job_id)
            .where(charges.c.operator_id == operator_id, charges.c.year == year)
            .where(schema.jobs.c.status.not_in(VOID_STATUSES))
            .group_by(charges.c.authorization_id)
        ).all()
        limits = dict(
            conn.execute(
                select(revenue_limits.c.authorization_id, revenue_limits.c.max_fen).where(
                    revenue_limits.c.year == year
                )
            ).all()
        )
        found = conn.execute(
            select(incidents).where(
                incidents.c.operator_id == operator_id, _in_year(incidents.c.detected_at, start, end)
            )
        ).mappings()
        raised = list(found)
        filed = list(
            conn.execute(
                select(quality_issues).where(
                    quality_issues.c.operator_id == operator_id,
                    _in_year(quality_issues.c.filed_at, start, end),
                )
            ).mappings()
        )
    return {
        "operator": {"id": operator.id, "name": operator.name},
        "year": year,
        "period": {"from": start.isoformat(), "to": end.isoformat()},
        "jobs": {"total": sum(jobs.values()), **dict(sorted(jobs.items()))},
        "usage": {
            "jobs_metered": metered[0],
            "rows_scanned": int(metered[1]),
            "cpu_seconds": round(int(metered[2]) / 1000, 3),
            "bytes_released": int(metered[3]),
            "epsilon_spent": float(metered[4]),
        },
        "products": [
            {"name": p.name, "form": p.form, "category": p.category, "status": p.status, "code": p.code}
            for p in listed
        ],
        "revenue": [
            {"authorization_id": a, "charged_fen": int(total), "max_fen": limits.get(a)}
            for a, total in charged
        ],
        "incidents": _incidents(raised),
        "quality_feedback": _quality(filed),
        "budgets": [
            {"scenario": b.scenario, "dataset": b.dataset, "total": b.total, "spent": b.spent, "left": b.left}
            for b in governance.budget_use(platform, principal)
            if _operator_of(platform, b.scenario_id) == operator_id
        ],
        "authorizations": [
            {"id": a.id, "status": a.status, "ends_at": a.ends_at.isoformat()}
            for a in authorizations.list_authorizations(cp, principal)
            if a.operator_id == operator_id
        ],
    }


def record(
    platform: Platform, principal: Principal, operator_id: str, year: int, *, outcome: str, reason: str
) -> Evaluation:
    """Record the authority's outcome for ``operator_id``'s ``year`` with the report it rests on."""
    require_role(principal, {Role.AUTHORITY}, "recording an evaluation")
    if outcome not in ("pass", "rectify", "fail"):
        raise InvalidRequest("G-INPUT", f"an outcome is pass, rectify or fail, not {outcome!r:.40}")
    reason = text("reason", reason, limit=TEXT_CHARS)
    document = report(platform, principal, operator_id, year)
    digest = hashlib.sha256(canonical_json(document)).hexdigest()
    cp = platform.control
    with cp.transaction() as conn:
        earlier = (
            conn.execute(
                select(evaluations)
                .where(evaluations.c.operator_id == operator_id, evaluations.c.year == year)
                .order_by(evaluations.c.round.desc())
            )
            .mappings()
            .first()
        )
        if earlier is not None and earlier["outcome"] != "rectify":
            raise Conflict(
                RULE, f"the {year} evaluation of {operator_id} is already final ({earlier['outcome']})"
            )
        if earlier is not None and earlier["round"] >= 2:
            raise Conflict(RULE, f"the {year} evaluation of {operator_id} was already re-evaluated")
        now = cp.now()
        round_ = 1 if earlier is None else 2
        exits = outcome == "fail" or (outcome == "rectify" and round_ == 2)
        due = now + timedelta(days=RECTIFY_DAYS) if outcome == "rectify" and not exits else None
        row = {
            "id": new_id("eval"), "operator_id": operator_id, "year": year, "round": round_,
            "outcome": outcome, "reason": reason, "report": document, "report_sha256": digest,
            "decided_by": principal.user_id, "decided_at": now, "rectify_due": due, "overdue_at": None,
        }  # fmt: skip
        conn.execute(insert(evaluations).values(**row))
        details = {
            "year": year,
            "round": round_,
            "outcome": outcome,
            "reason": reason,
            "report_sha256": digest,
        }
        if due is not None:
            details["rectify_due"] = due.isoformat()
        cp.ledger.append(principal.user_id, "evaluation.recorded", operator_id, details)
    ended = _exit(platform, principal, operator_id, year, outcome) if exits else ()
    return _evaluation(row, ended)


def list_evaluations(platform: Platform, principal: Principal) -> list[Evaluation]:
    """Every evaluation for the authority and auditors; an operator's own for the operator."""
    require_role(principal, {*_READERS, Role.OPERATOR}, "reading evaluations")
    query = select(evaluations).order_by(evaluations.c.decided_at)
    if principal.role is Role.OPERATOR:
        query = query.where(evaluations.c.operator_id == principal.tenant)
    with platform.control.transaction(write=False) as conn:
        return [_evaluation(dict(row)) for row in conn.execute(query).mappings()]


def _exit(
    platform: Platform, principal: Principal, operator_id: str, year: int, outcome: str
) -> tuple[str, ...]:
    why = "a second rectification" if outcome == "rectify" else "a failed evaluation"
    ended = []
    for granted in authorizations.list_authorizations(platform.control, principal):
        if granted.operator_id == operator_id and granted.status == "active":
            reason = f"annual evaluation {year}: {why} ends the authorization"
            governance.revoke(platform, principal, granted.id, reason=reason)
            ended.append(granted.id)
    return tuple(ended)


def _incidents(raised: list[Any]) -> dict[str, Any]:
    reported = [i for i in raised if i["reported_at"] is not None]
    return {
        "total": len(raised),
        "by_severity": dict(sorted(Counter(i["severity"] for i in raised).items())),
        "reported_on_time": sum(1 for i in reported if not i["reported_late"]),
        "reported_late": sum(1 for i in reported if i["reported_late"]),
        "unreported": len(raised) - len(reported),
    }


def _quality(filed: list[Any]) -> dict[str, Any]:
    answered = [q for q in filed if q["answered_at"] is not None]
    return {
        "filed": len(filed),
        "answered": len(answered),
        "answered_on_time": sum(1 for q in answered if q["answered_at"] <= q["due_at"]),
        "escalated": sum(1 for q in filed if q["escalated_at"] is not None),
    }


def _operator_of(platform: Platform, scenario_id: str) -> str | None:
    with platform.control.transaction(write=False) as conn:
        return conn.scalar(select(schema.scenarios.c.operator_id).where(schema.scenarios.c.id == scenario_id))


def _year(year: int) -> tuple[datetime, datetime]:
    if not 2000 <= year <= 2200:
        raise InvalidRequest("G-INPUT", f"an evaluation year is between 2000 and 2200, not {year}")
    return datetime(year, 1, 1, tzinfo=ACCOUNTING_TZ), datetime(year + 1, 1, 1, tzinfo=ACCOUNTING_TZ)


def _in_year(column: Any, start: datetime, end: datetime) -> Any:
    return (column >= start) & (column < end)


def _evaluation(row: dict[str, Any], exited: tuple[str, ...] = ()) -> Evaluation:
    fields = {k: row[k] for k in Evaluation.__dataclass_fields__ if k != "exited"}
    return Evaluation(**fields, exited=exited)
