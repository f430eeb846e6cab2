"""The authority's pages: datasets and their classification, authorizations with their terms
(grant and revoke), scenario applications with the policy editor (column roles,
thresholds, ε), and the privacy budget each scenario has used. Everything goes through
:mod:`gateway.control` and :mod:`gateway.governance`, the functions behind the API."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from gateway import datasets, disclosure, exits, governance
from gateway.console import charts, forms, i18n
from gateway.console.access import PREFIX, Post, Posted, Signed, Viewer
from gateway.console.pages import render
from gateway.control import Role, authorizations, identity, scenarios
from gateway.control.scenarios import Scenario, ScenarioTerms
from sandbox.catalog import Tag

router = APIRouter(prefix="/authority", include_in_schema=False)
EXPIRING_DAYS = 90
"""Authorizations ending within this many days are marked."""


@router.get("/datasets")
def dataset_list(request: Request, viewer: Signed) -> HTMLResponse:
    """Every dataset the viewer may see, with provider, classification level and size."""
    found = datasets.list_datasets(viewer.platform, viewer.principal)
    return render(request, "authority/datasets.html", {"datasets": found})


@router.get("/authorizations")
def grant_list(request: Request, viewer: Signed) -> HTMLResponse:
    """Authorizations with their terms and expiry, the revoke forms and the grant form."""
    found = authorizations.list_authorizations(viewer.platform.control, viewer.principal)
    organisations = identity.list_organisations(viewer.platform.control, viewer.principal)
    context = {
        "grants": found,
        "names": {o.id: o.name for o in organisations},
        "operators": [o for o in organisations if o.kind == identity.OrgKind.OPERATOR],
        "datasets": datasets.list_datasets(viewer.platform, viewer.principal),
        "now": viewer.platform.control.now(),
        "expiring_days": EXPIRING_DAYS,
    }
    return render(request, "authority/authorizations.html", context)


@router.post("/authorizations")
def grant(post: Post) -> Response:
    """Grant an operator an authorization over the datasets ticked."""
    form = post.form
    scope = forms.text(form, "scope", max_chars=2000, required=False)
    governance.grant(
        post.viewer.platform,
        post.viewer.principal,
        operator_id=forms.text(form, "operator_id", max_chars=64),
        mode=forms.choice(form, "mode", ("whole", "domain", "scenario")),
        scope=[s.strip() for s in scope.split(",") if s.strip()],
        datasets=[str(d) for d in form.getlist("datasets")],
        category=forms.choice(form, "category", ("public_welfare", "industry")),
        ends_at=forms.moment(forms.text(form, "ends_at", max_chars=40, required=False), "ends_at"),
    )
    post.viewer.session.flash = "flash.granted"
    return RedirectResponse(f"{PREFIX}/authority/authorizations", status_code=303)


@router.post("/authorizations/{authorization_id}/revoke")
def revoke(authorization_id: str, post: Post) -> Response:
    """End an authorization, with the reason the operator will read."""
    reason = forms.text(post.form, "reason", max_chars=2000)
    governance.revoke(
        post.viewer.platform,
        post.viewer.principal,
        authorization_id,
        reason=reason,
        voluntary=forms.flag(post.form, "voluntary"),
    )
    post.viewer.session.flash = "flash.revoked"
    return RedirectResponse(f"{PREFIX}/authority/authorizations", status_code=303)


@router.get("/authorizations/{authorization_id}/exit-report")
def exit_report(request: Request, authorization_id: str, viewer: Signed) -> HTMLResponse:
    """What an ended authorization's exit closed, deleted and destroyed, with the report's
    SHA-256 that the ledger's ``authorization.exit_report`` entry records."""
    found = exits.report_of(viewer.platform, viewer.principal, authorization_id)
    return render(request, "authority/exit_report.html", {"found": found})


@router.get("/scenarios")
def scenario_list(request: Request, viewer: Signed) -> HTMLResponse:
    """Applications waiting for a decision first, then every other scenario."""
    found = scenarios.list_scenarios(viewer.platform.control, viewer.principal)
    waiting = [s for s in found if s.status == "applied"]
    return render(
        request,
        "authority/scenarios.html",
        {"waiting": waiting, "others": [s for s in found if s.status != "applied"]},
    )


@router.get("/scenarios/{scenario_id}")
def scenario(request: Request, scenario_id: str, viewer: Signed) -> HTMLResponse:
    """One scenario; while it waits, the policy editor that approves it and the reject form."""
    found = scenarios.get_scenario(viewer.platform.control, viewer.principal, scenario_id)
    return render(request, "authority/scenario.html", {"scenario": found, "columns": _columns(viewer, found)})


@router.post("/scenarios/{scenario_id}/approve")
def approve(scenario_id: str, post: Post) -> Response:
    """Approve under the terms the editor was filled in with; the budget is set with them."""
    found = scenarios.get_scenario(post.viewer.platform.control, post.viewer.principal, scenario_id)
    governance.approve(
        post.viewer.platform,
        post.viewer.principal,
        scenario_id,
        terms=_terms(post, found),
        reason=forms.text(post.form, "reason", max_chars=2000),
    )
    post.viewer.session.flash = "flash.scenario_approved"
    return RedirectResponse(f"{PREFIX}/authority/scenarios/{scenario_id}", status_code=303)


