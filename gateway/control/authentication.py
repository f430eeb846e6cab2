"""Authentication: what a presented token, or a user acting later, turns out to be.

A token secret is looked up by its SHA-256 (:func:`~gateway.control.identity.token_digest`);
the refusals distinguish expired tokens, deactivated users and suspended operators but give
an unknown and a revoked token the same message, so a probe learns nothing from the
difference. Every request and every job the runner takes up on a user's behalf passes here,
so a revocation, deactivation or suspension takes effect at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import RowMapping, Select, select

from gateway.control.db import ControlPlane
from gateway.control.identity import TOKEN_PREFIX, OrgKind, Principal, Role, token_digest
from gateway.control.oversight_schema import suspended_since
from gateway.control.schema import organisations, tokens, users, when
from gateway.errors import Forbidden, GatewayError, Unauthenticated

_MAX_SECRET_CHARS = 200

SignInFailure = Literal["malformed", "unknown", "revoked", "expired", "deactivated", "suspended"]


@dataclass(frozen=True)
class SignIn:
    """What a presented token turned out to be (:func:`sign_in`): the caller, or ``failure``
    with the ``error`` to refuse it with and, when the token is known, whose it is."""

    principal: Principal | None
    failure: SignInFailure | None = None
    error: GatewayError | None = None
    token_id: str | None = None
    user_id: str | None = None
    operator_id: str | None = None


def sign_in(cp: ControlPlane, secret: str) -> SignIn:
    """What a token secret turns out to be: its principal, or why it is refused.

    Never raises for the token's state: the refusal is in ``error``, and ``failure`` says
    which it was — also for an unknown and a revoked token, whose errors read the same.
    A user of a suspended operator is known (``principal``) and still refused.
    """
    if not isinstance(secret, str) or not secret.startswith(TOKEN_PREFIX) or len(secret) > _MAX_SECRET_CHARS:
        return SignIn(None, "malformed", _invalid_token())
    query = (
        _PRINCIPAL.add_columns(tokens.c.id.label("token_id"), tokens.c.expires_at, tokens.c.revoked_at)
        .join(tokens, tokens.c.user_id == users.c.id)
        .where(tokens.c.sha256 == token_digest(secret))
    )
    row, tenant, suspended = _standing(cp, query)
    if row is None:
        return SignIn(None, "unknown", _invalid_token())
    whose = {"token_id": row["token_id"], "user_id": row["id"], "operator_id": tenant}
    if row["revoked_at"] is not None:
        return SignIn(None, "revoked", _invalid_token(), **whose)
    if row["expires_at"] <= cp.now():
        expired = Unauthenticated(
            "G-TOKEN", f"the token expired at {when(row['expires_at'])}: ask for a new one"
        )
        return SignIn(None, "expired", expired, **whose)
    if not row["active"]:
        return SignIn(None, "deactivated", _deactivated(), **whose)
    principal = _principal(row)
    if suspended is not None:
        return SignIn(principal, "suspended", _suspension(str(tenant), suspended), **whose)
    return SignIn(principal)


def authenticate(cp: ControlPlane, secret: str) -> Principal:
    """The principal a token secret belongs to.

    Raises Unauthenticated ``G-TOKEN`` for an unknown, revoked or expired token and for a
    deactivated user (unknown and revoked tokens get the same message), and Forbidden
    ``G-SUSPENDED`` for a user of a suspended operator.
    """
    found = sign_in(cp, secret)
    if found.error is not None:
        raise found.error
    assert found.principal is not None
    return found.principal


def principal_of(cp: ControlPlane, user_id: str) -> Principal:
    """The principal of an active user, for work done later on its behalf (the job runner
    re-checks a job's scenario as its submitter). Raises Unauthenticated ``G-TOKEN`` for an
    unknown or deactivated user, Forbidden ``G-SUSPENDED`` for a user of a suspended operator.
    """
    row, tenant, suspended = _standing(cp, _PRINCIPAL.where(users.c.id == user_id))
    if row is None:
        raise Unauthenticated("G-TOKEN", f"user {user_id!r} does not exist")
    principal = _principal(row)
    if suspended is not None:
        raise _suspension(str(tenant), suspended)
    return principal


_PRINCIPAL = select(
    users.c.id, users.c.name, users.c.role, users.c.active, organisations.c.id.label("org_id"),
    organisations.c.kind, organisations.c.operator_id,
).join(organisations, organisations.c.id == users.c.organisation_id)  # fmt: skip


def _principal(row: RowMapping) -> Principal:
    if not row["active"]:
        raise _deactivated()
    role, kind = Role(row["role"]), OrgKind(row["kind"])
    return Principal(row["id"], row["name"], role, row["org_id"], kind, _tenant(row))


def _tenant(row: RowMapping) -> str | None:
    """The operator organisation an operator or developer user works for; None for other roles."""
    if Role(row["role"]) not in (Role.OPERATOR, Role.DEVELOPER):
        return None
    tenant: str | None = {OrgKind.OPERATOR: row["org_id"], OrgKind.PARTNER: row["operator_id"]}.get(
        OrgKind(row["kind"])
    )
    return tenant


def _standing(cp: ControlPlane, query: Select[Any]) -> tuple[RowMapping | None, str | None, datetime | None]:
    """A user's row by ``query``, its tenant, and since when that tenant is suspended (if it is)."""
    with cp.transaction(write=False) as conn:
        row = conn.execute(query).mappings().first()
        tenant = None if row is None else _tenant(row)
        return row, tenant, None if tenant is None else suspended_since(conn, tenant)


def _suspension(operator_id: str, since: datetime) -> Forbidden:
    return Forbidden(
        "G-SUSPENDED",
        f"operator {operator_id} is suspended since {when(since)}: its users are refused until the "
        "authority reinstates it",
    )


def _deactivated() -> Unauthenticated:
    return Unauthenticated("G-TOKEN", "the user is deactivated: ask your organisation's administrator")


def _invalid_token() -> Unauthenticated:
    return Unauthenticated("G-TOKEN", "the token is not valid: present a current token or ask for a new one")
