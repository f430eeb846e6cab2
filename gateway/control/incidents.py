"""Security incidents (安全事件): raised by detection (:mod:`gateway.detection`), reported to the
authority within one hour, closed by the authority.

::

    open ─▶ reported ─▶ closed
      └──────────────────▶ closed      (the authority dismisses it, with a reason)

An incident's report is due one hour after it was detected (发生安全事件时…在1小时内报告).
The operator it concerns reports it; the authority may record a report received another way
(a suspended operator's users cannot sign in), and reports the incidents that concern no
operator (failed sign-ins from an unknown address). A report after the deadline is accepted
and marked late; an incident still unreported at its deadline is flagged overdue once by
:func:`flag_overdue`, which the oversight sweep calls. The timeline lists the ledger entries
that triggered the incident and everything done about it since.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Literal

from sqlalchemy import ColumnElement, Connection, RowMapping, insert, select, true, update

from gateway.control.db import ControlPlane
from gateway.control.identity import SEES_ALL, Principal, Role, invisible, require_role
from gateway.control.oversight_schema import incident_events, incidents
from gateway.control.schema import TEXT_CHARS, choice, new_id, text
from gateway.control.webhooks import enqueue
from gateway.errors import Conflict

REPORT_WITHIN = timedelta(hours=1)
ACTOR = "platform:detection"

Severity = Literal["low", "medium", "high"]


class Status(StrEnum):
    """Where an incident stands (see the module docstring)."""

    OPEN = "open"
    REPORTED = "reported"
    CLOSED = "closed"


@dataclass(frozen=True)
class Evidence:
    """One ledger entry counted towards an incident; ``weight`` is how many attempts it stands for."""

    ledger_index: int
    seen_at: datetime
    weight: int
    summary: str


@dataclass(frozen=True)
class TimelineEvent:
    """One line of an incident's timeline: a triggering entry, or something done about it."""

    at: datetime
    kind: str
    actor: str
    summary: str
    ledger_index: int | None


@dataclass(frozen=True)
class Incident:
    """A security incident; ``timeline`` is filled when one incident is read."""

    id: str
    rule: str
    severity: Severity
    subject_key: str
    operator_id: str | None
    summary: str
    status: Status
    signals: int
    first_seen: datetime
    last_seen: datetime
    detected_at: datetime
    report_due_at: datetime
    overdue_at: datetime | None
    reported_by: str | None
    reported_at: datetime | None
    report: str | None
    reported_late: bool | None
    closed_by: str | None
    closed_at: datetime | None
    close_reason: str | None
    timeline: tuple[TimelineEvent, ...] = field(default=())

    def overdue(self, at: datetime) -> bool:
        """Whether the report is missing past its deadline at ``at``."""
        return self.status == "open" and at >= self.report_due_at

    def to_json(self, now: datetime) -> dict[str, Any]:
        """The incident as plain JSON values, with whether it is overdue and the minutes left."""
        data = {k: v.isoformat() if isinstance(v, datetime) else v for k, v in asdict(self).items()}
        data["timeline"] = [{**asdict(e), "at": e.at.isoformat()} for e in self.timeline]
        data["overdue"] = self.overdue(now)
        left = (self.report_due_at - now).total_seconds() / 60
        data["minutes_left"] = round(left, 1) if self.status == "open" else None
        return data


def list_incidents(
    cp: ControlPlane, actor: Principal, *, status: str | None = None, overdue: bool | None = None
) -> list[Incident]:
    """Incidents the actor may see, newest first: every one for the authority and auditors, the
    tenant's own for its operator users. ``overdue`` keeps only those (not) past their deadline."""
    query = select(incidents).where(_readable(actor))
    if status is not None:
        query = query.where(incidents.c.status == choice(Status, "status", status))
    with cp.transaction(write=False) as conn:
        rows = conn.execute(query.order_by(incidents.c.detected_at.desc(), incidents.c.id)).mappings()
        found = [_incident(row) for row in rows]
    now = cp.now()
    return [i for i in found if overdue is None or i.overdue(now) == overdue]


