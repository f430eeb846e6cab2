"""Authorizations (授权): which datasets an operator may build products on, and until when.

The authority grants them, whole (整体授权), by domain (分领域授权) or per scenario
(一场景一授权); ``datasets`` always lists what is covered, whatever the mode, and grants
are non-exclusive. The default term is three years.

Revocation ends one authorization and closes the scenarios applied under it, with their
open jobs. When the operator then holds no other unexpired authorization it *exits*: in
the same transaction every token of its tenant is revoked, every scenario of its closed
and every open job of its closed with rule ``G-REVOKED``. The ledger keeps everything;
the returned :class:`ExitSummary` names the jobs whose quarantined results must go.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import MAXYEAR, datetime
from enum import StrEnum
from typing import Any, Literal

from sqlalchemy import ColumnElement, Connection, RowMapping, insert, select, update

from gateway.control.db import ControlPlane
from gateway.control.identity import (
    SEES_ALL,
    OrgKind,
    Principal,
    Role,
    invisible,
    require_role,
    tenant_filter,
    tenant_orgs,
    visible_organisation,
)
from gateway.control.schema import (
    TEXT_CHARS,
    authorizations,
    aware,
    choice,
    jobs,
    labels,
    names,
    new_id,
    organisations,
    scenarios,
    text,
    tokens,
    users,
    when,
)
from gateway.errors import Conflict, Forbidden, InvalidRequest

DEFAULT_TERM_YEARS = 3
OPEN_JOB_STATUSES = (
    "queued",
    "running",
    "pending_review",
    "approved",
    "returned",
    "awaiting_reply",
    "receiving",
)
"""Job states a revocation closes: everything not yet finished or released."""
OPEN_SCENARIO_STATUSES = ("applied", "approved")


class Mode(StrEnum):
    """How an authorization was granted: whole, by domain, or for one scenario."""

    WHOLE = "whole"
    DOMAIN = "domain"
    SCENARIO = "scenario"


class Category(StrEnum):
    """Public-welfare use is free; industry use is metered and priced."""

    PUBLIC_WELFARE = "public_welfare"
    INDUSTRY = "industry"


@dataclass(frozen=True)
class Authorization:
    """An authorization; ``scope`` lists domains or providers for mode ``domain``."""

    id: str
    operator_id: str
    mode: Mode
    scope: tuple[str, ...]
    datasets: tuple[str, ...]
    category: Category
    starts_at: datetime
    ends_at: datetime
    status: Literal["active", "revoked"]
    revoked_at: datetime | None
    reason: str | None
    created_by: str
    created_at: datetime

    def covers(self, datasets: Iterable[str], at: datetime) -> bool:
        """Whether this authorization is in force at ``at`` and lists every one of ``datasets``."""
        in_force = self.status == "active" and self.starts_at <= at < self.ends_at
        return in_force and set(datasets) <= set(self.datasets)


@dataclass(frozen=True)
class ExitSummary:
    """What a revocation closed. ``exited``: the operator had no other authorization left."""

    authorization_id: str
    operator_id: str
    exited: bool
    tokens_revoked: int
    scenarios_closed: tuple[str, ...]
    jobs_closed: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        """The summary as plain JSON values."""
        return {
            **asdict(self),
            "scenarios_closed": list(self.scenarios_closed),
            "jobs_closed": list(self.jobs_closed),
        }


def grant(
    cp: ControlPlane,
    actor: Principal,
    *,
    operator_id: str,
    mode: str,
    scope: list[str],
    datasets: list[str],
    category: str,
    starts_at: datetime | None = None,
    ends_at: datetime | None = None,
) -> Authorization:
    """Grant an operator organisation an authorization (authority only).

    ``scope`` is empty for mode ``whole`` and names domains or providers for ``domain``.
    ``starts_at`` defaults to now and ``ends_at`` to three years after it.
    """
    require_role(actor, {Role.AUTHORITY}, "granting an authorization")
    grant_mode, grant_category = choice(Mode, "mode", mode), choice(Category, "category", category)
    grant_scope, grant_datasets = labels("scope", scope), names("datasets", datasets)
    if grant_mode is Mode.WHOLE and grant_scope:
        raise InvalidRequest("G-INPUT", "a whole authorization has no scope: list its datasets only")
    if grant_mode is Mode.DOMAIN and not grant_scope:
        raise InvalidRequest(
            "G-INPUT", "a domain authorization needs a scope naming its domains or providers"
        )
    now = cp.now()
    start = now if starts_at is None else aware("starts_at", starts_at)
    end = _add_years(start, DEFAULT_TERM_YEARS) if ends_at is None else aware("ends_at", ends_at)
    if not start < end or end <= now:
        raise InvalidRequest("G-INPUT", "the term must end after it starts, and in the future")
    with cp.transaction() as conn:
        operator = visible_organisation(conn, actor, operator_id)
        if operator.kind is not OrgKind.OPERATOR:
            raise InvalidRequest(
                "G-INPUT", f"{operator_id} is a {operator.kind} organisation, not an operator"
            )
        authorization = Authorization(
            new_id("auth"), operator.id, grant_mode, grant_scope, grant_datasets, grant_category,
            start, end, "active", None, None, actor.user_id, now,
        )  # fmt: skip
        conn.execute(insert(authorizations).values(**_fields(authorization)))
        details = {
            "operator_id": operator.id, "mode": str(grant_mode), "scope": list(grant_scope),
            "datasets": list(grant_datasets), "category": str(grant_category),
            "starts_at": start.isoformat(), "ends_at": end.isoformat(),
        }  # fmt: skip
        cp.ledger.append(actor.user_id, "authorization.granted", authorization.id, details)
    return authorization


def list_authorizations(cp: ControlPlane, actor: Principal) -> list[Authorization]:
    """Every authorization for the authority and auditors; the tenant's own for its users."""
    query = select(authorizations).where(_readable(actor)).order_by(authorizations.c.created_at)
    with cp.transaction(write=False) as conn:
        return [_authorization(row) for row in conn.execute(query).mappings()]


