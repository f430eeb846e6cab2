"""The developer's and operator's pages: the catalog (schemas, tags, descriptions — never
values), the mock-data playground with the policy's verdict, SQL job submission and
status, and the downloads of released results. Everything goes through
:mod:`gateway.datasets`, :mod:`gateway.jobs` and :mod:`gateway.releases`, the functions
behind the API."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response

from gateway import datasets, jobs, releases, specs
from gateway.console import forms
from gateway.console.access import PREFIX, Post, Signed, Viewer
from gateway.console.pages import render
from gateway.control import Role, identity, scenarios
from gateway.control.scenarios import Scenario
from sandbox.errors import PolicyViolation
from sandbox.policy import MAX_SQL_CHARS

router = APIRouter(include_in_schema=False)
MOCK_SHOWN = 100
SUBMITTERS = frozenset({Role.OPERATOR, Role.DEVELOPER})
EXAMPLE = "SELECT district, COUNT(*) AS n\nFROM residents\nGROUP BY district"


@router.get("/catalog")
def catalog(request: Request, viewer: Signed) -> HTMLResponse:
    """Every dataset the viewer may see."""
    return render(
        request, "work/catalog.html", {"datasets": datasets.list_datasets(viewer.platform, viewer.principal)}
    )


@router.get("/catalog/{name}")
def dataset(request: Request, name: str, viewer: Signed) -> HTMLResponse:
    """One dataset's schema: columns, types, tags, bounds and declared domains."""
    found = datasets.get_dataset(viewer.platform, viewer.principal, name)
    return render(request, "work/dataset.html", {"dataset": found})


@router.get("/playground")
def playground(request: Request, viewer: Signed) -> HTMLResponse:
    """The mock-data playground, empty: for those who may run SQL, as its one form does."""
    identity.require_role(viewer.principal, SUBMITTERS, "trying SQL on mock data")
    context = {"scenarios": _runnable(viewer), "sql": EXAMPLE, "chosen": None, "rows": 1000, "verdict": None}
    return render(request, "work/playground.html", context)


@router.post("/playground")
def try_mock(request: Request, post: Post) -> HTMLResponse:
    """Run the SQL on mock data: the policy's verdict, and the mock result when it accepts."""
    viewer, form = post.viewer, post.form
    scenario_id = forms.text(form, "scenario_id", max_chars=64)
    sql = forms.text(form, "sql", max_chars=MAX_SQL_CHARS)
    rows = forms.integer(form, "rows", low=1, high=100_000, default=1000)
    context = {"scenarios": _runnable(viewer), "sql": sql, "chosen": scenario_id, "rows": rows}
    try:
        result = jobs.mock(
            viewer.platform.control, viewer.platform.catalog, viewer.principal, scenario_id, sql, rows
        )
    except PolicyViolation as exc:
        return render(request, "work/playground.html", {**context, "verdict": exc}, status=422)
    shown = result.table.slice(0, MOCK_SHOWN)
    context |= {
        "verdict": "accepted",
        "columns": shown.column_names,
        "result": shown.to_pylist(),
        "total": result.table.num_rows,
        "rows_per_table": result.rows_per_table,
    }
    return render(request, "work/playground.html", context)


@router.get("/jobs")
def job_list(
    request: Request, viewer: Signed, status: Annotated[str | None, Query(max_length=32)] = None
) -> HTMLResponse:
    """The viewer's tenant's jobs (every tenant's for the authority and auditors), newest first;
    the submission form for those who may submit."""
    found = jobs.list_jobs(viewer.platform.control, viewer.principal, status=status or None, limit=200)
    submits = viewer.principal.role in SUBMITTERS
    context = {
        "jobs": found,
        "status": status,
        "scenarios": _runnable(viewer) if submits else [],
        "example": EXAMPLE,
    }
    return render(request, "work/jobs.html", context)


@router.post("/jobs")
def submit(post: Post) -> Response:
    """Submit a SQL job; the policy's verdict is on the job's page at once."""
    viewer, form = post.viewer, post.form
    spec = specs.SqlSpec(forms.text(form, "sql", max_chars=MAX_SQL_CHARS), dp=forms.flag(form, "dp"))
    scenario_id = forms.text(form, "scenario_id", max_chars=64)
    job = jobs.submit(viewer.platform.control, viewer.platform.catalog, viewer.principal, scenario_id, spec)
    if job.status == "queued":
        viewer.platform.wake()
    viewer.session.flash = "flash.submitted"
    return RedirectResponse(f"{PREFIX}/jobs/{job.id}", status_code=303)


@router.get("/jobs/{job_id}")
def job(request: Request, job_id: str, viewer: Signed) -> HTMLResponse:
    """A job's status, its SQL, the refusal's rule and reason, and its release files once released."""
    found = jobs.get_job(viewer.platform.control, viewer.principal, job_id)
    context = {
        "job": found,
        "files": sorted(releases.MEDIA) if found.status == "released" else [],
        "downloads": viewer.principal.role in SUBMITTERS,
        "working": found.status in ("queued", "running", "receiving"),
    }
    return render(request, "work/job.html", context)


@router.get("/jobs/{job_id}/release/{name}")
def download(job_id: str, name: str, viewer: Signed) -> FileResponse:
    """A file of a released result; recorded in the ledger as a download."""
    found = releases.release_file(viewer.platform, viewer.principal, job_id, name)
    return FileResponse(found.path, media_type=found.media_type, filename=found.filename)


def _runnable(viewer: Viewer) -> list[Scenario]:
    """The approved scenarios the viewer may see (the job itself re-checks that it may run)."""
    return [
        s
        for s in scenarios.list_scenarios(viewer.platform.control, viewer.principal)
        if s.status == "approved"
    ]
