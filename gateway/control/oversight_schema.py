"""The tables of schema version 3: data-quality feedback, security incidents and their
detection, operator suspensions, and webhooks with their delivery outbox; and the one
lookup authentication makes on them (:func:`suspended_since`).

They live in their own :data:`metadata`, created by migration 3 alone, so that version 1
stays exactly the tables it first shipped with. Foreign keys point at version 1's tables
through their column objects.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Connection,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    select,
)

from gateway.control.schema import ID_CHARS, NAME_CHARS, TEXT_CHARS, UtcDateTime, organisations, users

URL_CHARS = 2000
metadata = MetaData()


def _id() -> Column[str]:
    return Column("id", String(ID_CHARS), primary_key=True)


def _org(name: str, *, nullable: bool = False) -> Column[str]:
    return Column(name, String(ID_CHARS), ForeignKey(organisations.c.id), nullable=nullable)


def _user(name: str, *, nullable: bool = False) -> Column[str]:
    return Column(name, String(ID_CHARS), ForeignKey(users.c.id), nullable=nullable)


def _text(name: str, *, nullable: bool = False, limit: int = NAME_CHARS) -> Column[str]:
    return Column(name, String(limit), nullable=nullable)


def _time(name: str, *, nullable: bool = False) -> Column[datetime]:
    return Column(name, UtcDateTime(), nullable=nullable)


quality_issues = Table(
    "quality_issues",
    metadata,
    _id(),
    _text("dataset"),
    _text("provider"),  # the catalog's provider of the dataset when the issue was filed
    _org("operator_id"),
    _user("filed_by"),
    _text("category"),
    Column("columns", JSON, nullable=False),
    _text("description", limit=TEXT_CHARS),
    _text("status"),
    _time("filed_at"),
    _time("due_at"),
    _time("escalated_at", nullable=True),
    _user("answered_by", nullable=True),
    _time("answered_at", nullable=True),
    _text("resolution", nullable=True, limit=TEXT_CHARS),
    _text("fixed_in_version", nullable=True),
    Column("reopened", Integer, nullable=False),
    _text("reopen_reason", nullable=True, limit=TEXT_CHARS),
    _user("closed_by", nullable=True),
    _time("closed_at", nullable=True),
    Index("quality_operator", "operator_id", "status"),
    Index("quality_provider", "provider", "status"),
    Index("quality_due", "status", "due_at"),
)

incidents = Table(
    "incidents",
    metadata,
    _id(),
    _text("rule"),
    _text("severity"),
    _text("subject_key"),  # whose signals: a user id, an operator id or a client address
    _org("operator_id", nullable=True),
    _text("summary", limit=TEXT_CHARS),
    _text("status"),
    Column("signals", Integer, nullable=False),
    _time("first_seen"),
    _time("last_seen"),
    _time("detected_at"),
    _time("report_due_at"),
    _time("overdue_at", nullable=True),
    _user("reported_by", nullable=True),
    _time("reported_at", nullable=True),
    _text("report", nullable=True, limit=TEXT_CHARS),
    Column("reported_late", Boolean, nullable=True),
    _user("closed_by", nullable=True),
    _time("closed_at", nullable=True),
    _text("close_reason", nullable=True, limit=TEXT_CHARS),
    Index("incidents_burst", "rule", "subject_key", "status"),
    Index("incidents_operator", "operator_id", "status"),
    Index("incidents_due", "status", "report_due_at"),
)

incident_events = Table(
    "incident_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("incident_id", String(ID_CHARS), ForeignKey(incidents.c.id), nullable=False),
    _time("at"),
    _text("kind"),
    _text("actor"),
    Column("ledger_index", Integer, nullable=True),
    _text("summary", limit=TEXT_CHARS),
    Index("incident_events_incident", "incident_id"),
)

detection_signals = Table(
    "detection_signals",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    _text("rule"),
    _text("subject_key"),
    _text("operator_id", nullable=True),
    Column("ledger_index", Integer, nullable=False),
    _time("seen_at"),
    Column("weight", Integer, nullable=False),  # the failures one ledger entry stands for
    _text("summary", limit=TEXT_CHARS),
    Index("detection_signals_burst", "rule", "subject_key"),
)

detection_cursor = Table(
    "detection_cursor",
    metadata,
    Column("name", String(ID_CHARS), primary_key=True),
    Column("position", Integer, nullable=False),
    _time("updated_at"),
)

suspensions = Table(
    "suspensions",
    metadata,
    _id(),
    _org("operator_id"),
    _text("reason", limit=TEXT_CHARS),
    Column("incident_id", String(ID_CHARS), ForeignKey(incidents.c.id), nullable=True),
    _user("suspended_by"),
    _time("suspended_at"),
    _user("reinstated_by", nullable=True),
    _time("reinstated_at", nullable=True),
    _text("reinstate_reason", nullable=True, limit=TEXT_CHARS),
)
# At most one suspension of an operator is in force.
Index(
    "suspensions_in_force",
    suspensions.c.operator_id,
    unique=True,
    sqlite_where=suspensions.c.reinstated_at.is_(None),
    postgresql_where=suspensions.c.reinstated_at.is_(None),
)

webhooks = Table(
    "webhooks",
    metadata,
    _id(),
    _text("url", limit=URL_CHARS),
    Column("events", JSON, nullable=False),
    Column("secret", String(64), nullable=False),  # the HMAC key, shared with the receiver
    _text("description", nullable=True),
    _user("created_by"),
    _time("created_at"),
    _user("removed_by", nullable=True),
    _time("removed_at", nullable=True),
)

webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    _id(),
    Column("webhook_id", String(ID_CHARS), ForeignKey(webhooks.c.id), nullable=False),
    _text("event"),
    _text("subject"),
    Column("payload", JSON, nullable=False),
    _text("status"),
    Column("attempts", Integer, nullable=False),
    _time("next_attempt_at", nullable=True),
    Column("response_status", Integer, nullable=True),
    _text("last_error", nullable=True, limit=TEXT_CHARS),
    _time("created_at"),
    _time("finished_at", nullable=True),
    Index("webhook_deliveries_due", "status", "next_attempt_at"),
    Index("webhook_deliveries_webhook", "webhook_id"),
)


def suspended_since(conn: Connection, operator_id: str) -> datetime | None:
    """When the suspension of ``operator_id`` in force began; None if it is not suspended."""
    query = select(suspensions.c.suspended_at).where(
        suspensions.c.operator_id == operator_id, suspensions.c.reinstated_at.is_(None)
    )
    since: datetime | None = conn.scalar(query)
    return since


def create_tables(conn: Connection) -> None:
    """Migration 3: these tables as first released (a later change ships as a new migration)."""
    metadata.create_all(conn)
