"""Renewing an authorization (续期): a window before expiry, an application, the authority's decision.

An operator may apply to renew an authorization only inside its renewal window, which
opens three months before the term ends and closes when it ends; an expired or revoked
authorization is not renewed but granted anew. The authority approves (the term is
extended to the date applied for, or one it sets) or rejects with a reason. One application
is pending per authorization at a time.

Warnings: :func:`warn_expiring` records ``authorization.expiry_warning`` when an active
authorization comes within 90, 30 and 7 days of its end, each once per term; the job
runner, the CLI and the API call it. :func:`expiring` lists what is inside its window now.
"""

from __future__ import annotations

import calendar
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import Connection, RowMapping, insert, select, update

from gateway.control.authorizations import (
    Authorization,
    authorization_of,
    list_authorizations,
    visible_authorization,
)
from gateway.control.db import ControlPlane
from gateway.control.identity import SEES_ALL, Principal, Role, invisible, require_role, tenant_filter
from gateway.control.renewal_tables import expiry_warnings, renewals
from gateway.control.schema import TEXT_CHARS, authorizations, aware, new_id, text, when
from gateway.errors import Conflict, Forbidden, InvalidRequest

WINDOW_MONTHS = 3
WARNING_DAYS = (90, 30, 7)
"""Days before the end of a term at which a warning is recorded, each once per term."""
MAX_RENEWAL_YEARS = 5
RULE = "G-RENEWAL"


@dataclass(frozen=True)
class Renewal:
    """An application to extend an authorization's term, and the authority's decision."""

    id: str
    authorization_id: str
    operator_id: str
    requested_by: str
    requested_at: datetime
    current_ends_at: datetime
    requested_ends_at: datetime
    note: str
    status: Literal["pending", "approved", "rejected"]
    decided_by: str | None
    decided_at: datetime | None
    reason: str | None


@dataclass(frozen=True)
class Expiry:
    """An active authorization inside its renewal window."""

    authorization_id: str
    operator_id: str
    ends_at: datetime
    window_opens_at: datetime
    days_left: int
    renewal: Renewal | None
    """The latest application for its current term, if any."""


def window_opens(authorization: Authorization) -> datetime:
    """When the renewal window of ``authorization``'s current term opens."""
    return months_before(authorization.ends_at, WINDOW_MONTHS)


def apply(
    cp: ControlPlane, actor: Principal, authorization_id: str, *, ends_at: datetime, note: str
) -> Renewal:
    """Apply to extend an own authorization to ``ends_at`` (operator only, inside the window)."""
    require_role(actor, {Role.OPERATOR}, "applying to renew an authorization")
    note = text("note", note, limit=TEXT_CHARS)
    wanted = aware("ends_at", ends_at)
    with cp.transaction() as conn:
        authorization = visible_authorization(conn, actor, authorization_id)
        now = cp.now()
        _renewable(authorization, now)
        _check_term(authorization, wanted)
        if _pending(conn, authorization.id) is not None:
            raise Conflict(
                RULE, f"authorization {authorization.id} already has a renewal application pending"
            )
        renewal = Renewal(
            new_id("ren"), authorization.id, authorization.operator_id, actor.user_id, now,
            authorization.ends_at, wanted, note, "pending", None, None, None,
        )  # fmt: skip
        conn.execute(insert(renewals).values(**asdict(renewal)))
        cp.ledger.append(
            actor.user_id,
            "authorization.renewal_applied",
            authorization.id,
            {
                "renewal_id": renewal.id,
                "ends_at": authorization.ends_at.isoformat(),
                "requested_ends_at": wanted.isoformat(),
            },
        )
    return renewal


def decide(
    cp: ControlPlane,
    actor: Principal,
    renewal_id: str,
    *,
    approve: bool,
    reason: str,
    ends_at: datetime | None = None,
) -> Renewal:
    """Approve (extending the term to ``ends_at`` or the date applied for) or reject (authority only).

    An approval needs the authorization still active and unexpired: one that ended while
    the application waited is granted anew instead.
    """
    require_role(actor, {Role.AUTHORITY}, "deciding a renewal")
    reason = text("reason", reason, limit=TEXT_CHARS)
    with cp.transaction() as conn:
        renewal = _renewal(conn, actor, renewal_id)
        if renewal.status != "pending":
            raise Conflict(RULE, f"renewal {renewal_id} was already {renewal.status}")
        authorization = authorization_of(conn, renewal.authorization_id)
        now = cp.now()
        new_end = renewal.requested_ends_at if ends_at is None else aware("ends_at", ends_at)
        if approve:
            if authorization.status != "active" or authorization.ends_at <= now:
                raise Conflict(
                    RULE,
                    f"authorization {authorization.id} is no longer in force: grant a new one instead "
                    "of renewing it",
                )
            _check_term(authorization, new_end)
            conn.execute(
                update(authorizations).where(authorizations.c.id == authorization.id).values(ends_at=new_end)
            )
        status = "approved" if approve else "rejected"
        conn.execute(
            update(renewals)
            .where(renewals.c.id == renewal.id)
            .values(status=status, decided_by=actor.user_id, decided_at=now, reason=reason)
        )
        details: dict[str, Any] = {"renewal_id": renewal.id, "reason": reason}
        if approve:
            details |= {"ends_at_before": authorization.ends_at.isoformat(), "ends_at": new_end.isoformat()}
        action = "authorization.renewed" if approve else "authorization.renewal_rejected"
        cp.ledger.append(actor.user_id, action, authorization.id, details)
        return _renewal(conn, actor, renewal_id)


