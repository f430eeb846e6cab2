"""Data-quality feedback (数据质量反馈): an operator reports a problem with a dataset, its
provider answers within five working days, and what is not answered in time is escalated
to the authority.

The seeds' rule: for errors, omissions and data that does not meet a scenario's needs the
providing department must deal with it and answer within 5 working days of receiving the
request (池州); providers answer for authenticity, accuracy, timeliness and completeness
(阳泉). Hence the categories in :class:`Category`.

::

    open ─▶ answered ─▶ closed          (the operator confirms the answer)
               │
               └─▶ reopened ─▶ answered …  (the operator is not satisfied: due again in 5 days)

Who may do what:

- an operator user or developer files on a dataset its tenant holds an authorization for
  now (Forbidden ``G-AUTHORIZATION`` otherwise), and confirms or reopens its own tenant's;
- only users of the dataset's provider organisation — the organisation whose name or id
  the catalog gives as the dataset's provider — see and answer its issues (to any other
  provider an issue does not exist: NotFound ``G-TENANT``);
- the authority and auditors see everything.

The due date is the close of the fifth working day after the day of filing (or of
reopening) in the platform's working-day calendar (:mod:`gateway.workdays`).
:func:`escalate_overdue`, which the oversight sweep calls, escalates each issue past its
due date exactly once per due date (``quality.escalated``) and tells the webhooks.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, Connection, RowMapping, insert, select, true, update

from gateway.control.authorizations import covering_authorization
from gateway.control.db import ControlPlane
from gateway.control.identity import SEES_ALL, Principal, Role, invisible, require_role, visible_organisation
from gateway.control.oversight_schema import quality_issues
from gateway.control.schema import TEXT_CHARS, choice, labels, new_id, text
from gateway.control.webhooks import enqueue
from gateway.errors import Conflict, InvalidRequest
from gateway.workdays import WorkCalendar
from sandbox.catalog import Catalog, Dataset
from sandbox.errors import CatalogError

ANSWER_WITHIN_DAYS = 5
ACTOR = "platform:oversight"
FILERS = frozenset({Role.OPERATOR, Role.DEVELOPER})
_UNANSWERED = ("open", "reopened")


class Category(StrEnum):
    """What is wrong with the data."""

    ACCURACY = "accuracy"  # 准确性: wrong values (错误)
    COMPLETENESS = "completeness"  # 完整性: missing rows or values (遗漏)
    TIMELINESS = "timeliness"  # 时效性: out of date, not updated as the catalog promises
    AUTHENTICITY = "authenticity"  # 真实性: not what it claims to be
    FITNESS = "fitness"  # 不满足场景应用需求: does not meet the scenario's needs


class Status(StrEnum):
    """Where an issue stands (see the module docstring)."""

    OPEN = "open"
    ANSWERED = "answered"
    REOPENED = "reopened"
    CLOSED = "closed"


@dataclass(frozen=True)
class QualityIssue:
    """One piece of data-quality feedback and its answer."""

    id: str
    dataset: str
    provider: str
    operator_id: str
    filed_by: str
    category: Category
    columns: tuple[str, ...]
    description: str
    status: Status
    filed_at: datetime
    due_at: datetime
    escalated_at: datetime | None
    answered_by: str | None
    answered_at: datetime | None
    resolution: str | None
    fixed_in_version: str | None
    reopened: int
    reopen_reason: str | None
    closed_by: str | None
    closed_at: datetime | None

    def overdue(self, at: datetime) -> bool:
        """Whether the provider's answer is missing past the due date at ``at``."""
        return self.status in _UNANSWERED and at >= self.due_at

    def to_json(self, now: datetime) -> dict[str, Any]:
        """The issue as plain JSON values, with whether it is overdue now."""
        data = {k: v.isoformat() if isinstance(v, datetime) else v for k, v in asdict(self).items()}
        data["columns"] = list(self.columns)
        data["overdue"] = self.overdue(now)
        return data


