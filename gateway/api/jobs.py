"""``/v1/jobs``: submit (or try on mock data), list, show, and download released results."""

from __future__ import annotations

import asyncio
import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field

from gateway import jobs, releases, specs
from gateway.api.auth import Caller, Services
from gateway.control import Principal
from gateway.errors import InvalidRequest
from gateway.platform import Platform
from sandbox.policy import MAX_SQL_CHARS

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])

MAX_WAIT_S = 30.0
RUNNER_STATES = frozenset({"queued", "running", "receiving"})
"""The states a job leaves without anyone acting but the runner: those worth waiting on."""
_RECHECK_S = 0.25
Wait = Annotated[
    float,
    Query(
        ge=0,
        le=MAX_WAIT_S,
        description="Seconds to hold the answer while the job is queued or running, "
        "returning as soon as the runner moves it on (long polling).",
    ),
]


Finite = Annotated[float, Field(allow_inf_nan=False)]


class JobRequest(BaseModel):
    """A job to run in a scenario: SQL (optionally under DP) or a DP model over a feature query."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "scenario_id": "scn_0123456789abcdef0123",
                    "kind": "sql",
                    "sql": "SELECT district, COUNT(*) AS n FROM residents GROUP BY district",
                    "dp": True,
                },
                {
                    "scenario_id": "scn_0123456789abcdef0123",
                    "kind": "sql",
                    "sql": "SELECT education, COUNT(*) AS n FROM residents GROUP BY education",
                    "mock": True,
                },
                {
                    "scenario_id": "scn_0123456789abcdef0123",
                    "kind": "record",
                    "dataset": "residents",
                    "columns": ["district", "birth_date", "education", "household_size"],
                    "ladders": {
                        "birth_date": [
                            {"step": "date_truncate", "column": "birth_date", "unit": "year"},
                            {"step": "suppress", "column": "birth_date"},
                        ]
                    },
                },
            ]
        },
    )

    scenario_id: str = Field(min_length=1, max_length=64)
    kind: Literal["sql", "model", "record"] = "sql"
    sql: str | None = Field(default=None, max_length=MAX_SQL_CHARS)
    dp: bool = False
    features: str | None = Field(default=None, max_length=MAX_SQL_CHARS)
    model: str | None = Field(default=None, max_length=64)
    label: str | None = Field(default=None, max_length=64)
    hyperparameters: dict[str, bool | int | Finite] = Field(default_factory=dict, max_length=20)
    epsilon: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    max_rows: int = Field(default=1, ge=1, le=1000)
    dataset: str | None = Field(default=None, max_length=64)
    columns: list[str] = Field(default_factory=list, max_length=100)
    ladders: dict[str, list[dict[str, Any]]] = Field(default_factory=dict, max_length=100)
    max_suppression: float = Field(default=0.05, ge=0, le=0.2)
    mock: bool = False
    mock_rows: int = Field(default=1000, ge=1, le=100_000)


class JobView(BaseModel):
    """A job's state; never its result."""

    id: str
    scenario_id: str
    operator_id: str
    submitter_id: str
    kind: str
    status: str
    spec: dict[str, Any]
    reason: str | None
    rule: str | None
    result_sha256: str | None
    outcome: dict[str, Any] | None = None
    created_at: str
    updated_at: str


class MockView(BaseModel):
    """A result on mock data: generated from the catalog, never real figures."""

    marker: Literal["MOCK"]
    scenario_id: str
    columns: list[str]
    rows: list[dict[str, Any]]
    rows_per_table: int


def _spec(body: JobRequest) -> specs.Spec:
    if body.kind == "record":
        if body.dataset is None or not body.columns:
            raise _missing("dataset and columns", "a record-level job")
        return specs.RecordSpec(body.dataset, tuple(body.columns), body.ladders, body.max_suppression)
    if body.kind == "sql":
        if body.sql is None:
            raise _missing("sql", "a SQL job")
        return specs.SqlSpec(body.sql, dp=body.dp)
    if body.features is None or body.model is None or body.epsilon is None:
        raise _missing("features, model and epsilon", "a model job")
    return specs.ModelSpec(
        features=body.features,
        model=body.model,
        epsilon=body.epsilon,
        label=body.label,
        hyperparameters=body.hyperparameters,
        max_rows=body.max_rows,
    )