def get_incident(cp: ControlPlane, actor: Principal, incident_id: str) -> Incident:
    """One incident with its timeline; NotFound ``G-TENANT`` if the actor may not see it."""
    with cp.transaction(write=False) as conn:
        return _with_timeline(conn, visible_incident(conn, actor, incident_id))


def report(cp: ControlPlane, actor: Principal, incident_id: str, *, report: str) -> Incident:
    """Report an open incident: its operator's operator users, or the authority on their behalf
    (or for an incident that concerns no operator). A report past the deadline is marked late."""
    body = text("report", report, limit=TEXT_CHARS)
    require_role(actor, {Role.AUTHORITY, Role.OPERATOR}, "reporting an incident")
    with cp.transaction() as conn:
        found = visible_incident(conn, actor, incident_id)
        if actor.role is Role.OPERATOR and found.operator_id is None:
            raise invisible("incident", incident_id)
        if found.status != "open":
            raise Conflict("G-STATE", f"incident {incident_id} is already {found.status}")
        now = cp.now()
        late = now > found.report_due_at
        conn.execute(
            update(incidents)
            .where(incidents.c.id == found.id)
            .values(
                status="reported", reported_by=actor.user_id, reported_at=now, report=body, reported_late=late
            )
        )
        receipt = cp.ledger.append(
            actor.user_id, "incident.reported", found.id, {"late": late, "report": body, "rule": found.rule}
        )
        lateness = f", {_minutes(now - found.report_due_at)} after the deadline" if late else ""
        add_event(conn, found.id, now, "reported", actor.user_id, f"reported{lateness}", receipt.index)
        return _with_timeline(conn, _load(conn, found.id))


def close(cp: ControlPlane, actor: Principal, incident_id: str, *, reason: str) -> Incident:
    """Close an incident (authority only), reported or not, with a reason."""
    why = text("reason", reason, limit=TEXT_CHARS)
    require_role(actor, {Role.AUTHORITY}, "closing an incident")
    with cp.transaction() as conn:
        found = visible_incident(conn, actor, incident_id)
        if found.status == "closed":
            raise Conflict("G-STATE", f"incident {incident_id} is already closed")
        now = cp.now()
        conn.execute(
            update(incidents)
            .where(incidents.c.id == found.id)
            .values(status="closed", closed_by=actor.user_id, closed_at=now, close_reason=why)
        )
        details = {"reason": why, "reported": found.reported_at is not None, "rule": found.rule}
        receipt = cp.ledger.append(actor.user_id, "incident.closed", found.id, details)
        add_event(conn, found.id, now, "closed", actor.user_id, why, receipt.index)
        return _with_timeline(conn, _load(conn, found.id))


def flag_overdue(cp: ControlPlane) -> list[Incident]:
    """Flag, once each, the open incidents whose report deadline has passed (``incident.overdue``),
    and tell the webhooks. Safe to call as often as wanted."""
    now = cp.now()
    with cp.transaction() as conn:
        query = select(incidents).where(
            incidents.c.status == "open", incidents.c.report_due_at <= now, incidents.c.overdue_at.is_(None)
        )
        flagged = [
            _incident(row) for row in conn.execute(query.order_by(incidents.c.report_due_at)).mappings()
        ]
        for found in flagged:
            conn.execute(update(incidents).where(incidents.c.id == found.id).values(overdue_at=now))
            enqueue(conn, now, "incident.overdue", found.id, replace(found, overdue_at=now).to_json(now))
        receipts = cp.ledger.append_many(
            (ACTOR, "incident.overdue", i.id, {"report_due_at": i.report_due_at.isoformat(), "rule": i.rule})
            for i in flagged
        )
        for found, receipt in zip(flagged, receipts, strict=True):
            add_event(conn, found.id, now, "overdue", ACTOR, "no report by the deadline", receipt.index)
    return [replace(i, overdue_at=now) for i in flagged]


# ----------------------------------------------------------------- for detection


