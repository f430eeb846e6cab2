"""``/v1/verifications`` and ``/v1/consents``: questions the enclave answers directly (核验).

The subject arrives as its raw identifier and is sealed to the enclave's input key before
anything stores it; the job runner opens it, pseudonymizes it and answers. The call waits
briefly for the answer and otherwise returns the queued job to poll at ``/v1/jobs/{id}``.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Response
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from gateway import jobs, specs
from gateway.api.auth import Caller, Services
from gateway.api.jobs import Finite, JobView
from gateway.control import Principal
from gateway.platform import Platform

router = APIRouter(tags=["verification"])
WORKING = ("queued", "running", "receiving")
WAIT_SECONDS = 10.0
"""How long a call waits for the runner's answer before returning the queued job."""

Label = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:/@-]*$")


class VerificationRequest(BaseModel):
    """A yes/no question from an approved template about one consenting subject."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "scenario_id": "scn_0123456789abcdef0123",
                    "template": "V-CAPITAL-AT-LEAST",
                    "subject": "91350100M000100Y43",
                    "params": {"threshold": 500},
                }
            ]
        },
    )

    scenario_id: str = Field(min_length=1, max_length=64)
    template: str = Field(min_length=1, max_length=64)
    subject: str = Field(min_length=1, max_length=64, repr=False)
    params: dict[str, Finite | int | str] = Field(default_factory=dict, max_length=10)


class ConsentRequest(BaseModel):
    """A subject's consent for this operator to run the named templates about it."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "scenario_id": "scn_0123456789abcdef0123",
                    "domain": "enterprise",
                    "subject": "91350100M000100Y43",
                    "scope": ["V-CAPITAL-AT-LEAST"],
                    "expires_at": "2027-06-30T00:00:00Z",
                    "evidence": "loan application LA-2026-0042, signed consent form",
                    "issuer": "bank.branch-042",
                }
            ]
        },
    )

    scenario_id: str = Field(min_length=1, max_length=64)
    domain: str = Field(min_length=1, max_length=32)
    subject: str = Field(min_length=1, max_length=64, repr=False)
    scope: list[str] = Field(min_length=1, max_length=20)
    expires_at: AwareDatetime
    evidence: str = Field(min_length=1, max_length=512)
    issuer: str = Label


def submit(
    services: Platform, caller: Principal, scenario_id: str, spec: specs.Spec, response: Response
) -> Any:
    """Submit a job the enclave answers directly, and wait briefly for its answer."""
    job = jobs.submit(
        services.control,
        services.catalog,
        caller,
        scenario_id,
        spec,
        seal_to=services.layout.input_public_key(),
    )
    return settle(services, caller, job, response)


def settle(services: Platform, caller: Principal, job: jobs.JobRecord, response: Response) -> Any:
    """Wake the runner and wait briefly for the job's turn: 200 with its outcome, or 202 while queued."""
    services.wake()
    if services.runner_alive():
        deadline = time.monotonic() + WAIT_SECONDS
        while job.status in WORKING and time.monotonic() < deadline:
            time.sleep(0.01)
            job = jobs.get_job(services.control, caller, job.id)
    response.status_code = 202 if job.status in WORKING else 200
    response.headers["Location"] = f"/v1/jobs/{job.id}"
    return job.to_json()


@router.post(
    "/v1/verifications",
    response_model=JobView,
    responses={202: {"model": JobView, "description": "queued: poll the job for the answer"}},
    summary="Ask a verification question (核验) about a consenting subject",
)
def ask(body: VerificationRequest, caller: Caller, services: Services, response: Response) -> Any:
    """``status`` ``answered`` with ``outcome.answer`` true or false, or ``refused`` with its rule
    (no consent in force, rate limit, unknown template, malformed subject)."""
    spec = specs.VerificationSpec(body.template, body.subject, dict(body.params))
    return submit(services, caller, body.scenario_id, spec, response)


@router.post(
    "/v1/consents",
    response_model=JobView,
    responses={202: {"model": JobView, "description": "queued: poll the job for the consent id"}},
    summary="Record a subject's consent to verification",
)
def consent(body: ConsentRequest, caller: Caller, services: Services, response: Response) -> Any:
    """``status`` ``recorded`` with ``outcome.consent_id``; the subject is kept only as its pseudonym."""
    spec = specs.ConsentSpec(
        domain=body.domain,
        subject=body.subject,
        scope=tuple(body.scope),
        expires_at=body.expires_at,
        evidence=body.evidence,
        issuer=body.issuer,
    )
    return submit(services, caller, body.scenario_id, spec, response)
