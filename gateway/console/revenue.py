"""Revenue: maximum permitted revenues (最高准许收入) per industry authorization and year, and
revenue sharing (收益分配) — the authority's rules and the reports that split each period's net
income between the authority, the operator and the providers. Everything goes through
:mod:`gateway.control.pricing` and :mod:`gateway.control.revenue_share`, the functions behind
``/v1/revenue-limits`` and ``/v1/revenue-share``."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from gateway.console import forms
from gateway.console.access import PREFIX, Post, Signed
from gateway.console.pages import render
from gateway.control import authorizations, identity, pricing, revenue_share
from gateway.control.accounting import ACCOUNTING_TZ, BASIS_POINTS, MAX_FEN
from gateway.control.authorizations import Category

router = APIRouter(include_in_schema=False)
SHARES = f"{PREFIX}/revenue-share"


@router.get("/revenue-limits")
def limit_list(request: Request, viewer: Signed) -> HTMLResponse:
    """Every maximum the viewer may see with what its year has charged and, for the authority,
    the form that sets one on an industry authorization."""
    control = viewer.platform.control
    found = pricing.list_revenue_limits(control, viewer.principal)
    every = authorizations.list_authorizations(control, viewer.principal)
    context = {
        "limits": found,
        "names": {o.id: o.name for o in identity.list_organisations(control, viewer.principal)},
        "industry": [a for a in every if a.category is Category.INDUSTRY and a.status == "active"],
        "year": control.now().astimezone(ACCOUNTING_TZ).year,
        "max_fen": MAX_FEN,
    }
    return render(request, "metering/limits.html", context)


@router.post("/revenue-limits")
def set_limit(post: Post) -> Response:
    """Set an industry authorization's maximum permitted revenue for a year."""
    form = post.form
    pricing.set_revenue_limit(
        post.viewer.platform.control,
        post.viewer.principal,
        authorization_id=forms.text(form, "authorization_id", max_chars=64),
        year=forms.integer(form, "year", low=2000, high=9998),
        max_fen=forms.integer(form, "max_fen", low=0, high=MAX_FEN),
        reason=forms.text(form, "reason", max_chars=2000),
    )
    post.viewer.session.flash = "flash.limit_set"
    return RedirectResponse(f"{PREFIX}/revenue-limits", status_code=303)


@router.get("/revenue-share")
def report_list(request: Request, viewer: Signed) -> HTMLResponse:
    """The rules in force, the reports issued (newest first) and, for the authority, the forms
    that set the rules and issue a report."""
    control = viewer.platform.control
    found = revenue_share.list_reports(control, viewer.principal)
    organisations = identity.list_organisations(control, viewer.principal)
    context = {
        "reports": found,
        "rules": revenue_share.current_rules(control),
        "operators": [o for o in organisations if o.kind == identity.OrgKind.OPERATOR],
        "weightings": revenue_share.WEIGHTINGS,
        "basis_points": BASIS_POINTS,
        "year": control.now().astimezone(ACCOUNTING_TZ).year,
    }
    return render(request, "metering/shares.html", context)


@router.post("/revenue-share/rules")
def set_rules(post: Post) -> Response:
    """Set the authority's and the operators' shares of net income; the providers get the rest."""
    form = post.form
    revenue_share.set_rules(
        post.viewer.platform.control,
        post.viewer.principal,
        authority_bp=forms.integer(form, "authority_bp", low=0, high=BASIS_POINTS),
        operator_bp=forms.integer(form, "operator_bp", low=0, high=BASIS_POINTS),
        weighting=forms.choice(form, "weighting", revenue_share.WEIGHTINGS),
        reason=forms.text(form, "reason", max_chars=2000),
    )
    post.viewer.session.flash = "flash.rules_set"
    return RedirectResponse(SHARES, status_code=303)


@router.post("/revenue-share")
def issue(post: Post) -> Response:
    """Issue the report of a period for every operator, or for one with the costs recognised
    for it."""
    form = post.form
    operator_id = forms.text(form, "operator_id", max_chars=64, required=False) or None
    costs = forms.integer(form, "costs_fen", low=0, high=MAX_FEN, default=0)
    report = revenue_share.issue(
        post.viewer.platform.control,
        post.viewer.principal,
        period=forms.text(form, "period", max_chars=40),
        operator_id=operator_id,
        costs={operator_id: costs} if operator_id and costs else {},
    )
    post.viewer.session.flash = "flash.shares_issued"
    return RedirectResponse(f"{SHARES}/{report.id}", status_code=303)


@router.get("/revenue-share/{report_id}")
def report(request: Request, report_id: str, viewer: Signed) -> HTMLResponse:
    """One report: each operator's gross, costs and net income and every party's share."""
    found = revenue_share.get_report(viewer.platform.control, viewer.principal, report_id)
    names = {o.id: o.name for o in identity.list_organisations(viewer.platform.control, viewer.principal)}
    return render(request, "metering/share.html", {"report": found, "names": names})
