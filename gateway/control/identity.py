"""Identities: organisations, users and their roles, API tokens, and the tenant checks.

Each user belongs to one organisation and holds one role that fits the organisation's kind
(``ROLES_BY_KIND``). An operator organisation and the partner organisations it enrols form
a *tenant*; its operator and developer users see only their tenant. Who may do what:

- ``bootstrap`` creates the first authority organisation and user, once.
- The authority creates organisations of every kind but ``partner`` and users anywhere;
  an operator user enrols partner organisations and developers in its own tenant only.
- Tokens: every user manages its own; the authority anyone's; an operator its tenant's.
- Reads: the authority and auditors see everything; operator users their tenant; every
  other user itself and its own organisation.

A token secret is ``vbx_`` and 256 random bits, shown once; only its SHA-256 is stored
(presented tokens are checked by :mod:`gateway.control.authentication`).
Every change is a ledger entry appended inside the same database transaction, so a failed
append leaves no row behind.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Collection, Mapping
from dataclasses import asdict, dataclass, fields, replace
from datetime import datetime, timedelta
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from sqlalchemy import ColumnElement, Connection, RowMapping, insert, or_, select, true, update

from deid.identifiers import is_resident_id
from gateway.control.db import ControlPlane
from gateway.control.schema import choice, new_id, organisations, text, tokens, users
from gateway.errors import Conflict, Forbidden, InvalidRequest, NotFound


class Role(StrEnum):
    """What a user may do (see DESIGN.md's roles table)."""

    AUTHORITY = "authority"
    PROVIDER = "provider"
    OPERATOR = "operator"
    DEVELOPER = "developer"
    REVIEWER = "reviewer"
    AUDITOR = "auditor"


class OrgKind(StrEnum):
    """What an organisation is; ``partner`` is a developer organisation under one operator."""

    AUTHORITY = "authority"
    PROVIDER = "provider"
    OPERATOR = "operator"
    PARTNER = "partner"
    REVIEW = "review"
    AUDIT = "audit"


ROLES_BY_KIND: Mapping[OrgKind, frozenset[Role]] = MappingProxyType(
    {
        OrgKind.AUTHORITY: frozenset({Role.AUTHORITY, Role.REVIEWER, Role.AUDITOR}),
        OrgKind.PROVIDER: frozenset({Role.PROVIDER}),
        OrgKind.OPERATOR: frozenset({Role.OPERATOR, Role.DEVELOPER}),
        OrgKind.PARTNER: frozenset({Role.DEVELOPER}),
        OrgKind.REVIEW: frozenset({Role.REVIEWER}),
        OrgKind.AUDIT: frozenset({Role.AUDITOR}),
    }
)
"""The roles a user of each kind of organisation may hold."""

SEES_ALL = frozenset({Role.AUTHORITY, Role.AUDITOR})
TOKEN_PREFIX = "vbx_"  # noqa: S105 - a public marker that makes leaked secrets easy to scan for
DEFAULT_TOKEN_TTL = timedelta(days=90)
MAX_TOKEN_TTL = timedelta(days=366)


@dataclass(frozen=True)
class Principal:
    """An authenticated user as the services see it.

    ``tenant`` is the operator organisation an operator or developer user works for
    (its own organisation, or the operator of its partner organisation), else None.
    """

    user_id: str
    name: str
    role: Role
    organisation_id: str
    organisation_kind: OrgKind
    tenant: str | None


@dataclass(frozen=True)
class Organisation:
    """An organisation; ``operator_id`` is set for partner organisations only."""

    id: str
    name: str
    kind: OrgKind
    operator_id: str | None
    id_reference: str
    created_at: datetime


@dataclass(frozen=True)
class User:
    """A user account; ``id_reference`` refers to a real-name check, never an ID number."""

    id: str
    organisation_id: str
    name: str
    role: Role
    id_reference: str
    active: bool
    created_at: datetime


@dataclass(frozen=True)
class TokenInfo:
    """What may be shown about a token: never its secret or hash."""

    id: str
    user_id: str
    label: str
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None


# ----------------------------------------------------------------- access checks


def require_role(actor: Principal, roles: Collection[Role], doing: str) -> None:
    """Raise Forbidden ``G-ROLE`` unless ``actor`` holds one of ``roles``."""
    if actor.role not in roles:
        needed = " or ".join(sorted(roles))
        raise Forbidden("G-ROLE", f"{doing} needs the {needed} role; you are {actor.role}")


def invisible(kind: str, object_id: str) -> NotFound:
    """The refusal for an object that does not exist or lies outside the caller's view."""
    return NotFound("G-TENANT", f"no {kind} {object_id!r} is visible to you")


def tenant_orgs(tenant: str) -> ColumnElement[bool]:
    """Organisations of a tenant: the operator and its partner organisations."""
    return or_(organisations.c.id == tenant, organisations.c.operator_id == tenant)


def tenant_filter(
    actor: Principal, column: ColumnElement[str], *, readers: Collection[Role], doing: str
) -> ColumnElement[bool]:
    """Rows whose tenant ``column`` the actor may read: all for ``readers``, else its own tenant.

    Raises Forbidden ``G-ROLE`` for an actor that is neither a reader nor in a tenant.
    """
    require_role(actor, {*readers, Role.OPERATOR, Role.DEVELOPER}, doing)
    return true() if actor.role in readers else column == actor.tenant


def visible_organisation(conn: Connection, actor: Principal, organisation_id: str) -> Organisation:
    """The organisation ``organisation_id`` if the actor may see it; NotFound ``G-TENANT`` otherwise."""
    query = select(organisations).where(organisations.c.id == organisation_id, _org_filter(actor))
    row = conn.execute(query).mappings().first()
    if row is None:
        raise invisible("organisation", organisation_id)
    return _organisation(row)


def _org_filter(actor: Principal) -> ColumnElement[bool]:
    if actor.role in SEES_ALL:
        return true()
    if actor.role is Role.OPERATOR and actor.tenant is not None:
        return tenant_orgs(actor.tenant)
    return organisations.c.id == actor.organisation_id


def _user_filter(actor: Principal) -> ColumnElement[bool]:
    if actor.role in SEES_ALL:
        return true()
    if actor.role is Role.OPERATOR and actor.tenant is not None:
        return users.c.organisation_id.in_(select(organisations.c.id).where(tenant_orgs(actor.tenant)))
    return users.c.id == actor.user_id


# ----------------------------------------------------------------- bootstrap


def bootstrap(cp: ControlPlane, *, organisation: str, name: str, id_reference: str) -> tuple[Principal, str]:
    """Create the authority organisation, its first authority user and a token for it.

    ``id_reference`` is the user's real-name reference, recorded for the organisation too.
    Returns the user and the token secret (shown once). Refused with Conflict ``G-STATE``
    once any user exists.
    """
    org_name, user_name = text("organisation", organisation), text("name", name)
    reference = _person_reference(id_reference)
    with cp.transaction() as conn:
        if conn.scalar(select(users.c.id).limit(1)) is not None:
            raise Conflict("G-STATE", "the control plane is already initialised: ask an authority user")
        org = _insert_organisation(cp, conn, org_name, OrgKind.AUTHORITY, reference, None)
        user = _insert_user(cp, conn, org.id, user_name, Role.AUTHORITY, reference)
        info, secret = _insert_token(cp, conn, user.id, "bootstrap", DEFAULT_TOKEN_TTL)
        cp.ledger.append_many(
            [
                (user.id, "org.created", org.id, _org_details(org)),
                (user.id, "user.created", user.id, _user_details(user)),
                (user.id, "token.issued", info.id, _token_details(info)),
            ]
        )
    return Principal(user.id, user.name, user.role, org.id, org.kind, None), secret


# ----------------------------------------------------------------- organisations and users


def create_organisation(
    cp: ControlPlane,
    actor: Principal,
    *,
    name: str,
    kind: str,
    id_reference: str,
    operator_id: str | None = None,
) -> Organisation:
    """Create an organisation. The authority creates every kind but ``partner``; an operator
    user enrols ``partner`` organisations under its own tenant (``operator_id`` defaults to it).
    """
    name, reference = text("name", name), text("id_reference", id_reference)
    org_kind = choice(OrgKind, "kind", kind)
    if org_kind is OrgKind.PARTNER:
        require_role(actor, {Role.OPERATOR}, "enrolling a partner organisation")
        operator_id = operator_id or actor.tenant
        if operator_id != actor.tenant:
            raise invisible("organisation", str(operator_id))
    else:
        require_role(actor, {Role.AUTHORITY}, f"creating a {org_kind} organisation")
        if operator_id is not None:
            raise InvalidRequest("G-INPUT", "operator_id is only for partner organisations")
    with cp.transaction() as conn:
        org = _insert_organisation(cp, conn, name, org_kind, reference, operator_id)
        cp.ledger.append(actor.user_id, "org.created", org.id, _org_details(org))
    return org


def create_user(
    cp: ControlPlane, actor: Principal, *, organisation_id: str, name: str, role: str, id_reference: str
) -> User:
    """Create a user. The authority creates users in any organisation; an operator user
    creates developers in its own organisation and its partner organisations.
    The role must fit the organisation's kind (``ROLES_BY_KIND``).
    """
    name, reference = text("name", name), _person_reference(id_reference)
    user_role = choice(Role, "role", role)
    require_role(actor, {Role.AUTHORITY, Role.OPERATOR}, "creating a user")
    if actor.role is Role.OPERATOR and user_role is not Role.DEVELOPER:
        raise Forbidden(
            "G-ROLE", f"operators create developers only; the authority creates {user_role} users"
        )
    with cp.transaction() as conn:
        org = visible_organisation(conn, actor, organisation_id)
        allowed = ROLES_BY_KIND[org.kind]
        if user_role not in allowed:
            raise InvalidRequest(
                "G-INPUT",
                f"users of a {org.kind} organisation may be {', '.join(sorted(allowed))}, not {user_role}",
            )
        user = _insert_user(cp, conn, org.id, name, user_role, reference)
        cp.ledger.append(actor.user_id, "user.created", user.id, _user_details(user))
    return user


def deactivate_user(cp: ControlPlane, actor: Principal, user_id: str) -> User:
    """Deactivate a user so that its tokens stop authenticating: the authority for anyone, an
    operator user for its tenant's developers.
    """
    require_role(actor, {Role.AUTHORITY, Role.OPERATOR}, "deactivating a user")
    with cp.transaction() as conn:
        user = _visible_user(conn, actor, user_id)
        if actor.role is Role.OPERATOR and user.role is not Role.DEVELOPER:
            raise Forbidden(
                "G-ROLE", f"operators deactivate developers only; ask the authority for a {user.role}"
            )
        if not user.active:
            raise Conflict("G-STATE", f"user {user_id!r} is already deactivated")
        conn.execute(update(users).where(users.c.id == user.id).values(active=False))
        cp.ledger.append(
            actor.user_id, "user.deactivated", user.id, {"organisation_id": user.organisation_id}
        )
    return replace(user, active=False)


def get_organisation(cp: ControlPlane, actor: Principal, organisation_id: str) -> Organisation:
    """One organisation the actor may see; NotFound ``G-TENANT`` otherwise."""
    with cp.transaction(write=False) as conn:
        return visible_organisation(conn, actor, organisation_id)


def list_organisations(cp: ControlPlane, actor: Principal) -> list[Organisation]:
    """Every organisation the actor may see, by name."""
    with cp.transaction(write=False) as conn:
        rows = conn.execute(select(organisations).where(_org_filter(actor)).order_by(organisations.c.name))
        return [_organisation(row) for row in rows.mappings()]


def get_user(cp: ControlPlane, actor: Principal, user_id: str) -> User:
    """One user the actor may see; NotFound ``G-TENANT`` otherwise."""
    with cp.transaction(write=False) as conn:
        return _visible_user(conn, actor, user_id)


def list_users(cp: ControlPlane, actor: Principal) -> list[User]:
    """Every user the actor may see, by creation time."""
    with cp.transaction(write=False) as conn:
        rows = conn.execute(select(users).where(_user_filter(actor)).order_by(users.c.created_at, users.c.id))
        return [_user(row) for row in rows.mappings()]


# ----------------------------------------------------------------- tokens


def issue_token(
    cp: ControlPlane, actor: Principal, user_id: str, *, label: str, ttl: timedelta = DEFAULT_TOKEN_TTL
) -> tuple[TokenInfo, str]:
    """Issue an API token for ``user_id``; returns its description and the secret, shown once.

    A user issues for itself, the authority for anyone, an operator for its tenant's users.
    ``ttl`` is at most ``MAX_TOKEN_TTL``.
    """
    label = text("label", label)
    if not isinstance(ttl, timedelta) or not timedelta(0) < ttl <= MAX_TOKEN_TTL:
        raise InvalidRequest("G-INPUT", f"ttl must be positive and at most {MAX_TOKEN_TTL.days} days")
    with cp.transaction() as conn:
        user = _managed_user(conn, actor, user_id, "issuing a token for another user")
        if not user.active:
            raise Conflict("G-STATE", f"user {user_id!r} is deactivated; it cannot be given a token")
        info, secret = _insert_token(cp, conn, user.id, label, ttl)
        cp.ledger.append(actor.user_id, "token.issued", info.id, _token_details(info))
    return info, secret


def revoke_token(cp: ControlPlane, actor: Principal, token_id: str) -> TokenInfo:
    """Revoke a token: by its user, the authority, or an operator for its tenant's users."""
    with cp.transaction() as conn:
        row = conn.execute(select(*_TOKEN_COLUMNS).where(tokens.c.id == token_id)).mappings().first()
        if row is None:
            raise invisible("token", token_id)
        try:
            _managed_user(conn, actor, row["user_id"], "revoking another user's token")
        except NotFound:
            raise invisible("token", token_id) from None
        if row["revoked_at"] is not None:
            raise Conflict("G-STATE", f"token {token_id!r} is already revoked")
        now = cp.now()
        conn.execute(update(tokens).where(tokens.c.id == token_id).values(revoked_at=now))
        cp.ledger.append(actor.user_id, "token.revoked", token_id, {"user_id": row["user_id"]})
    return TokenInfo(**{**row, "revoked_at": now})


def list_tokens(cp: ControlPlane, actor: Principal, user_id: str) -> list[TokenInfo]:
    """The tokens of a user the actor may see, newest first (never secrets or hashes)."""
    with cp.transaction(write=False) as conn:
        _visible_user(conn, actor, user_id)
        query = select(*_TOKEN_COLUMNS).where(tokens.c.user_id == user_id)
        rows = conn.execute(query.order_by(tokens.c.created_at.desc(), tokens.c.id))
        return [TokenInfo(**row) for row in rows.mappings()]


# ----------------------------------------------------------------- internals

_TOKEN_COLUMNS = [tokens.c[field.name] for field in fields(TokenInfo)]


def token_digest(secret: str) -> str:
    """The SHA-256 a token secret is stored and looked up by."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def _person_reference(value: object) -> str:
    reference = text("id_reference", value)
    if is_resident_id(reference):
        raise InvalidRequest(
            "G-INPUT",
            "id_reference looks like a resident ID number: give the reference of the real-name check instead",
        )
    return reference


def _visible_user(conn: Connection, actor: Principal, user_id: str) -> User:
    row = conn.execute(select(users).where(users.c.id == user_id, _user_filter(actor))).mappings().first()
    if row is None:
        raise invisible("user", user_id)
    return _user(row)


def _managed_user(conn: Connection, actor: Principal, user_id: str, doing: str) -> User:
    """A user whose tokens the actor manages: itself, any for the authority, its tenant's for an operator."""
    user = _visible_user(conn, actor, user_id)
    if user.id != actor.user_id:
        require_role(actor, {Role.AUTHORITY, Role.OPERATOR}, doing)
    return user


def _insert_organisation(
    cp: ControlPlane, conn: Connection, name: str, kind: OrgKind, reference: str, operator_id: str | None
) -> Organisation:
    if conn.scalar(select(organisations.c.id).where(organisations.c.name == name)) is not None:
        raise Conflict("G-EXISTS", f"an organisation named {name!r} already exists: choose another name")
    org = Organisation(new_id("org"), name, kind, operator_id, reference, cp.now())
    conn.execute(insert(organisations).values(**asdict(org)))
    return org


def _insert_user(
    cp: ControlPlane, conn: Connection, organisation_id: str, name: str, role: Role, reference: str
) -> User:
    user = User(new_id("usr"), organisation_id, name, role, reference, True, cp.now())
    conn.execute(insert(users).values(**asdict(user)))
    return user


def _insert_token(
    cp: ControlPlane, conn: Connection, user_id: str, label: str, ttl: timedelta
) -> tuple[TokenInfo, str]:
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    now = cp.now()
    info = TokenInfo(new_id("tok"), user_id, label, now, now + ttl, None)
    conn.execute(insert(tokens).values(sha256=token_digest(secret), **asdict(info)))
    return info, secret


def _organisation(row: RowMapping) -> Organisation:
    return Organisation(**{**row, "kind": OrgKind(row["kind"])})


def _user(row: RowMapping) -> User:
    return User(**{**row, "role": Role(row["role"])})


def _org_details(org: Organisation) -> dict[str, Any]:
    return {"name": org.name, "kind": str(org.kind), "operator_id": org.operator_id}


def _user_details(user: User) -> dict[str, Any]:
    # Names and real-name references stay out of the permanent, widely-read ledger.
    return {"organisation_id": user.organisation_id, "role": str(user.role)}


def _token_details(info: TokenInfo) -> dict[str, Any]:
    return {"user_id": info.user_id, "label": info.label, "expires_at": info.expires_at.isoformat()}