def list_renewals(cp: ControlPlane, actor: Principal) -> list[Renewal]:
    """Every application for the authority and auditors; the tenant's own for its operator."""
    visible = tenant_filter(actor, renewals.c.operator_id, readers=SEES_ALL, doing="reading renewals")
    with cp.transaction(write=False) as conn:
        rows = conn.execute(select(renewals).where(visible).order_by(renewals.c.requested_at)).mappings()
        return [_from_row(row) for row in rows]


def expiring(cp: ControlPlane, actor: Principal) -> list[Expiry]:
    """Active authorizations the actor may see whose renewal window is open now."""
    now = cp.now()
    found = []
    latest = {r.authorization_id: r for r in list_renewals(cp, actor)}
    for authorization in list_authorizations(cp, actor):
        opens = window_opens(authorization)
        if authorization.status != "active" or not opens <= now < authorization.ends_at:
            continue
        renewal = latest.get(authorization.id)
        if renewal is not None and renewal.current_ends_at != authorization.ends_at:
            renewal = None  # an application for an earlier term
        days_left = (authorization.ends_at - now) // timedelta(days=1)
        found.append(
            Expiry(
                authorization.id, authorization.operator_id, authorization.ends_at, opens, days_left, renewal
            )
        )
    return sorted(found, key=lambda e: e.ends_at)


def warn_expiring(cp: ControlPlane, actor: str) -> list[dict[str, Any]]:
    """Record a warning for each active authorization that has come within a warning threshold
    of its end since the last call; several thresholds crossed at once make one warning (the
    nearest). Returns the warnings recorded."""
    now = cp.now()
    recorded = []
    with cp.transaction() as conn:
        active = conn.execute(
            select(authorizations).where(authorizations.c.status == "active", authorizations.c.ends_at > now)
        ).mappings()
        for row in list(active):
            ends_at = row["ends_at"]
            due = [d for d in WARNING_DAYS if ends_at - timedelta(days=d) <= now]
            given = set(
                conn.scalars(
                    select(expiry_warnings.c.days_before).where(
                        expiry_warnings.c.authorization_id == row["id"], expiry_warnings.c.ends_at == ends_at
                    )
                )
            )
            new = [d for d in due if d not in given]
            if not new:
                continue
            conn.execute(
                insert(expiry_warnings),
                [
                    {"authorization_id": row["id"], "days_before": d, "ends_at": ends_at, "warned_at": now}
                    for d in new
                ],
            )
            warning = {
                "operator_id": row["operator_id"],
                "ends_at": ends_at.isoformat(),
                "days_before": min(new),
                "days_left": (ends_at - now) // timedelta(days=1),
                "window_opens_at": months_before(ends_at, WINDOW_MONTHS).isoformat(),
            }
            cp.ledger.append(actor, "authorization.expiry_warning", row["id"], warning)
            recorded.append({"authorization_id": row["id"], **warning})
    return recorded


def months_before(at: datetime, months: int) -> datetime:
    """``at`` moved back by whole calendar months (the 31st becomes the month's last day)."""
    month_index = at.year * 12 + at.month - 1 - months
    year, month = divmod(month_index, 12)
    day = min(at.day, calendar.monthrange(year, month + 1)[1])
    return at.replace(year=year, month=month + 1, day=day)


def _renewable(authorization: Authorization, now: datetime) -> None:
    if authorization.status != "active" or authorization.ends_at <= now:
        raise Forbidden(
            RULE, f"authorization {authorization.id} is no longer in force: apply for a new authorization"
        )
    opens = window_opens(authorization)
    if now < opens:
        raise Forbidden(
            RULE,
            f"the renewal window of authorization {authorization.id} opens on {when(opens)}, three months "
            f"before its term ends on {when(authorization.ends_at)}",
        )


def _check_term(authorization: Authorization, ends_at: datetime) -> None:
    if ends_at <= authorization.ends_at:
        raise InvalidRequest(
            "G-INPUT",
            f"a renewal must end after the current term, which ends on {when(authorization.ends_at)}",
        )
    limit = authorization.ends_at.replace(year=authorization.ends_at.year + MAX_RENEWAL_YEARS)
    if ends_at > limit:
        raise InvalidRequest(
            "G-INPUT", f"a renewal extends a term by at most {MAX_RENEWAL_YEARS} years (to {when(limit)})"
        )


def _pending(conn: Connection, authorization_id: str) -> str | None:
    return conn.scalar(
        select(renewals.c.id).where(
            renewals.c.authorization_id == authorization_id, renewals.c.status == "pending"
        )
    )


def _renewal(conn: Connection, actor: Principal, renewal_id: str) -> Renewal:
    visible = tenant_filter(actor, renewals.c.operator_id, readers=SEES_ALL, doing="reading renewals")
    row = conn.execute(select(renewals).where(renewals.c.id == renewal_id, visible)).mappings().first()
    if row is None:
        raise invisible("renewal", renewal_id)
    return _from_row(row)


def _from_row(row: RowMapping) -> Renewal:
    return Renewal(**row)