def _missing(fields: str, what: str) -> InvalidRequest:
    return InvalidRequest("G-INPUT", f"{what} needs {fields}")


@router.post(
    "",
    status_code=201,
    response_model=JobView | MockView,
    summary="Submit a job, or run it on mock data with mock=true",
)
async def submit(
    body: JobRequest, caller: Caller, services: Services, response: Response, wait: Wait = 0
) -> Any:
    """Queue a job after the policy check; ``status`` is ``refused`` (with ``rule``) when the
    policy refuses it. With ``wait`` the answer is held until the runner has moved the job
    on, as ``GET /v1/jobs/{id}?wait=`` would. With ``mock=true`` the job runs at once on mock
    data and the result comes back marked MOCK; nothing is queued."""
    spec = _spec(body)
    if body.mock:
        if not isinstance(spec, specs.SqlSpec):
            raise _missing("kind sql", "a mock run")
        result = await run_in_threadpool(
            jobs.mock, services.control, services.catalog, caller, body.scenario_id, spec.sql, body.mock_rows
        )
        response.status_code = 200
        return MockView(
            marker="MOCK",
            scenario_id=body.scenario_id,
            columns=result.table.column_names,
            rows=result.table.slice(0, 1000).to_pylist(),
            rows_per_table=result.rows_per_table,
        )
    # Taken before the job exists, so no step of the runner on it can pass unseen.
    ticket = services.progress.ticket() if services.progress else None
    job = await run_in_threadpool(
        jobs.submit, services.control, services.catalog, caller, body.scenario_id, spec
    )
    if job.status == "queued":
        services.wake()
    response.headers["Location"] = f"/v1/jobs/{job.id}"
    return await _held(services, caller, job, time.monotonic() + wait, ticket)


@router.get("", response_model=list[JobView], summary="List the jobs you may see")
def list_jobs(
    caller: Caller,
    services: Services,
    status: Annotated[str | None, Query(max_length=32)] = None,
    scenario_id: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Any:
    """Your tenant's jobs, newest first (the authority and auditors see every tenant's)."""
    return [
        j.to_json()
        for j in jobs.list_jobs(services.control, caller, status=status, scenario_id=scenario_id, limit=limit)
    ]


@router.get("/{job_id}", response_model=JobView, summary="Show one job")
async def show(job_id: str, caller: Caller, services: Services, wait: Wait = 0) -> Any:
    """A job's status, with the reason and rule id of a refusal or failure."""
    ticket = services.progress.ticket() if services.progress else None
    job = await run_in_threadpool(jobs.get_job, services.control, caller, job_id)
    return await _held(services, caller, job, time.monotonic() + wait, ticket)


async def _held(
    services: Platform, caller: Principal, job: jobs.JobRecord, deadline: float, ticket: asyncio.Event | None
) -> dict[str, Any]:
    """``job`` once it has left the runner's states, or as it stands at ``deadline``.

    ``ticket`` was taken before ``job`` was read, so a step of the runner in between ends
    the first wait at once instead of being missed.
    """
    progress = services.progress
    while job.status in RUNNER_STATES and (left := deadline - time.monotonic()) > 0:
        # Re-read now and then anyway: a runner outside this app reports no steps.
        if progress is None or ticket is None:
            await asyncio.sleep(min(left, _RECHECK_S))
        else:
            await progress.after(ticket, min(left, _RECHECK_S))
        ticket = progress.ticket() if progress else None
        job = await run_in_threadpool(jobs.get_job, services.control, caller, job.id)
    return job.to_json()


@router.get(
    "/{job_id}/release/{name}",
    summary="Download a file of a released result",
    response_class=FileResponse,
    responses={200: {"content": {media: {} for media in set(releases.MEDIA.values())}}},
)
def download(job_id: str, name: str, caller: Caller, services: Services, request: Request) -> FileResponse:
    """A released artifact's file (``result.csv``, ``result.parquet``, ``result.json``,
    ``manifest.json``, ``manifest.sig``), for users of the submitting operator only.
    Every download is a ledger entry."""
    found = releases.release_file(services, caller, job_id, name)
    return FileResponse(found.path, media_type=found.media_type, filename=found.filename)
