"""The annual evaluation (年度评估): an operator's report for a year and the outcomes recorded.
The authority reads any operator's report and records pass, rectify or fail with a reason;
auditors read them; an operator reads its own. Everything goes through
:mod:`gateway.evaluation`, the functions behind ``/v1/evaluations``."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from gateway import evaluation
from gateway.console import forms
from gateway.console.access import PREFIX, Post, Signed
from gateway.console.pages import render
from gateway.control import identity
from gateway.control.accounting import ACCOUNTING_TZ

router = APIRouter(prefix="/evaluations", include_in_schema=False)
HERE = f"{PREFIX}/evaluations"
OUTCOMES = ("pass", "rectify", "fail")


@router.get("")
def evaluation_list(request: Request, viewer: Signed) -> HTMLResponse:
    """The outcomes the viewer may see, newest first, and the form that opens a year's report."""
    found = evaluation.list_evaluations(viewer.platform, viewer.principal)
    organisations = identity.list_organisations(viewer.platform.control, viewer.principal)
    context = {
        "evaluations": list(reversed(found)),
        "names": {o.id: o.name for o in organisations},
        "operators": [o for o in organisations if o.kind == identity.OrgKind.OPERATOR],
        "year": viewer.platform.control.now().astimezone(ACCOUNTING_TZ).year,
    }
    return render(request, "evaluations/list.html", context)


@router.get("/report")
def report(
    request: Request,
    viewer: Signed,
    operator_id: Annotated[str, Query(min_length=1, max_length=64)],
    year: Annotated[int, Query(ge=2000, le=2200)],
) -> HTMLResponse:
    """An operator's report for a year, the outcomes already recorded for it and, for the
    authority, the form that records the next."""
    found = evaluation.report(viewer.platform, viewer.principal, operator_id, year)
    recorded = [
        e
        for e in evaluation.list_evaluations(viewer.platform, viewer.principal)
        if e.operator_id == operator_id and e.year == year
    ]
    context = {"report": found, "recorded": recorded, "outcomes": OUTCOMES}
    return render(request, "evaluations/report.html", context)


@router.post("")
def record(post: Post) -> Response:
    """Record the outcome of an operator's year with its reason; a fail or a second rectify
    ends in the operator's exit, as the service decides."""
    form = post.form
    operator_id = forms.text(form, "operator_id", max_chars=64)
    year = forms.integer(form, "year", low=2000, high=2200)
    evaluation.record(
        post.viewer.platform,
        post.viewer.principal,
        operator_id,
        year,
        outcome=forms.choice(form, "outcome", OUTCOMES),
        reason=forms.text(form, "reason", max_chars=4000),
    )
    post.viewer.session.flash = "flash.evaluated"
    query = urlencode({"operator_id": operator_id, "year": year})
    return RedirectResponse(f"{HERE}/report?{query}", status_code=303)
