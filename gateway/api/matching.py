"""``/v1/psi``: the enclave finds which of its records are on an operator's list (PSI).

1. ``POST /v1/psi`` starts a match; the runner blinds the join domain's identifiers and the
   job waits in ``awaiting_reply``.
2. ``GET /v1/psi/{job}/request`` gives the blinded request (binary).
3. The operator answers on its own machine, over its own list, with ``veilbox psi
   serve-list`` (or ``veilbox psi match``, which does all three steps).
4. ``POST /v1/psi/{job}/reply`` takes the answer (``application/octet-stream``); the
   runner reads it and stores the matched records as a dataset of the scenario, named in
   the job's ``outcome``. Aggregate jobs over it are checked and reviewed as usual.
"""

from __future__ import annotations

import os
from typing import Any, Literal

from fastapi import APIRouter, Request, Response
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from gateway import jobs, specs
from gateway.api.answers import settle
from gateway.api.auth import Caller, Services
from gateway.api.jobs import JobView
from gateway.control.identity import require_role
from gateway.errors import Conflict
from gateway.matching import REPLY, REQUEST

router = APIRouter(prefix="/v1/psi", tags=["psi"])


class MatchRequest(BaseModel):
    """Match the operator's list against one join domain of the enclave."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"scenario_id": "scn_0123456789abcdef0123", "domain": "enterprise"}]},
    )

    scenario_id: str = Field(min_length=1, max_length=64)
    domain: Literal["enterprise", "person"]


@router.post(
    "",
    response_model=JobView,
    responses={202: {"model": JobView, "description": "queued: poll the job until awaiting_reply"}},
    summary="Start matching your list against the enclave's records",
)
def start(body: MatchRequest, caller: Caller, services: Services, response: Response) -> Any:
    """The job reaches ``awaiting_reply`` once the enclave's blinded request is ready."""
    job = jobs.submit(
        services.control, services.catalog, caller, body.scenario_id, specs.PsiSpec(body.domain)
    )
    return settle(services, caller, job, response)


@router.get(
    "/{job_id}/request",
    response_class=FileResponse,
    responses={200: {"content": {"application/octet-stream": {}}}},
    summary="Download the enclave's blinded request",
)
def request(job_id: str, caller: Caller, services: Services) -> FileResponse:
    """The request to answer over your list (identifiers blinded with the enclave's one-time key)."""
    require_role(caller, jobs.SUBMITTERS, "downloading a PSI request")
    job = jobs.get_job(services.control, caller, job_id)
    path = services.layout.psi / job_id / REQUEST
    if job.kind != "psi" or job.status != "awaiting_reply" or not path.is_file():
        raise Conflict("G-STATE", f"job {job_id} is not a PSI request waiting for a reply")
    services.ledger.append(caller.user_id, "psi.request_downloaded", job_id, {})
    return FileResponse(path, media_type="application/octet-stream", filename=f"{job_id}-request.bin")


@router.post(
    "/{job_id}/reply",
    response_model=JobView,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
        }
    },
    responses={202: {"model": JobView, "description": "queued: poll the job until matched"}},
    summary="Send your answer to the enclave's request",
)
async def reply(job_id: str, caller: Caller, services: Services, raw: Request, response: Response) -> Any:
    """The setup and response ``veilbox psi serve-list`` wrote, as one binary body."""
    body = await raw.body()

    def store() -> None:
        folder = services.layout.psi / job_id
        staging = folder / f".{REPLY}.{os.getpid()}"
        staging.write_bytes(body)
        os.replace(staging, folder / REPLY)

    def take() -> Any:
        job = jobs.receive_reply(services.control, caller, job_id, store)
        services.ledger.append(caller.user_id, "psi.reply_received", job_id, {"bytes": len(body)})
        return settle(services, caller, job, response)

    # The body is read on the event loop; the database, files and waiting run off it.
    return await run_in_threadpool(take)