@router.post("/scenarios/{scenario_id}/reject")
def reject(scenario_id: str, post: Post) -> Response:
    """Reject an application with the reason the operator will read."""
    reason = forms.text(post.form, "reason", max_chars=2000)
    scenarios.reject(post.viewer.platform.control, post.viewer.principal, scenario_id, reason=reason)
    post.viewer.session.flash = "flash.scenario_rejected"
    return RedirectResponse(f"{PREFIX}/authority/scenarios/{scenario_id}", status_code=303)


@router.get("/budgets")
def budgets(request: Request, viewer: Signed) -> HTMLResponse:
    """How much of its privacy budget each scenario has spent, per dataset."""
    t = i18n.translator(i18n.language(request))
    found = governance.budget_use(viewer.platform, viewer.principal)
    chart = charts.shares(
        [(f"{b.scenario} · {b.dataset}", b.spent, b.total) for b in found],
        title=t("budgets.chart"),
        empty=t("chart.empty"),
    )
    return render(request, "authority/budgets.html", {"budgets": found, "chart": chart})


@router.get("/disclosures")
def disclosures(request: Request, viewer: Signed) -> HTMLResponse:
    """Every disclosure published and the form that publishes one now. The list itself is
    public; this page is for publishing, so it is the authority's."""
    identity.require_role(viewer.principal, {Role.AUTHORITY}, "publishing a disclosure")
    start, end = disclosure.default_period(viewer.platform.control.now())
    context = {"published": disclosure.listing(viewer.platform.layout), "start": start, "end": end}
    return render(request, "authority/disclosures.html", context)


@router.post("/disclosures")
def publish(post: Post) -> Response:
    """Publish a disclosure of the period given (the last 30 days by default) now."""
    viewer, form = post.viewer, post.form
    start, end = disclosure.default_period(viewer.platform.control.now())
    chosen_start = forms.moment(forms.text(form, "start", max_chars=40, required=False), "start")
    chosen_end = forms.moment(forms.text(form, "end", max_chars=40, required=False), "end")
    disclosure.publish_requested(
        viewer.platform.control,
        viewer.platform.layout,
        viewer.principal,
        chosen_start or start,
        chosen_end or end,
    )
    viewer.session.flash = "flash.disclosed"
    return RedirectResponse(f"{PREFIX}/authority/disclosures", status_code=303)


def _columns(viewer: Viewer, found: Scenario) -> list[dict[str, object]]:
    """Each requested column with its catalog tag and the tighter roles it may be given."""
    rows: list[dict[str, object]] = []
    for name, wanted in sorted(found.datasets.items()):
        columns = {c.name: c for c in datasets.get_dataset(viewer.platform, viewer.principal, name).columns}
        narrowed = (found.policy.narrow if found.policy else {}).get(name, {})
        for column in wanted:
            tag = columns[column].tag if column in columns else Tag.HIDDEN
            tighter = [Tag.HIDDEN]
            tighter += [Tag.SENSITIVE] if tag is Tag.MEASURE else []
            tighter += [Tag.QUASI_IDENTIFIER] if tag is Tag.DIMENSION else []
            rows.append(
                {
                    "dataset": name,
                    "column": column,
                    "tag": str(tag),
                    "choices": [str(c) for c in tighter if c is not tag],
                    "narrowed": narrowed.get(column),
                    "field": f"narrow.{name}.{column}",
                }
            )
    return rows


def _terms(post: Posted, found: Scenario) -> ScenarioTerms:
    """The editor's fields as terms; ScenarioTerms refuses (``G-INPUT``) what does not hold."""
    form = post.form
    narrow: dict[str, dict[str, str]] = {}
    for name, wanted in found.datasets.items():
        for column in wanted:
            chosen = forms.text(form, f"narrow.{name}.{column}", max_chars=32, required=False)
            if chosen:
                narrow.setdefault(name, {})[column] = chosen
    k = forms.integer(form, "k", low=0, high=100_000, default=0)
    return ScenarioTerms(
        min_cell=forms.integer(form, "min_cell", low=1, high=100_000),
        k=k or None,
        epsilon=forms.number(form, "epsilon"),
        delta=forms.number(form, "delta", default=1e-6),
        query_epsilon=forms.number(form, "query_epsilon"),
        max_rows=forms.integer(form, "max_rows", low=1, high=1000, default=1),
        max_groups=forms.integer(form, "max_groups", low=1, high=1000, default=1),
        narrow=narrow,
        allow_dp=forms.flag(form, "allow_dp"),
        ends_at=forms.moment(forms.text(form, "ends_at", max_chars=40, required=False), "ends_at"),
        nk_n=forms.integer(form, "nk_n", low=1, high=10, default=2),
        nk_k=forms.number(form, "nk_k", default=0.9),
        p_percent=forms.number(form, "p_percent", default=0.10),
        zeros_disclosive=forms.flag(form, "zeros_disclosive"),
        negatives=forms.choice(form, "negatives", ("review", "fail")),
    )
