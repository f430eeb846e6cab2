"""Detection: rules over the ledger and the job records that raise security incidents.

Each rule (:data:`RULES`) counts one kind of signal per subject and raises an incident when
``threshold`` of them fall within ``window`` of each other:

==================== ============================================== ========== ======= =========
rule                 counts (ledger entries read)                   per        window  threshold
==================== ============================================== ========== ======= =========
``D-REFUSAL-BURST``  jobs the query policy refused (``job.refused``  user       10 min  5
                     but for the budget's ``DP-BUDGET``)
``D-DIFFERENCING``   results failing the differencing control: on   user       24 h    3
                     admission (``review.requested``, the gate's
                     report) or at release (``review.return`` of a
                     job the runner returned with ``SDC-DIFFERENCING``)
``D-BUDGET-PROBE``   jobs refused for an exhausted privacy budget   user       1 h     3
                     (``budget.refused``)
``D-SIGN-IN``        failed sign-ins: malformed, unknown or expired address    10 min  10
                     tokens (``access.denied`` with ``G-TOKEN``,
                     and ``access.throttled`` counts)
``D-REVOKED-ACCESS`` requests after a revocation: a revoked token,   operator   1 h     1
                     a deactivated user's token, or a request
                     refused for its authorization or scenario
                     from an operator that has had an
                     authorization revoked or ended
==================== ============================================== ========== ======= =========

The scan (:func:`scan`) reads the ledger from a cursor kept in the control plane, so each
entry is looked at once; it is idempotent and safe to run from several processes (the
cursor is read and moved in the same write transaction). A signal whose subject already
has an incident of the same rule that is not closed, and whose last signal lies within
the window, joins that incident's timeline: one burst is one incident, however many scans
see it. Signals not yet part of an incident wait in ``detection_signals`` until they make
a burst or fall out of its window. An admission whose review item is not readable yet
stops the scan there until it is (or for at most :data:`SETTLE`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Row, delete, func, insert, or_, select, update

from gateway.control import ControlPlane, schema
from gateway.control.incidents import ACTOR, Evidence, Incident, Severity, join, ongoing, open_incident
from gateway.control.oversight_schema import detection_cursor, detection_signals
from ledger import Entry

PAGE = 500
"""Ledger entries judged in one transaction."""
SETTLE = timedelta(minutes=1)
"""How long a scan waits for the review item of an admission it reads before passing it over."""
BUDGET_RULE = "DP-BUDGET"
DIFFERENCING_RULE = "SDC-DIFFERENCING"
_CURSOR = "ledger"

DifferencingCheck = Callable[[str], bool | None]
"""Whether the review gate failed a job's result on the differencing control; None while the
gate does not know the job yet."""


@dataclass(frozen=True)
class Rule:
    """One detection rule: what it counts, per what, and how many within which window."""

    id: str
    counts: str
    per: str
    window: timedelta
    threshold: int
    severity: Severity


RULES: tuple[Rule, ...] = (
    Rule("D-REFUSAL-BURST", "jobs refused by the query policy", "user", timedelta(minutes=10), 5, "medium"),
    Rule(
        "D-DIFFERENCING", "results failing the differencing control", "user", timedelta(hours=24), 3, "high"
    ),
    Rule(
        "D-BUDGET-PROBE",
        "jobs refused for an exhausted privacy budget",
        "user",
        timedelta(hours=1),
        3,
        "high",
    ),
    Rule("D-SIGN-IN", "failed sign-ins", "address", timedelta(minutes=10), 10, "medium"),
    Rule("D-REVOKED-ACCESS", "requests after revocation", "operator", timedelta(hours=1), 1, "high"),
)
"""The detection rules, in the order the module docstring lists them."""
_RULES = {rule.id: rule for rule in RULES}


@dataclass(frozen=True)
class Signal:
    """One ledger entry that a rule counts, for one subject."""

    rule: str
    key: str
    operator_id: str | None
    evidence: Evidence


def scan(cp: ControlPlane, differencing: DifferencingCheck, *, page: int = PAGE) -> list[Incident]:
    """Judge every ledger entry appended since the last scan; returns the incidents raised."""
    raised: list[Incident] = []
    while True:
        found, moved = _scan_page(cp, differencing, page)
        raised.extend(found)
        if not moved:
            return raised


def cursor(cp: ControlPlane) -> int:
    """The index of the first ledger entry the next scan will judge."""
    with cp.transaction(write=False) as conn:
        return _position(conn)


# ----------------------------------------------------------------- one page


def _scan_page(cp: ControlPlane, differencing: DifferencingCheck, page: int) -> tuple[list[Incident], bool]:
    with cp.transaction() as conn:
        start = _position(conn)
        stop = min(cp.ledger.size, start + page)
        look = _Lookups(conn, differencing, cp.now())
        raised: list[Incident] = []
        judged = start
        for entry in cp.ledger.entries(start, stop):
            signals = _signals(entry, look)
            if signals is None:
                break
            for signal in signals:
                incident = count(conn, signal, cp.now())
                if incident is not None:
                    raised.append(incident)
            judged = entry.index + 1
        if judged == start:
            return [], False
        _move(conn, judged, cp.now())
        cp.ledger.append_many((ACTOR, "incident.raised", i.id, _raised(i)) for i in raised)
    return raised, True


def count(conn: Connection, signal: Signal, now: datetime) -> Incident | None:
    """Add a signal to its burst; returns the incident it raised, if it raised one."""
    rule = _RULES[signal.rule]
    since = signal.evidence.seen_at - rule.window
    going = ongoing(conn, rule.id, signal.key, since)
    if going is not None:
        join(conn, going, signal.evidence)
        return None
    where = (detection_signals.c.rule == rule.id, detection_signals.c.subject_key == signal.key)
    conn.execute(delete(detection_signals).where(*where, detection_signals.c.seen_at < since))
    conn.execute(
        insert(detection_signals).values(
            rule=rule.id, subject_key=signal.key, operator_id=signal.operator_id,
            ledger_index=signal.evidence.ledger_index, seen_at=signal.evidence.seen_at,
            weight=signal.evidence.weight, summary=signal.evidence.summary,
        )
    )  # fmt: skip
    total = conn.scalar(select(func.sum(detection_signals.c.weight)).where(*where)) or 0
    if total < rule.threshold:
        return None
    rows = conn.execute(select(detection_signals).where(*where).order_by(detection_signals.c.ledger_index))
    evidence = [Evidence(r.ledger_index, r.seen_at, r.weight, r.summary) for r in rows]
    conn.execute(delete(detection_signals).where(*where))
    summary = f"{rule.counts} from {rule.per} {signal.key}: {total} within {_span(rule.window)}"
    return open_incident(
        conn, now, rule=rule.id, severity=rule.severity, subject_key=signal.key,
        operator_id=signal.operator_id, summary=summary, evidence=evidence,
    )  # fmt: skip


# ----------------------------------------------------------------- what an entry signals


class _Lookups:
    """What judging an entry needs from the control plane and the review gate, cached per page."""

    def __init__(self, conn: Connection, differencing: DifferencingCheck, now: datetime) -> None:
        self.conn, self.differencing, self.now = conn, differencing, now
        self._tenants: dict[str, str | None] = {}

    def tenant(self, user_id: str) -> str | None:
        """The operator organisation a user works for (its own, or its partner organisation's)."""
        if user_id not in self._tenants:
            orgs = schema.organisations.c
            row = self.conn.execute(
                select(orgs.id, orgs.kind, orgs.operator_id)
                .join(schema.users, schema.users.c.organisation_id == orgs.id)
                .where(schema.users.c.id == user_id)
            ).first()
            tenant = None if row is None else {"operator": row.id, "partner": row.operator_id}.get(row.kind)
            self._tenants[user_id] = tenant
        return self._tenants[user_id]

    def job(self, job_id: str) -> Row[Any] | None:
        return self.conn.execute(select(schema.jobs).where(schema.jobs.c.id == job_id)).first()

    def lost_authorization(self, operator_id: str) -> bool:
        """Whether the operator has had an authorization revoked, or one whose term ended."""
        grants = schema.authorizations.c
        query = select(grants.id).where(
            grants.operator_id == operator_id, or_(grants.status == "revoked", grants.ends_at <= self.now)
        )
        return self.conn.scalar(query.limit(1)) is not None


def _signals(entry: Entry, look: _Lookups) -> list[Signal] | None:
    """The signals one ledger entry gives; None if it cannot be judged yet."""
    handler = _HANDLERS.get(entry.action)
    return [] if handler is None else handler(entry, look)


def _refused(entry: Entry, look: _Lookups) -> list[Signal] | None:
    rule = entry.details.get("rule")
    if rule == BUDGET_RULE:  # D-BUDGET-PROBE counts these, from budget.refused
        return []
    return [
        _signal(
            "D-REFUSAL-BURST",
            entry.actor,
            look.tenant(entry.actor),
            entry,
            f"job {entry.subject} refused by {rule}",
        )
    ]


def _budget(entry: Entry, look: _Lookups) -> list[Signal] | None:
    dataset = entry.details.get("dataset")
    summary = f"job {entry.subject} refused: the privacy budget of {dataset} is spent"
    return [_signal("D-BUDGET-PROBE", entry.actor, look.tenant(entry.actor), entry, summary)]


def _admitted(entry: Entry, look: _Lookups) -> list[Signal] | None:
    if entry.details.get("worst_check") == "pass":
        return []
    failed = look.differencing(entry.subject)
    if failed is None:
        return None if _recent(entry) else []
    if not failed:
        return []
    summary = f"result of job {entry.subject} fails the differencing control against earlier releases"
    return [_signal("D-DIFFERENCING", entry.actor, look.tenant(entry.actor), entry, summary)]


def _returned(entry: Entry, look: _Lookups) -> list[Signal] | None:
    job = look.job(entry.subject)
    if job is None:
        return []
    if job.rule != DIFFERENCING_RULE:
        # The runner records the return before it moves the job: wait for the move.
        return None if job.status == "approved" and _recent(entry) else []
    summary = f"release of job {entry.subject} refused: it now differences with a later release"
    return [_signal("D-DIFFERENCING", job.submitter_id, job.operator_id, entry, summary)]


def _denied(entry: Entry, look: _Lookups) -> list[Signal] | None:
    details, rule = entry.details, entry.details.get("rule")
    if rule == "G-TOKEN":
        kind, address = details.get("kind"), str(details.get("address") or "unknown")
        operator = details.get("operator_id")
        if kind in ("malformed", "unknown", "expired"):
            summary = f"{kind} token from {address} on {details.get('method')} {entry.subject}"
            return [_signal("D-SIGN-IN", address, None, entry, summary)]
        if kind in ("revoked", "deactivated"):
            whose = operator or details.get("user_id") or address
            summary = f"{kind} token {details.get('token_id')} used from {address} on {entry.subject}"
            return [_signal("D-REVOKED-ACCESS", str(whose), operator, entry, summary)]
        return []
    if rule in ("G-AUTHORIZATION", "G-SCENARIO"):
        tenant = look.tenant(entry.actor)
        if tenant is not None and look.lost_authorization(tenant):
            summary = f"{entry.actor} refused by {rule} on {details.get('method')} {entry.subject}"
            return [_signal("D-REVOKED-ACCESS", tenant, tenant, entry, summary)]
    return []


def _throttled(entry: Entry, look: _Lookups) -> list[Signal] | None:
    address, count = entry.details.get("address"), int(entry.details.get("suppressed", 0))
    if not address or count < 1:  # a suspended operator's user's refusals are no failed sign-ins
        return []
    summary = f"{count} more failed sign-ins from {address}, counted but not recorded one by one"
    return [_signal("D-SIGN-IN", str(address), None, entry, summary, weight=count)]


_HANDLERS: dict[str, Callable[[Entry, _Lookups], list[Signal] | None]] = {
    "job.refused": _refused,
    "budget.refused": _budget,
    "review.requested": _admitted,
    "review.return": _returned,
    "access.denied": _denied,
    "access.throttled": _throttled,
}


def _signal(
    rule: str, key: str, operator_id: str | None, entry: Entry, summary: str, *, weight: int = 1
) -> Signal:
    return Signal(rule, key, operator_id, Evidence(entry.index, entry_time(entry), weight, summary))


def entry_time(entry: Entry) -> datetime:
    """When a ledger entry was appended."""
    return datetime.fromisoformat(entry.time).astimezone(UTC)


def _recent(entry: Entry) -> bool:
    # Ledger times are the wall clock's, so this compares with the wall clock, not the plane's.
    return datetime.now(UTC) - entry_time(entry) < SETTLE


# ----------------------------------------------------------------- the cursor


def _position(conn: Connection) -> int:
    found = conn.scalar(select(detection_cursor.c.position).where(detection_cursor.c.name == _CURSOR))
    return int(found or 0)


def _move(conn: Connection, position: int, now: datetime) -> None:
    done = conn.execute(
        update(detection_cursor)
        .where(detection_cursor.c.name == _CURSOR)
        .values(position=position, updated_at=now)
    )
    if not done.rowcount:
        conn.execute(insert(detection_cursor).values(name=_CURSOR, position=position, updated_at=now))


def _raised(incident: Incident) -> dict[str, Any]:
    return {
        "rule": incident.rule,
        "severity": incident.severity,
        "subject_key": incident.subject_key,
        "operator_id": incident.operator_id,
        "signals": incident.signals,
        "report_due_at": incident.report_due_at.isoformat(),
    }


def _span(window: timedelta) -> str:
    minutes = int(window.total_seconds() // 60)
    return f"{minutes // 60} h" if minutes % 60 == 0 else f"{minutes} min"