def get_authorization(cp: ControlPlane, actor: Principal, authorization_id: str) -> Authorization:
    """One authorization the actor may see; NotFound ``G-TENANT`` otherwise."""
    with cp.transaction(write=False) as conn:
        return visible_authorization(conn, actor, authorization_id)


def revoke(
    cp: ControlPlane, actor: Principal, authorization_id: str, *, reason: str, voluntary: bool = False
) -> ExitSummary:
    """End an authorization: forced by the authority, or ``voluntary`` by the operator itself.

    Closes the scenarios applied under it and their open jobs; if the operator holds no
    other unexpired authorization, it exits (see the module docstring). Everything happens
    in one transaction with its ledger entries.
    """
    reason = text("reason", reason, limit=TEXT_CHARS)
    if voluntary:
        require_role(actor, {Role.OPERATOR}, "a voluntary exit")
    else:
        require_role(actor, {Role.AUTHORITY}, "revoking an authorization (an operator exits with voluntary)")
    with cp.transaction() as conn:
        authorization = visible_authorization(conn, actor, authorization_id)
        if authorization.status != "active":
            raise Conflict("G-STATE", f"authorization {authorization_id} is already revoked")
        now = cp.now()
        conn.execute(
            update(authorizations)
            .where(authorizations.c.id == authorization.id)
            .values(status="revoked", revoked_at=now, reason=reason)
        )
        summary = _close_under(conn, authorization, now)
        details = {"reason": reason, "voluntary": voluntary, "operator_id": authorization.operator_id}
        records = [(actor.user_id, "authorization.revoked", authorization.id, details)]
        if summary.exited:
            records.append((actor.user_id, "operator.exited", authorization.operator_id, summary.to_json()))
        cp.ledger.append_many(records)
    return summary


def active_authorization(
    cp: ControlPlane, operator_id: str, datasets: Iterable[str], at: datetime
) -> Authorization:
    """The operator's authorization covering every one of ``datasets`` at ``at``.

    Raises Forbidden ``G-AUTHORIZATION`` if no active, started, unexpired one does.
    """
    with cp.transaction(write=False) as conn:
        return covering_authorization(conn, operator_id, datasets, at)


def covering_authorization(
    conn: Connection, operator_id: str, datasets: Iterable[str], at: datetime
) -> Authorization:
    """:func:`active_authorization` inside a transaction already open."""
    wanted = sorted(set(datasets))
    query = (
        select(authorizations)
        .where(authorizations.c.operator_id == operator_id, authorizations.c.status == "active")
        .order_by(authorizations.c.ends_at.desc(), authorizations.c.id)
    )
    for row in conn.execute(query).mappings():
        authorization = _authorization(row)
        if authorization.covers(wanted, at):
            return authorization
    raise Forbidden(
        "G-AUTHORIZATION",
        f"operator {operator_id} holds no authorization in force on {when(at)} covering datasets "
        f"{', '.join(wanted)}: ask the authority for one",
    )


