"""The oversight sweep: one pass of everything the platform watches on its own.

:func:`oversee` scans the ledger for incidents (:mod:`gateway.detection`), flags incidents
whose report deadline passed (:func:`~gateway.control.incidents.flag_overdue`) and
escalates data-quality feedback past its due date
(:func:`~gateway.control.quality.escalate_overdue`). Each step is idempotent, so the sweep
may run as often as wanted and from several processes: the job runner runs it on a timer
and then sends the webhooks (:func:`gateway.notify.deliver_due`); ``POST /v1/incidents/scan``
runs it on demand but never sends, so no request waits on a receiver.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gateway.control import ControlPlane, Principal, Role
from gateway.control.identity import require_role
from gateway.control.incidents import flag_overdue
from gateway.control.quality import escalate_overdue
from gateway.detection import DIFFERENCING_RULE, DifferencingCheck, scan
from outbound_review import Gate, ReviewError

if TYPE_CHECKING:
    from gateway.platform import Platform


@dataclass(frozen=True)
class Oversight:
    """What one sweep did: ids of the incidents raised and flagged overdue, and of the
    data-quality issues escalated."""

    incidents_raised: tuple[str, ...]
    incidents_overdue: tuple[str, ...]
    quality_escalated: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        """The sweep as plain JSON values."""
        return {
            "incidents_raised": list(self.incidents_raised),
            "incidents_overdue": list(self.incidents_overdue),
            "quality_escalated": list(self.quality_escalated),
        }


def oversee(cp: ControlPlane, gate: Gate) -> Oversight:
    """Detect, flag missed report deadlines, escalate overdue feedback."""
    raised = scan(cp, gate_differencing(gate))
    overdue = flag_overdue(cp)
    escalated = escalate_overdue(cp)
    return Oversight(
        tuple(i.id for i in raised), tuple(i.id for i in overdue), tuple(i.id for i in escalated)
    )


def scan_now(platform: Platform, principal: Principal) -> Oversight:
    """The authority's sweep on demand, for the API and the console alike: the webhooks are
    left to the job runner, so the caller does not wait on their receivers."""
    require_role(principal, {Role.AUTHORITY}, "scanning for incidents")
    # Throttled sign-in refusals are only counted in memory until flushed; detection reads the ledger.
    platform.signins.flush()
    return oversee(platform.control, platform.gate)


def gate_differencing(gate: Gate) -> DifferencingCheck:
    """Whether the gate's report on a job fails the differencing control; None if it has none yet."""

    def check(job_id: str) -> bool | None:
        try:
            report = gate.report(job_id)
        except ReviewError:
            return None
        return any(o.rule == DIFFERENCING_RULE and o.outcome == "fail" for o in report.outcomes)

    return check
