"""The products and services list (数据产品和服务清单): an operator registers its products,
changes their prices and withdraws them; the authority approves (with an optional lower cap)
or rejects, and suspends or resumes. Everything goes through
:mod:`gateway.control.products`, the functions behind ``/v1/products``; the public list is
:mod:`gateway.console.public`'s."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from gateway.console import forms
from gateway.console.access import PREFIX, Post, Signed
from gateway.console.pages import render
from gateway.control import Role, products, scenarios
from gateway.control.accounting import MAX_FEN
from gateway.control.pricing import FORMS, UNITS

router = APIRouter(prefix="/products", include_in_schema=False)
HERE = f"{PREFIX}/products"
STATUS_FLASH = {
    "suspended": "flash.product_suspended",
    "approved": "flash.product_resumed",
    "withdrawn": "flash.product_withdrawn",
}


@router.get("")
def product_list(request: Request, viewer: Signed) -> HTMLResponse:
    """The products the viewer may see (the tenant's own, or every one for the authority and
    auditors), with the forms the viewer's role may use on them."""
    found = products.list_products(viewer.platform.control, viewer.principal)
    running = []
    if viewer.principal.role is Role.OPERATOR:
        every = scenarios.list_scenarios(viewer.platform.control, viewer.principal)
        running = [s for s in every if s.status == "approved"]
    context = {"products": found, "scenarios": running, "forms": FORMS, "units": UNITS, "max_fen": MAX_FEN}
    return render(request, "products/list.html", context)


@router.post("")
def register(post: Post) -> Response:
    """Register a product under one of the operator's approved scenarios."""
    form = post.form
    products.register(
        post.viewer.platform.control,
        post.viewer.principal,
        scenario_id=forms.text(form, "scenario_id", max_chars=64),
        name=forms.text(form, "name", max_chars=200),
        description=forms.text(form, "description", max_chars=4000),
        usage_scope=forms.text(form, "usage_scope", max_chars=4000),
        form=forms.choice(form, "form", FORMS),
        category=forms.choice(form, "category", ("public_welfare", "industry")),
        unit=forms.choice(form, "unit", UNITS),
        price_fen=forms.integer(form, "price_fen", low=0, high=MAX_FEN, default=0),
    )
    post.viewer.session.flash = "flash.product_registered"
    return RedirectResponse(HERE, status_code=303)


@router.post("/{product_id}/decision")
def decide(product_id: str, post: Post) -> Response:
    """Approve (issuing the registration code) or reject a pending product."""
    form = post.form
    decision = forms.choice(form, "decision", ("approve", "reject"))
    # An empty cap leaves the product at the cap for its form and unit.
    lowered = forms.text(form, "cap_fen", max_chars=20, required=False)
    products.decide(
        post.viewer.platform.control,
        post.viewer.principal,
        product_id,
        approve=decision == "approve",
        reason=forms.text(form, "reason", max_chars=2000),
        cap_fen=forms.integer(form, "cap_fen", low=0, high=MAX_FEN) if lowered else None,
    )
    post.viewer.session.flash = (
        "flash.product_approved" if decision == "approve" else "flash.product_rejected"
    )
    return RedirectResponse(HERE, status_code=303)


@router.post("/{product_id}/price")
def price(product_id: str, post: Post) -> Response:
    """Change an industry product's price; the service holds it to the cap."""
    products.change_price(
        post.viewer.platform.control,
        post.viewer.principal,
        product_id,
        price_fen=forms.integer(post.form, "price_fen", low=0, high=MAX_FEN),
        reason=forms.text(post.form, "reason", max_chars=2000),
    )
    post.viewer.session.flash = "flash.product_priced"
    return RedirectResponse(HERE, status_code=303)


@router.post("/{product_id}/status")
def status(product_id: str, post: Post) -> Response:
    """Suspend an approved product or resume a suspended one (the authority's), or withdraw
    one (its operator's; the service keeps a suspended product for the authority to withdraw)."""
    target = forms.choice(post.form, "status", STATUS_FLASH)
    products.set_status(
        post.viewer.platform.control,
        post.viewer.principal,
        product_id,
        status=target,
        reason=forms.text(post.form, "reason", max_chars=2000),
    )
    post.viewer.session.flash = STATUS_FLASH[target]
    return RedirectResponse(HERE, status_code=303)
