"""The reviewer's pages: the queue of pending results, one result with all its evidence and
the decision form, and the results already decided. Everything comes from
:mod:`gateway.reviewing`, the functions behind ``/v1/reviews``."""

from __future__ import annotations

from typing import Annotated, Literal, cast

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from gateway import reviewing
from gateway.console import forms
from gateway.console.access import PREFIX, Post, Signed, Viewer
from gateway.console.pages import render
from gateway.control import scenarios

router = APIRouter(prefix="/reviews", include_in_schema=False)
PAGE_ROWS = 50
DECISIONS = ("approve", "reject", "return")


@router.get("")
def queue(request: Request, viewer: Signed) -> HTMLResponse:
    """Pending results of every organisation but the reviewer's own, oldest first."""
    items = reviewing.pending(viewer.platform, viewer.principal)
    return render(request, "reviews/queue.html", {"items": items, "names": _names(viewer)})


@router.get("/history")
def history(request: Request, viewer: Signed) -> HTMLResponse:
    """Results reviewers have decided, with every decision on each."""
    items = reviewing.decided(viewer.platform, viewer.principal)
    decisions = {i.job_id: viewer.platform.gate.queue.decisions(i.job_id) for i in items}
    return render(
        request, "reviews/history.html", {"items": items, "names": _names(viewer), "decisions": decisions}
    )


@router.get("/{job_id}")
def show(
    request: Request, job_id: str, viewer: Signed, offset: Annotated[int, Query(ge=0)] = 0
) -> HTMLResponse:
    """One result: context, code, datasets, checks, differencing, DP, decisions and a page of rows."""
    found = reviewing.page(viewer.platform, viewer.principal, job_id, offset=offset, limit=PAGE_ROWS)
    scenario = scenarios.get_scenario(viewer.platform.control, viewer.principal, found.item.scenario)
    context = {
        "page": found,
        "item": found.item,
        "evidence": found.item.evidence,
        "scenario": scenario,
        "page_rows": PAGE_ROWS,
        "mine": viewer.principal.user_id in found.item.approvals,
    }
    return render(request, "reviews/item.html", context)


@router.post("/{job_id}/decision")
def decide(job_id: str, post: Post) -> Response:
    """Approve, reject or return with a reason; back to the result, which shows the new state."""
    decision = cast(Literal["approve", "reject", "return"], forms.choice(post.form, "decision", DECISIONS))
    reason = forms.text(post.form, "reason", max_chars=2000)
    reviewing.decide(post.viewer.platform, post.viewer.principal, job_id, decision, reason)
    post.viewer.session.flash = f"flash.{decision}"
    return RedirectResponse(f"{PREFIX}/reviews/{job_id}", status_code=303)


@router.post("/{job_id}/mitigation")
def mitigate(job_id: str, post: Post) -> Response:
    """Suppress the failing cells or round the counts, before anyone approves."""
    action = cast(Literal["suppress", "round"], forms.choice(post.form, "action", ("suppress", "round")))
    base = forms.integer(post.form, "base", low=0, high=1000, default=0)
    reason = forms.text(post.form, "reason", max_chars=2000)
    reviewing.mitigate(post.viewer.platform, post.viewer.principal, job_id, action, reason, base=base)
    post.viewer.session.flash = "flash.mitigated"
    return RedirectResponse(f"{PREFIX}/reviews/{job_id}", status_code=303)


def _names(viewer: Viewer) -> dict[str, str]:
    """Scenario names by id, as far as the viewer may read them."""
    return {s.id: s.name for s in scenarios.list_scenarios(viewer.platform.control, viewer.principal)}