def file_issue(
    cp: ControlPlane,
    catalog: Catalog,
    calendar: WorkCalendar,
    actor: Principal,
    *,
    dataset: str,
    category: str,
    description: str,
    columns: list[str] | None = None,
) -> QualityIssue:
    """File feedback on a dataset the actor's tenant is authorized for now; due in five working days."""
    require_role(actor, FILERS, "filing data-quality feedback")
    kind = choice(Category, "category", category)
    body = text("description", description, limit=TEXT_CHARS)
    found = _dataset(catalog, dataset)
    named = labels("columns", columns or [])
    unknown = sorted(set(named) - {c.name for c in found.columns})
    if unknown:
        raise InvalidRequest("G-INPUT", f"dataset {dataset} has no column {', '.join(unknown)}")
    with cp.transaction() as conn:
        now = cp.now()
        covering_authorization(conn, str(actor.tenant), [found.name], now)
        issue = QualityIssue(
            new_id("qi"), found.name, found.provider, str(actor.tenant), actor.user_id, kind, named, body,
            Status.OPEN, now, calendar.deadline(now, ANSWER_WITHIN_DAYS), None, None, None, None, None, 0,
            None, None, None,
        )  # fmt: skip
        conn.execute(insert(quality_issues).values(**{**asdict(issue), "columns": list(named)}))
        details = {
            "dataset": found.name, "provider": found.provider, "operator_id": issue.operator_id,
            "category": str(kind), "columns": list(named), "description": body,
            "due_at": issue.due_at.isoformat(),
        }  # fmt: skip
        cp.ledger.append(actor.user_id, "quality.filed", issue.id, details)
    return issue


def answer(
    cp: ControlPlane, actor: Principal, issue_id: str, *, resolution: str, fixed_in_version: str | None = None
) -> QualityIssue:
    """The provider's answer to an open or reopened issue; one past its due date is marked late."""
    require_role(actor, {Role.PROVIDER}, "answering data-quality feedback")
    why = text("resolution", resolution, limit=TEXT_CHARS)
    version = None if fixed_in_version is None else text("fixed_in_version", fixed_in_version)
    with cp.transaction() as conn:
        issue = _visible(conn, actor, issue_id)
        if issue.status not in _UNANSWERED:
            raise Conflict(
                "G-STATE", f"issue {issue_id} is {issue.status}: only open or reopened issues are answered"
            )
        now = cp.now()
        _set(conn, issue, status=Status.ANSWERED, answered_by=actor.user_id, answered_at=now,
             resolution=why, fixed_in_version=version)  # fmt: skip
        details = {"resolution": why, "fixed_in_version": version, "late": now >= issue.due_at}
        cp.ledger.append(actor.user_id, "quality.answered", issue.id, details)
        return _load(conn, issue.id)


def confirm(cp: ControlPlane, actor: Principal, issue_id: str) -> QualityIssue:
    """The operator accepts the provider's answer; the issue is closed."""
    require_role(actor, FILERS, "confirming an answer")
    with cp.transaction() as conn:
        issue = _answered(conn, actor, issue_id)
        now = cp.now()
        _set(conn, issue, status=Status.CLOSED, closed_by=actor.user_id, closed_at=now)
        cp.ledger.append(actor.user_id, "quality.confirmed", issue.id, {"dataset": issue.dataset})
        return _load(conn, issue.id)


def reopen(
    cp: ControlPlane, calendar: WorkCalendar, actor: Principal, issue_id: str, *, reason: str
) -> QualityIssue:
    """The operator does not accept the answer: the issue is due again five working days from now."""
    require_role(actor, FILERS, "reopening an issue")
    why = text("reason", reason, limit=TEXT_CHARS)
    with cp.transaction() as conn:
        issue = _answered(conn, actor, issue_id)
        now = cp.now()
        due = calendar.deadline(now, ANSWER_WITHIN_DAYS)
        _set(conn, issue, status=Status.REOPENED, due_at=due, escalated_at=None,
             reopened=issue.reopened + 1, reopen_reason=why)  # fmt: skip
        cp.ledger.append(
            actor.user_id, "quality.reopened", issue.id, {"reason": why, "due_at": due.isoformat()}
        )
        return _load(conn, issue.id)


def list_issues(
    cp: ControlPlane,
    actor: Principal,
    *,
    status: str | None = None,
    dataset: str | None = None,
    escalated: bool | None = None,
) -> list[QualityIssue]:
    """Issues the actor may see, newest first; ``escalated`` keeps those (not) escalated."""
    with cp.transaction(write=False) as conn:
        query = select(quality_issues).where(_readable(conn, actor))
        if status is not None:
            query = query.where(quality_issues.c.status == choice(Status, "status", status))
        if dataset is not None:
            query = query.where(quality_issues.c.dataset == dataset)
        if escalated is not None:
            mark = quality_issues.c.escalated_at
            query = query.where(mark.is_not(None) if escalated else mark.is_(None))
        rows = conn.execute(query.order_by(quality_issues.c.filed_at.desc(), quality_issues.c.id))
        return [_issue(row) for row in rows.mappings()]