def _readable(actor: Principal) -> ColumnElement[bool]:
    return tenant_filter(
        actor, authorizations.c.operator_id, readers=SEES_ALL, doing="reading authorizations"
    )


def visible_authorization(conn: Connection, actor: Principal, authorization_id: str) -> Authorization:
    """The authorization if the actor may see it; NotFound ``G-TENANT`` otherwise."""
    query = select(authorizations).where(authorizations.c.id == authorization_id, _readable(actor))
    row = conn.execute(query).mappings().first()
    if row is None:
        raise invisible("authorization", authorization_id)
    return _authorization(row)


def authorization_of(conn: Connection, authorization_id: str) -> Authorization:
    """An authorization by id, whoever asks: for services that checked the caller another way."""
    row = (
        conn.execute(select(authorizations).where(authorizations.c.id == authorization_id)).mappings().first()
    )
    if row is None:
        raise invisible("authorization", authorization_id)
    return _authorization(row)


def _close_under(conn: Connection, authorization: Authorization, now: datetime) -> ExitSummary:
    """Close what the revoked authorization carried: everything of the operator if it was its last."""
    operator_id = authorization.operator_id
    remaining = conn.scalar(
        select(authorizations.c.id)
        .where(
            authorizations.c.operator_id == operator_id,
            authorizations.c.status == "active",
            authorizations.c.ends_at > now,
        )
        .limit(1)
    )
    exited = remaining is None
    if exited:
        scenario_scope = scenarios.c.operator_id == operator_id
        job_scope = jobs.c.operator_id == operator_id
    else:
        scenario_scope = scenarios.c.authorization_id == authorization.id
        job_scope = jobs.c.scenario_id.in_(select(scenarios.c.id).where(scenario_scope))
    return ExitSummary(
        authorization_id=authorization.id,
        operator_id=operator_id,
        exited=exited,
        tokens_revoked=_revoke_tenant_tokens(conn, operator_id, now) if exited else 0,
        scenarios_closed=_close_scenarios(conn, scenario_scope),
        jobs_closed=_close_jobs(conn, job_scope, authorization.id, now),
    )


def _revoke_tenant_tokens(conn: Connection, operator_id: str, now: datetime) -> int:
    tenant_users = select(users.c.id).join(organisations).where(tenant_orgs(operator_id))
    done = conn.execute(
        update(tokens)
        .where(tokens.c.user_id.in_(tenant_users), tokens.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    return done.rowcount


def _close_scenarios(conn: Connection, scope: ColumnElement[bool]) -> tuple[str, ...]:
    where = (scope, scenarios.c.status.in_(OPEN_SCENARIO_STATUSES))
    closed = tuple(conn.scalars(select(scenarios.c.id).where(*where).order_by(scenarios.c.id)))
    conn.execute(update(scenarios).where(*where).values(status="closed"))
    return closed


def _close_jobs(
    conn: Connection, scope: ColumnElement[bool], authorization_id: str, now: datetime
) -> tuple[str, ...]:
    where = (scope, jobs.c.status.in_(OPEN_JOB_STATUSES))
    closed = tuple(conn.scalars(select(jobs.c.id).where(*where).order_by(jobs.c.id)))
    reason = f"authorization {authorization_id} was revoked"
    conn.execute(
        update(jobs).where(*where).values(status="closed", rule="G-REVOKED", reason=reason, updated_at=now)
    )
    return closed


def _add_years(start: datetime, years: int) -> datetime:
    if start.year + years > MAXYEAR:
        raise InvalidRequest("G-INPUT", f"a term starting in {start.year} needs an explicit ends_at")
    try:
        return start.replace(year=start.year + years)
    except ValueError:  # 29 February in a year that has none
        return start.replace(year=start.year + years, day=28)


def _fields(authorization: Authorization) -> dict[str, Any]:
    data = asdict(authorization)
    return {**data, "scope": list(authorization.scope), "datasets": list(authorization.datasets)}


def _authorization(row: RowMapping) -> Authorization:
    return Authorization(
        **{
            **row,
            "mode": Mode(row["mode"]),
            "category": Category(row["category"]),
            "scope": tuple(row["scope"]),
            "datasets": tuple(row["datasets"]),
        }
    )
