"""The tables of schema version 2: products, price caps, maximum permitted revenue, charges,
meters, statements and revenue-share reports.

They live in their own ``metadata`` so that version 1 (:mod:`gateway.control.schema`) stays
as first released; version 2's migration creates exactly these. Money is integer fen (分)
everywhere — never a float. Ids carry a prefix naming their kind (``prd_``, ``cap_``,
``chg_``, ``stm_``, ``rev_``, ``rul_``).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    UniqueConstraint,
)

from gateway.control import schema
from gateway.control.schema import ID_CHARS, NAME_CHARS, TEXT_CHARS, UtcDateTime

metadata = MetaData()


def _seq() -> Column[int]:
    # Settings made in the same instant are still ordered: the latest row is the one in force.
    return Column("seq", Integer, primary_key=True, autoincrement=True)


def _ref(name: str, target: Column[str], *, nullable: bool = False) -> Column[str]:
    return Column(name, String(ID_CHARS), ForeignKey(target), nullable=nullable)


def _fen(name: str, *, nullable: bool = False) -> Column[int]:
    return Column(name, BigInteger, nullable=nullable)


def _text(name: str, *, nullable: bool = False, limit: int = NAME_CHARS) -> Column[str]:
    return Column(name, String(limit), nullable=nullable)


def _time(name: str, *, nullable: bool = False) -> Column[datetime]:
    return Column(name, UtcDateTime(), nullable=nullable)


products = Table(
    "products",
    metadata,
    Column("id", String(ID_CHARS), primary_key=True),
    _ref("operator_id", schema.organisations.c.id),
    _ref("scenario_id", schema.scenarios.c.id),
    _ref("authorization_id", schema.authorizations.c.id),
    _text("name"),
    _text("description", limit=TEXT_CHARS),
    _text("usage_scope", limit=TEXT_CHARS),
    _text("form"),
    _text("category"),
    _text("unit"),
    _fen("price_fen"),
    _fen("cap_fen", nullable=True),  # industry products only; public-welfare ones are free
    _text("status"),
    Column("code", String(32), nullable=True, unique=True),  # the registration code, once approved
    _text("reason", nullable=True, limit=TEXT_CHARS),
    _ref("registered_by", schema.users.c.id),
    _ref("decided_by", schema.users.c.id, nullable=True),
    _time("created_at"),
    _time("decided_at", nullable=True),
    _time("updated_at"),
    Index("products_operator", "operator_id", "status"),
    Index("products_scenario_form", "scenario_id", "form", "status"),
)

price_caps = Table(
    "price_caps",
    metadata,
    _seq(),
    Column("id", String(ID_CHARS), nullable=False, unique=True),
    _text("form"),
    _text("unit"),
    _fen("cap_fen"),
    _text("reason", limit=TEXT_CHARS),
    _ref("set_by", schema.users.c.id),
    _time("set_at"),
    Index("price_caps_form_unit", "form", "unit", "seq"),
)
"""Every cap the authority set, per product form and pricing unit; the latest (by ``seq``) is in force."""

revenue_limits = Table(
    "revenue_limits",
    metadata,
    _ref("authorization_id", schema.authorizations.c.id),
    Column("year", Integer, nullable=False),
    _fen("max_fen"),
    _text("reason", limit=TEXT_CHARS),
    _ref("set_by", schema.users.c.id),
    _time("set_at"),
    UniqueConstraint("authorization_id", "year", name="revenue_limits_year"),
)

charges = Table(
    "charges",
    metadata,
    Column("id", String(ID_CHARS), primary_key=True),
    Column("job_id", String(64), ForeignKey(schema.jobs.c.id), nullable=False, unique=True),
    _ref("operator_id", schema.organisations.c.id),
    _ref("authorization_id", schema.authorizations.c.id),
    _ref("scenario_id", schema.scenarios.c.id),
    _ref("product_id", products.c.id),
    _text("unit"),
    _text("quantity"),  # a decimal in text, exact (ε spent can be fractional)
    _fen("unit_price_fen"),
    _fen("amount_fen"),
    Column("year", Integer, nullable=False),
    _time("charged_at"),
    Column("sha256", String(64), nullable=False),
    Index("charges_year", "authorization_id", "year"),
    Index("charges_operator", "operator_id", "charged_at"),
)
"""One row per job charged under a product. A charge whose job ends undelivered (refused,
failed, rejected, returned, closed) is void: it is read as such from the job's status."""

meters = Table(
    "meters",
    metadata,
    Column("job_id", String(64), ForeignKey(schema.jobs.c.id), primary_key=True),
    _ref("operator_id", schema.organisations.c.id),
    _ref("scenario_id", schema.scenarios.c.id),
    _text("kind"),
    Column("datasets", JSON, nullable=False),
    Column("rows_scanned", BigInteger, nullable=False),
    Column("cpu_ms", BigInteger, nullable=False),
    Column("bytes_released", BigInteger, nullable=False),
    Column("epsilon", Float, nullable=False),
    Column("delta", Float, nullable=False),
    Column("runs", Integer, nullable=False),
    Column("sha256", String(64), nullable=False),
    _time("created_at"),
    _time("updated_at"),
    Index("meters_operator", "operator_id", "created_at"),
)

statements = Table(
    "statements",
    metadata,
    Column("id", String(ID_CHARS), primary_key=True),
    _ref("operator_id", schema.organisations.c.id),
    _text("period"),
    Column("document", JSON, nullable=False),
    Column("sha256", String(64), nullable=False),
    _ref("issued_by", schema.users.c.id),
    _time("issued_at"),
    Index("statements_operator", "operator_id", "issued_at"),
)

revenue_rules = Table(
    "revenue_rules",
    metadata,
    _seq(),
    Column("id", String(ID_CHARS), nullable=False, unique=True),
    Column("authority_bp", Integer, nullable=False),  # basis points: 1 % is 100
    Column("operator_bp", Integer, nullable=False),
    _text("weighting"),
    _text("reason", limit=TEXT_CHARS),
    _ref("set_by", schema.users.c.id),
    _time("set_at"),
)
"""Every revenue-share rule set the authority decided; the latest (by ``seq``) is in force."""

revenue_reports = Table(
    "revenue_reports",
    metadata,
    Column("id", String(ID_CHARS), primary_key=True),
    _ref("operator_id", schema.organisations.c.id, nullable=True),  # None: every operator
    _text("period"),
    Column("document", JSON, nullable=False),
    Column("sha256", String(64), nullable=False),
    _ref("issued_by", schema.users.c.id),
    _time("issued_at"),
)