def open_incident(
    conn: Connection,
    now: datetime,
    *,
    rule: str,
    severity: Severity,
    subject_key: str,
    operator_id: str | None,
    summary: str,
    evidence: Sequence[Evidence],
) -> Incident:
    """Insert an incident raised from ``evidence`` (in ledger order), with its timeline, and queue
    its webhooks; the caller appends ``incident.raised`` in the same transaction."""
    found = Incident(
        id=new_id("inc"), rule=rule, severity=severity, subject_key=subject_key, operator_id=operator_id,
        summary=summary, status=Status.OPEN, signals=sum(e.weight for e in evidence),
        first_seen=evidence[0].seen_at, last_seen=evidence[-1].seen_at, detected_at=now,
        report_due_at=now + REPORT_WITHIN, overdue_at=None, reported_by=None, reported_at=None,
        report=None, reported_late=None, closed_by=None, closed_at=None, close_reason=None,
    )  # fmt: skip
    conn.execute(insert(incidents).values(**{k: v for k, v in asdict(found).items() if k != "timeline"}))
    for item in evidence:
        add_event(conn, found.id, item.seen_at, "signal", ACTOR, item.summary, item.ledger_index)
    add_event(conn, found.id, now, "raised", ACTOR, summary, None)
    enqueue(conn, now, "incident.raised", found.id, found.to_json(now))
    return found


def ongoing(conn: Connection, rule: str, subject_key: str, since: datetime) -> str | None:
    """The incident of ``rule`` about ``subject_key`` still open or reported whose last signal was
    at ``since`` or later: a burst going on, which new signals join rather than raise another."""
    query = (
        select(incidents.c.id)
        .where(
            incidents.c.rule == rule,
            incidents.c.subject_key == subject_key,
            incidents.c.status != "closed",
            incidents.c.last_seen >= since,
        )
        .order_by(incidents.c.last_seen.desc())
        .limit(1)
    )
    found: str | None = conn.scalar(query)
    return found


def join(conn: Connection, incident_id: str, evidence: Evidence) -> None:
    """Add a signal of a burst going on to its incident."""
    conn.execute(
        update(incidents)
        .where(incidents.c.id == incident_id)
        .values(last_seen=evidence.seen_at, signals=incidents.c.signals + evidence.weight)
    )
    add_event(conn, incident_id, evidence.seen_at, "signal", ACTOR, evidence.summary, evidence.ledger_index)


def add_event(
    conn: Connection,
    incident_id: str,
    at: datetime,
    kind: str,
    actor: str,
    summary: str,
    ledger_index: int | None,
) -> None:
    """Append a line to an incident's timeline."""
    conn.execute(
        insert(incident_events).values(
            incident_id=incident_id, at=at, kind=kind, actor=actor, summary=summary[:TEXT_CHARS],
            ledger_index=ledger_index,
        )
    )  # fmt: skip


def visible_incident(conn: Connection, actor: Principal, incident_id: str) -> Incident:
    """The incident if the actor may see it; NotFound ``G-TENANT`` otherwise."""
    row = (
        conn.execute(select(incidents).where(incidents.c.id == incident_id, _readable(actor)))
        .mappings()
        .first()
    )
    if row is None:
        raise invisible("incident", incident_id)
    return _incident(row)


# ----------------------------------------------------------------- internals


def _readable(actor: Principal) -> ColumnElement[bool]:
    require_role(actor, {*SEES_ALL, Role.OPERATOR}, "reading incidents")
    return true() if actor.role in SEES_ALL else incidents.c.operator_id == actor.tenant


def _load(conn: Connection, incident_id: str) -> Incident:
    return _incident(conn.execute(select(incidents).where(incidents.c.id == incident_id)).mappings().one())


def _with_timeline(conn: Connection, found: Incident) -> Incident:
    rows = conn.execute(
        select(incident_events)
        .where(incident_events.c.incident_id == found.id)
        .order_by(incident_events.c.at, incident_events.c.id)
    ).mappings()
    events = tuple(
        TimelineEvent(r["at"], r["kind"], r["actor"], r["summary"], r["ledger_index"]) for r in rows
    )
    return replace(found, timeline=events)


def _incident(row: RowMapping) -> Incident:
    fields = {name: row[name] for name in Incident.__dataclass_fields__ if name != "timeline"}
    return Incident(**{**fields, "status": Status(row["status"])})


def _minutes(delta: timedelta) -> str:
    return f"{int(delta.total_seconds() // 60)} min"
