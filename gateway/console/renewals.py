"""Renewing authorizations (续期): the authorizations inside their renewal window with the days
left, the operator's application and the authority's decision. Everything goes through
:mod:`gateway.control.renewals`, the functions behind ``/v1/renewals`` and ``/v1/expiring``;
an ended authorization's exit report is on the authority's pages."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from gateway.console import forms
from gateway.console.access import PREFIX, Post, Signed
from gateway.console.pages import render
from gateway.control import Role, identity, renewals

router = APIRouter(prefix="/renewals", include_in_schema=False)
HERE = f"{PREFIX}/renewals"


@router.get("")
def renewal_list(request: Request, viewer: Signed) -> HTMLResponse:
    """Authorizations inside their renewal window, soonest end first, and every application
    the viewer may see, with the forms the viewer's role may use."""
    control = viewer.platform.control
    applications = renewals.list_renewals(control, viewer.principal)
    context = {
        "expiring": renewals.expiring(control, viewer.principal),
        "pending": [r for r in applications if r.status == "pending"],
        "decided": [r for r in reversed(applications) if r.status != "pending"],
        "names": {o.id: o.name for o in identity.list_organisations(control, viewer.principal)},
        "applies": viewer.principal.role is Role.OPERATOR,
    }
    return render(request, "renewals/list.html", context)


@router.post("")
def apply(post: Post) -> Response:
    """Apply to extend one of the operator's authorizations to the date asked for."""
    form = post.form
    ends_at = forms.moment(forms.text(form, "ends_at", max_chars=40), "ends_at")
    assert ends_at is not None  # text() refused an empty field
    renewals.apply(
        post.viewer.platform.control,
        post.viewer.principal,
        forms.text(form, "authorization_id", max_chars=64),
        ends_at=ends_at,
        note=forms.text(form, "note", max_chars=4000),
    )
    post.viewer.session.flash = "flash.renewal_applied"
    return RedirectResponse(HERE, status_code=303)


@router.post("/{renewal_id}/decision")
def decide(renewal_id: str, post: Post) -> Response:
    """Approve (to the date applied for, or the one the authority sets) or reject."""
    form = post.form
    decision = forms.choice(form, "decision", ("approve", "reject"))
    renewals.decide(
        post.viewer.platform.control,
        post.viewer.principal,
        renewal_id,
        approve=decision == "approve",
        reason=forms.text(form, "reason", max_chars=4000),
        ends_at=forms.moment(forms.text(form, "ends_at", max_chars=40, required=False), "ends_at"),
    )
    post.viewer.session.flash = (
        "flash.renewal_approved" if decision == "approve" else "flash.renewal_rejected"
    )
    return RedirectResponse(HERE, status_code=303)
