"""The control plane's tables, in SQLAlchemy Core over portable types (SQLite or PostgreSQL).

Times are stored as naive UTC timestamps and read back as timezone-aware UTC datetimes
(:class:`UtcDateTime`), so comparisons in SQL mean the same on every backend. Ids are
random text with a prefix naming the kind of object (``org_``, ``usr_``, ``tok_``,
``auth_``, ``scn_``). Jobs are written by the job runner; this module only defines them.
"""

from __future__ import annotations

import secrets
import unicodedata
from datetime import UTC, datetime
from enum import StrEnum
from typing import TypeVar

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    MetaData,
    String,
    Table,
    TypeDecorator,
)

from gateway.errors import InvalidRequest
from sandbox.catalog import check_name
from sandbox.errors import CatalogError

E = TypeVar("E", bound=StrEnum)

ID_CHARS = 40
NAME_CHARS = 200
TEXT_CHARS = 4000


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime, stored as a naive UTC timestamp."""

    impl = DateTime(timezone=False)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("the control plane stores timezone-aware datetimes only")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


def new_id(prefix: str) -> str:
    """A fresh random id such as ``org_3f9c…`` (80 random bits)."""
    return f"{prefix}_{secrets.token_hex(10)}"


def text(field: str, value: object, *, limit: int = NAME_CHARS) -> str:
    """``value`` stripped, if it is a non-empty string of at most ``limit`` characters and
    no control characters but tabs and line breaks."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidRequest("G-INPUT", f"{field} must be a non-empty string")
    if len(value.strip()) > limit:
        raise InvalidRequest("G-INPUT", f"{field} is longer than {limit} characters")
    # NUL cannot be stored by PostgreSQL, and escape sequences would reach terminals
    # through the CLI and the ledger's readers.
    if any(unicodedata.category(c) == "Cc" and c not in "\t\n\r" for c in value):
        raise InvalidRequest("G-INPUT", f"{field} contains a control character")
    return value.strip()


def choice(kind: type[E], field: str, value: object) -> E:
    """``value`` as a member of the string enumeration ``kind``."""
    if isinstance(value, str) and value in {member.value for member in kind}:
        return kind(value)
    allowed = ", ".join(member.value for member in kind)
    raise InvalidRequest("G-INPUT", f"{field} must be one of {allowed}, not {value!r}")


def names(field: str, values: object) -> tuple[str, ...]:
    """``values`` as distinct catalog names (datasets or columns), at least one."""
    try:
        found = _distinct(field, [check_name(field, item) for item in _strings(field, values)])
    except CatalogError as exc:
        raise InvalidRequest("G-INPUT", str(exc)) from None
    if not found:
        raise InvalidRequest("G-INPUT", f"{field} must name at least one")
    return found


def labels(field: str, values: object) -> tuple[str, ...]:
    """``values`` as distinct non-empty strings, possibly none."""
    return _distinct(field, [text(field, item) for item in _strings(field, values)])


def _strings(field: str, values: object) -> list[str]:
    if not isinstance(values, list | tuple) or not all(isinstance(item, str) for item in values):
        raise InvalidRequest("G-INPUT", f"{field} must be a list of strings")
    return list(values)


def _distinct(field: str, items: list[str]) -> tuple[str, ...]:
    if len(set(items)) != len(items):
        raise InvalidRequest("G-INPUT", f"{field} lists an entry twice")
    return tuple(items)


def when(at: datetime) -> str:
    """A time as messages show it, in UTC to the minute."""
    return f"{at.astimezone(UTC):%Y-%m-%d %H:%M} UTC"


def aware(field: str, value: object) -> datetime:
    """``value`` in UTC, if it is a timezone-aware datetime."""
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise InvalidRequest("G-INPUT", f"{field} must be a timezone-aware datetime (e.g. in UTC)")
    try:
        return value.astimezone(UTC)
    except OverflowError:  # an offset that pushes year 1 or 9999 past the calendar's end
        raise InvalidRequest("G-INPUT", f"{field} is out of range") from None


