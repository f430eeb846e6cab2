"""Security incidents (安全事件): the incidents detection raised with the minutes left to report
each (or how late it is), the operator's report, the authority's report made another way
and its closing, the detection rules and the authority's scan on demand, and the
authority's suspension and reinstatement of an operator. Everything goes through
:mod:`gateway.control.incidents`, :mod:`gateway.oversight` and
:mod:`gateway.control.suspensions`, the functions behind ``/v1/incidents`` and
``/v1/operators``."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from gateway.console import forms
from gateway.console.access import PREFIX, Post, Signed
from gateway.console.pages import render
from gateway.control import Role, identity, incidents, suspensions
from gateway.detection import RULES
from gateway.oversight import scan_now

router = APIRouter(prefix="/incidents", include_in_schema=False)
HERE = f"{PREFIX}/incidents"


@router.get("")
def incident_list(request: Request, viewer: Signed) -> HTMLResponse:
    """Incidents the viewer may see, open ones first; for the authority and auditors also the
    detection rules and the suspensions, and for the authority the forms that scan, suspend
    and reinstate."""
    control = viewer.platform.control
    found = incidents.list_incidents(control, viewer.principal)
    now = control.now()
    overseer = viewer.principal.role in identity.SEES_ALL
    organisations = identity.list_organisations(control, viewer.principal)
    context = {
        "open": [(i, (i.report_due_at - now).total_seconds() // 60) for i in found if i.status == "open"],
        "others": [i for i in found if i.status != "open"],
        "now": now,
        "suspensions": suspensions.list_suspensions(control, viewer.principal) if overseer else [],
        # As GET /v1/incidents/rules, the rules are for those who see every incident.
        "rules": [(r, int(r.window.total_seconds()) // 60) for r in RULES] if overseer else [],
        "names": {o.id: o.name for o in organisations},
        "operators": [o for o in organisations if o.kind == identity.OrgKind.OPERATOR],
        "reports": viewer.principal.role in (Role.AUTHORITY, Role.OPERATOR),
    }
    return render(request, "oversight/incidents.html", context)


@router.post("/scan")
def scan(post: Post) -> Response:
    """Run the oversight sweep now, as ``POST /v1/incidents/scan`` does: detection over the
    ledger, overdue reports, overdue feedback (the authority's). The webhooks are left to the
    job runner, so the page does not wait on their receivers."""
    viewer = post.viewer
    scan_now(viewer.platform, viewer.principal)
    viewer.session.flash = "flash.incidents_scanned"
    return RedirectResponse(HERE, status_code=303)


@router.post("/{incident_id}/report")
def report(incident_id: str, post: Post) -> Response:
    """Report an open incident; one past its deadline is accepted and marked late."""
    body = forms.text(post.form, "report", max_chars=4000)
    incidents.report(post.viewer.platform.control, post.viewer.principal, incident_id, report=body)
    post.viewer.session.flash = "flash.incident_reported"
    return RedirectResponse(HERE, status_code=303)


@router.post("/{incident_id}/close")
def close(incident_id: str, post: Post) -> Response:
    """Close an incident, reported or not, with the reason."""
    reason = forms.text(post.form, "reason", max_chars=4000)
    incidents.close(post.viewer.platform.control, post.viewer.principal, incident_id, reason=reason)
    post.viewer.session.flash = "flash.incident_closed"
    return RedirectResponse(HERE, status_code=303)


@router.post("/suspensions")
def suspend(post: Post) -> Response:
    """Suspend an operator, for an incident if one is named: its users are refused until it is
    reinstated."""
    form = post.form
    incident_id = forms.text(form, "incident_id", max_chars=64, required=False)
    suspensions.suspend(
        post.viewer.platform.control,
        post.viewer.principal,
        forms.text(form, "operator_id", max_chars=64),
        reason=forms.text(form, "reason", max_chars=4000),
        incident_id=incident_id or None,
    )
    post.viewer.session.flash = "flash.operator_suspended"
    return RedirectResponse(HERE, status_code=303)


@router.post("/suspensions/{operator_id}/reinstate")
def reinstate(operator_id: str, post: Post) -> Response:
    """Reinstate a suspended operator; its queued jobs run again."""
    reason = forms.text(post.form, "reason", max_chars=4000)
    suspensions.reinstate(post.viewer.platform.control, post.viewer.principal, operator_id, reason=reason)
    post.viewer.platform.wake()
    post.viewer.session.flash = "flash.operator_reinstated"
    return RedirectResponse(HERE, status_code=303)
