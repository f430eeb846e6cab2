"""Data-quality feedback (数据质量反馈): operators and developers file it on a dataset and see
each item's due date; the dataset's provider answers within five working days; the filer
accepts the answer or reopens the item; the authority sees what was escalated and may run
the escalation at once. Everything goes through :mod:`gateway.control.quality`, the
functions behind ``/v1/quality``."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from gateway import datasets
from gateway.console import forms
from gateway.console.access import PREFIX, Post, Signed
from gateway.console.pages import render
from gateway.control import quality
from gateway.control.quality import FILERS, Category

router = APIRouter(prefix="/quality", include_in_schema=False)
HERE = f"{PREFIX}/quality"


@router.get("")
def issue_list(request: Request, viewer: Signed) -> HTMLResponse:
    """The feedback the viewer may see, escalated items first, newest first within each."""
    found = quality.list_issues(viewer.platform.control, viewer.principal)
    files = viewer.principal.role in FILERS
    context = {
        "escalated": [i for i in found if i.escalated_at is not None],
        "others": [i for i in found if i.escalated_at is None],
        "now": viewer.platform.control.now(),
        "files": files,
        "datasets": datasets.list_datasets(viewer.platform, viewer.principal) if files else [],
        "categories": [str(c) for c in Category],
    }
    return render(request, "oversight/quality.html", context)


@router.post("")
def file_issue(post: Post) -> Response:
    """File feedback on a dataset the tenant is authorized for; due in five working days."""
    form = post.form
    columns = forms.text(form, "columns", max_chars=4000, required=False)
    services = post.viewer.platform
    quality.file_issue(
        services.control,
        services.catalog,
        services.calendar,
        post.viewer.principal,
        dataset=forms.text(form, "dataset", max_chars=200),
        category=forms.choice(form, "category", [str(c) for c in Category]),
        description=forms.text(form, "description", max_chars=4000),
        columns=[c.strip() for c in columns.split(",") if c.strip()],
    )
    post.viewer.session.flash = "flash.quality_filed"
    return RedirectResponse(HERE, status_code=303)


@router.post("/sweep")
def sweep(post: Post) -> Response:
    """Escalate feedback past its due date now, as the job runner also does on its own (the
    authority's)."""
    quality.sweep(post.viewer.platform.control, post.viewer.principal)
    post.viewer.session.flash = "flash.quality_swept"
    return RedirectResponse(HERE, status_code=303)


@router.post("/{issue_id}/answer")
def answer(issue_id: str, post: Post) -> Response:
    """The provider's answer, with the version of the data that fixes it if there is one."""
    version = forms.text(post.form, "fixed_in_version", max_chars=200, required=False)
    quality.answer(
        post.viewer.platform.control,
        post.viewer.principal,
        issue_id,
        resolution=forms.text(post.form, "resolution", max_chars=4000),
        fixed_in_version=version or None,
    )
    post.viewer.session.flash = "flash.quality_answered"
    return RedirectResponse(HERE, status_code=303)


@router.post("/{issue_id}/confirm")
def confirm(issue_id: str, post: Post) -> Response:
    """Accept the provider's answer, closing the item."""
    quality.confirm(post.viewer.platform.control, post.viewer.principal, issue_id)
    post.viewer.session.flash = "flash.quality_confirmed"
    return RedirectResponse(HERE, status_code=303)


@router.post("/{issue_id}/reopen")
def reopen(issue_id: str, post: Post) -> Response:
    """Reject the provider's answer: the item is due again in five working days."""
    services = post.viewer.platform
    reason = forms.text(post.form, "reason", max_chars=4000)
    quality.reopen(services.control, services.calendar, post.viewer.principal, issue_id, reason=reason)
    post.viewer.session.flash = "flash.quality_reopened"
    return RedirectResponse(HERE, status_code=303)