metadata = MetaData()


def _id() -> Column[str]:
    return Column("id", String(ID_CHARS), primary_key=True)


def _ref(name: str, target: str, *, nullable: bool = False) -> Column[str]:
    return Column(name, String(ID_CHARS), ForeignKey(f"{target}.id"), nullable=nullable)


def _text(name: str, *, nullable: bool = False, limit: int = NAME_CHARS) -> Column[str]:
    return Column(name, String(limit), nullable=nullable)


def _time(name: str, *, nullable: bool = False) -> Column[datetime]:
    return Column(name, UtcDateTime(), nullable=nullable)


organisations = Table(
    "organisations",
    metadata,
    _id(),
    Column("name", String(NAME_CHARS), nullable=False, unique=True),
    _text("kind"),
    _ref("operator_id", "organisations", nullable=True),  # set for partner organisations only
    _text("id_reference"),
    _time("created_at"),
)

users = Table(
    "users",
    metadata,
    _id(),
    _ref("organisation_id", "organisations"),
    _text("name"),
    _text("role"),
    _text("id_reference"),  # the reference of a real-name check, never the ID number itself
    Column("active", Boolean, nullable=False),
    _time("created_at"),
    Index("users_organisation", "organisation_id"),
)

tokens = Table(
    "tokens",
    metadata,
    _id(),
    _ref("user_id", "users"),
    Column("sha256", String(64), nullable=False, unique=True),
    _text("label"),
    _time("created_at"),
    _time("expires_at"),
    _time("revoked_at", nullable=True),
    Index("tokens_user", "user_id"),
)

authorizations = Table(
    "authorizations",
    metadata,
    _id(),
    _ref("operator_id", "organisations"),
    _text("mode"),
    Column("scope", JSON, nullable=False),
    Column("datasets", JSON, nullable=False),
    _text("category"),
    _time("starts_at"),
    _time("ends_at"),
    _text("status"),
    _time("revoked_at", nullable=True),
    _text("reason", nullable=True, limit=TEXT_CHARS),
    _ref("created_by", "users"),
    _time("created_at"),
    Index("authorizations_operator", "operator_id", "status"),
)

scenarios = Table(
    "scenarios",
    metadata,
    _id(),
    _ref("operator_id", "organisations"),
    _ref("authorization_id", "authorizations"),
    _text("name"),
    _text("purpose", limit=TEXT_CHARS),
    Column("datasets", JSON, nullable=False),
    Column("output_forms", JSON, nullable=False),
    _text("privacy_unit", nullable=True),
    Column("requested_epsilon", Float, nullable=False),
    _text("status"),
    Column("policy", JSON, nullable=True),
    _ref("applied_by", "users"),
    _ref("decided_by", "users", nullable=True),
    _text("reason", nullable=True, limit=TEXT_CHARS),
    _time("ends_at", nullable=True),
    _time("created_at"),
    _time("decided_at", nullable=True),
    Index("scenarios_operator", "operator_id", "status"),
    Index("scenarios_authorization", "authorization_id"),
)

jobs = Table(
    "jobs",
    metadata,
    Column("id", String(64), primary_key=True),  # chosen by the job runner
    _ref("scenario_id", "scenarios"),
    _ref("operator_id", "organisations"),
    _ref("submitter_id", "users"),
    _text("kind"),
    _text("status"),
    Column("mock", Boolean, nullable=False),
    Column("spec", JSON, nullable=False),
    _text("reason", nullable=True, limit=TEXT_CHARS),
    _text("rule", nullable=True),
    Column("result_sha256", String(64), nullable=True),
    # What a job answers directly (a verification's boolean, a recorded consent's id); never data.
    Column("outcome", JSON, nullable=True),
    _time("created_at"),
    _time("updated_at"),
    Index("jobs_operator", "operator_id", "status"),
    Index("jobs_scenario", "scenario_id"),
)