def get_issue(cp: ControlPlane, actor: Principal, issue_id: str) -> QualityIssue:
    """One issue the actor may see; NotFound ``G-TENANT`` otherwise."""
    with cp.transaction(write=False) as conn:
        return _visible(conn, actor, issue_id)


def sweep(cp: ControlPlane, actor: Principal) -> list[QualityIssue]:
    """:func:`escalate_overdue` on demand: the authority only."""
    require_role(actor, {Role.AUTHORITY}, "escalating overdue feedback")
    return escalate_overdue(cp)


def escalate_overdue(cp: ControlPlane) -> list[QualityIssue]:
    """Escalate to the authority, once per due date, every unanswered issue past it; tell the
    webhooks. Safe to call as often as wanted."""
    now = cp.now()
    with cp.transaction() as conn:
        query = select(quality_issues).where(
            quality_issues.c.status.in_(_UNANSWERED),
            quality_issues.c.due_at <= now,
            quality_issues.c.escalated_at.is_(None),
        )
        rows = conn.execute(query.order_by(quality_issues.c.due_at)).mappings()
        due = [replace(_issue(row), escalated_at=now) for row in rows]
        for issue in due:
            _set(conn, issue, escalated_at=now)
            enqueue(conn, now, "quality.escalated", issue.id, issue.to_json(now))
        cp.ledger.append_many(
            (ACTOR, "quality.escalated", i.id, {"dataset": i.dataset, "provider": i.provider,
                                               "operator_id": i.operator_id, "due_at": i.due_at.isoformat()})
            for i in due
        )  # fmt: skip
    return due


# ----------------------------------------------------------------- internals


def _dataset(catalog: Catalog, name: str) -> Dataset:
    try:
        found = catalog.get(text("dataset", name))
    except CatalogError:
        raise InvalidRequest("G-INPUT", f"no registered dataset is named {name!r}") from None
    if found.extra.get("scenario") or found.extra.get("operator"):
        raise InvalidRequest(
            "G-INPUT",
            f"dataset {name} was derived inside a scenario; file feedback on the datasets it came from",
        )
    return found


def _readable(conn: Connection, actor: Principal) -> ColumnElement[bool]:
    require_role(actor, {*SEES_ALL, *FILERS, Role.PROVIDER}, "reading data-quality feedback")
    if actor.role in SEES_ALL:
        return true()
    if actor.role is Role.PROVIDER:
        org = visible_organisation(conn, actor, actor.organisation_id)
        return quality_issues.c.provider.in_([org.id, org.name])
    return quality_issues.c.operator_id == actor.tenant


def _visible(conn: Connection, actor: Principal, issue_id: str) -> QualityIssue:
    query = select(quality_issues).where(quality_issues.c.id == issue_id, _readable(conn, actor))
    row = conn.execute(query).mappings().first()
    if row is None:
        raise invisible("data-quality issue", issue_id)
    return _issue(row)


def _answered(conn: Connection, actor: Principal, issue_id: str) -> QualityIssue:
    issue = _visible(conn, actor, issue_id)
    if issue.status is not Status.ANSWERED:
        raise Conflict(
            "G-STATE", f"issue {issue_id} is {issue.status}: only an answered issue is confirmed or reopened"
        )
    return issue


def _set(conn: Connection, issue: QualityIssue, **values: Any) -> None:
    conn.execute(update(quality_issues).where(quality_issues.c.id == issue.id).values(**values))


def _load(conn: Connection, issue_id: str) -> QualityIssue:
    return _issue(
        conn.execute(select(quality_issues).where(quality_issues.c.id == issue_id)).mappings().one()
    )


def _issue(row: RowMapping) -> QualityIssue:
    fields = {name: row[name] for name in QualityIssue.__dataclass_fields__}
    return QualityIssue(
        **{
            **fields,
            "category": Category(row["category"]),
            "status": Status(row["status"]),
            "columns": tuple(row["columns"]),
        }
    )
