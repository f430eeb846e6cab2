"""Suspending an operator (暂停授权): the authority's answer to an incident while it is
investigated, undone by reinstating the operator.

While an operator is suspended every request of its users — its own and its partners' —
is refused at authentication with Forbidden ``G-SUSPENDED`` (:func:`authentication.sign_in`), so
no endpoint can be reached around it, and the job runner starts none of its jobs: they
stay queued and run once it is reinstated. Nothing is revoked or deleted; the ledger
records both steps (``operator.suspended``, ``operator.reinstated``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from datetime import datetime

from sqlalchemy import RowMapping, insert, select, update

from gateway.control.db import ControlPlane
from gateway.control.identity import SEES_ALL, OrgKind, Principal, Role, require_role, visible_organisation
from gateway.control.incidents import add_event, visible_incident
from gateway.control.oversight_schema import suspended_since, suspensions
from gateway.control.schema import TEXT_CHARS, new_id, text
from gateway.errors import Conflict, InvalidRequest


@dataclass(frozen=True)
class Suspension:
    """One suspension of an operator; in force while ``reinstated_at`` is None."""

    id: str
    operator_id: str
    reason: str
    incident_id: str | None
    suspended_by: str
    suspended_at: datetime
    reinstated_by: str | None
    reinstated_at: datetime | None
    reinstate_reason: str | None


def suspend(
    cp: ControlPlane, actor: Principal, operator_id: str, *, reason: str, incident_id: str | None = None
) -> Suspension:
    """Suspend an operator organisation (authority only), optionally for an incident, whose
    timeline then shows it. Conflict ``G-STATE`` if it is suspended already."""
    require_role(actor, {Role.AUTHORITY}, "suspending an operator")
    why = text("reason", reason, limit=TEXT_CHARS)
    with cp.transaction() as conn:
        operator = visible_organisation(conn, actor, operator_id)
        if operator.kind is not OrgKind.OPERATOR:
            raise InvalidRequest(
                "G-INPUT", f"{operator_id} is a {operator.kind} organisation, not an operator"
            )
        if suspended_since(conn, operator.id) is not None:
            raise Conflict("G-STATE", f"operator {operator_id} is already suspended")
        if incident_id is not None:
            visible_incident(conn, actor, incident_id)
        now = cp.now()
        found = Suspension(
            new_id("susp"), operator.id, why, incident_id, actor.user_id, now, None, None, None
        )
        conn.execute(insert(suspensions).values(**asdict(found)))
        receipt = cp.ledger.append(
            actor.user_id, "operator.suspended", operator.id, {"reason": why, "incident_id": incident_id}
        )
        if incident_id is not None:
            add_event(
                conn,
                incident_id,
                now,
                "suspended",
                actor.user_id,
                f"operator suspended: {why}",
                receipt.index,
            )
    return found


def reinstate(cp: ControlPlane, actor: Principal, operator_id: str, *, reason: str) -> Suspension:
    """End the suspension in force of an operator (authority only); Conflict ``G-STATE`` if none is."""
    require_role(actor, {Role.AUTHORITY}, "reinstating an operator")
    why = text("reason", reason, limit=TEXT_CHARS)
    with cp.transaction() as conn:
        operator = visible_organisation(conn, actor, operator_id)
        row = (
            conn.execute(
                select(suspensions).where(
                    suspensions.c.operator_id == operator.id, suspensions.c.reinstated_at.is_(None)
                )
            )
            .mappings()
            .first()
        )
        if row is None:
            raise Conflict("G-STATE", f"operator {operator_id} is not suspended")
        now = cp.now()
        conn.execute(
            update(suspensions)
            .where(suspensions.c.id == row["id"])
            .values(reinstated_by=actor.user_id, reinstated_at=now, reinstate_reason=why)
        )
        details = {"reason": why, "suspension_id": row["id"], "incident_id": row["incident_id"]}
        receipt = cp.ledger.append(actor.user_id, "operator.reinstated", operator.id, details)
        if row["incident_id"] is not None:
            add_event(
                conn,
                row["incident_id"],
                now,
                "reinstated",
                actor.user_id,
                f"operator reinstated: {why}",
                receipt.index,
            )
        return replace(_suspension(row), reinstated_by=actor.user_id, reinstated_at=now, reinstate_reason=why)


def list_suspensions(cp: ControlPlane, actor: Principal, *, in_force: bool | None = None) -> list[Suspension]:
    """Every suspension, newest first (the authority and auditors); ``in_force`` filters."""
    require_role(actor, SEES_ALL, "reading suspensions")
    query = select(suspensions).order_by(suspensions.c.suspended_at.desc(), suspensions.c.id)
    if in_force is not None:
        ended = suspensions.c.reinstated_at
        query = query.where(ended.is_(None) if in_force else ended.is_not(None))
    with cp.transaction(write=False) as conn:
        return [_suspension(row) for row in conn.execute(query).mappings()]


def _suspension(row: RowMapping) -> Suspension:
    return Suspension(**{name: row[name] for name in Suspension.__dataclass_fields__})
