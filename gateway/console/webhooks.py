"""Webhooks: the authority adds the addresses the platform tells of new incidents, missed
report deadlines and escalated feedback, sees each one's deliveries, and removes it; auditors
read them. Everything goes through :mod:`gateway.control.webhooks`, the functions behind
``/v1/webhooks``."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from gateway.console import forms
from gateway.console.access import PREFIX, Post, Signed, Viewer
from gateway.console.pages import render
from gateway.control import webhooks
from gateway.control.oversight_schema import URL_CHARS

router = APIRouter(prefix="/webhooks", include_in_schema=False)
HERE = f"{PREFIX}/webhooks"
SHOWN = 100
"""Deliveries shown on a webhook's page, newest first."""


@router.get("")
def webhook_list(request: Request, viewer: Signed) -> HTMLResponse:
    """Every webhook, removed ones too, never with its secret; for the authority the forms
    that add and remove."""
    return _listing(request, viewer)


@router.post("")
def add(request: Request, post: Post) -> Response:
    """Add a webhook and show its signing secret on this response only: it is not kept for a
    later page, so the authority copies it now or removes the webhook and adds another."""
    form = post.form
    description = forms.text(form, "description", max_chars=200, required=False)
    hook, secret = webhooks.add(
        post.viewer.platform.control,
        post.viewer.principal,
        url=forms.text(form, "url", max_chars=URL_CHARS),
        events=[str(e) for e in form.getlist("events")],
        description=description or None,
    )
    response = _listing(request, post.viewer, created=(hook, secret), status=201)
    # Keep the secret out of the browser's cache and history.
    response.headers["Cache-Control"] = "no-store"
    return response


@router.post("/{webhook_id}/remove")
def remove(webhook_id: str, post: Post) -> Response:
    """Remove a webhook; deliveries still waiting for it are marked failed."""
    webhooks.remove(post.viewer.platform.control, post.viewer.principal, webhook_id)
    post.viewer.session.flash = "flash.webhook_removed"
    return RedirectResponse(HERE, status_code=303)


@router.get("/{webhook_id}")
def deliveries(request: Request, webhook_id: str, viewer: Signed) -> HTMLResponse:
    """A webhook's latest deliveries and what became of each."""
    control = viewer.platform.control
    found = webhooks.deliveries(control, viewer.principal, webhook_id, limit=SHOWN)
    (hook,) = [h for h in webhooks.list_webhooks(control, viewer.principal) if h.id == webhook_id]
    return render(request, "oversight/webhook.html", {"hook": hook, "deliveries": found})


def _listing(
    request: Request,
    viewer: Viewer,
    *,
    created: tuple[webhooks.Webhook, str] | None = None,
    status: int = 200,
) -> HTMLResponse:
    found = webhooks.list_webhooks(viewer.platform.control, viewer.principal)
    context = {"webhooks": found, "events": webhooks.EVENTS, "created": created}
    return render(request, "oversight/webhooks.html", context, status=status)
