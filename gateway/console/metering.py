"""Metering and billing: the meters of jobs, operators' statements for a period (issued and
read), and the authority's price caps per form of product. Everything goes through
:mod:`gateway.control.meters`, :mod:`gateway.control.statements` and
:mod:`gateway.control.pricing`, the functions behind ``/v1/meters``, ``/v1/statements`` and
``/v1/price-caps``."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from gateway.console import forms
from gateway.console.access import PREFIX, Post, Signed
from gateway.console.pages import render
from gateway.control import identity, meters, pricing, statements
from gateway.control.accounting import ACCOUNTING_TZ, MAX_FEN

router = APIRouter(include_in_schema=False)
SHOWN_METERS = 200


@router.get("/meters")
def meter_list(request: Request, viewer: Signed) -> HTMLResponse:
    """The newest meters of the jobs the viewer may see: rows, CPU, bytes released, ε and δ."""
    found = meters.list_meters(viewer.platform.control, viewer.principal, limit=SHOWN_METERS)
    return render(request, "metering/meters.html", {"meters": found, "shown": SHOWN_METERS})


@router.get("/statements")
def statement_list(request: Request, viewer: Signed) -> HTMLResponse:
    """The statements the viewer may see, newest first, and the form that issues one."""
    control = viewer.platform.control
    found = statements.list_statements(control, viewer.principal)
    organisations = identity.list_organisations(control, viewer.principal)
    context = {
        "statements": found,
        "names": {o.id: o.name for o in organisations},
        "operators": [o for o in organisations if o.kind == identity.OrgKind.OPERATOR],
        "month": control.now().astimezone(ACCOUNTING_TZ).strftime("%Y-%m"),
    }
    return render(request, "metering/statements.html", context)


@router.post("/statements")
def issue(post: Post) -> Response:
    """Issue an operator's statement for a period; the ledger records its SHA-256."""
    found = statements.issue(
        post.viewer.platform.control,
        post.viewer.principal,
        operator_id=forms.text(post.form, "operator_id", max_chars=64),
        period=forms.text(post.form, "period", max_chars=40),
    )
    post.viewer.session.flash = "flash.statement_issued"
    return RedirectResponse(f"{PREFIX}/statements/{found.id}", status_code=303)


@router.get("/statements/{statement_id}")
def statement(request: Request, statement_id: str, viewer: Signed) -> HTMLResponse:
    """One statement: its charges, void ones marked, totals and each yearly maximum."""
    found = statements.get_statement(viewer.platform.control, viewer.principal, statement_id)
    return render(request, "metering/statement.html", {"statement": found})


@router.get("/price-caps")
def cap_list(request: Request, viewer: Signed) -> HTMLResponse:
    """The caps in force per form and unit (published guidance) and, for the authority, the
    form that sets one."""
    context = {
        "caps": pricing.list_caps(viewer.platform.control),
        "forms": pricing.FORMS,
        "units": pricing.UNITS,
        "max_fen": MAX_FEN,
    }
    return render(request, "metering/caps.html", context)


@router.post("/price-caps")
def set_cap(post: Post) -> Response:
    """Set the cap of a form of product per unit; new registrations are held to it at once."""
    form = post.form
    pricing.set_cap(
        post.viewer.platform.control,
        post.viewer.principal,
        form=forms.choice(form, "form", pricing.FORMS),
        unit=forms.choice(form, "unit", pricing.UNITS),
        cap_fen=forms.integer(form, "cap_fen", low=0, high=MAX_FEN),
        reason=forms.text(form, "reason", max_chars=2000),
    )
    post.viewer.session.flash = "flash.cap_set"
    return RedirectResponse(f"{PREFIX}/price-caps", status_code=303)
