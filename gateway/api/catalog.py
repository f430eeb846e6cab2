"""``/v1/catalog`` and ``/v1/me``: the resource catalog (schemas, tags, descriptions — never
values), the caller's own identity, and the platform's public keys."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from gateway import datasets as datasets_service
from gateway.api.auth import Caller, Services
from gateway.api.problems import problem
from gateway.errors import Conflict

router = APIRouter(tags=["catalog"])


@router.get("/v1/catalog", summary="Every registered dataset's description")
def datasets(caller: Caller, services: Services) -> list[dict[str, Any]]:
    """Schemas, tags, bounds and declared domains of every dataset you may see; no value of the data."""
    return [d.schema() for d in datasets_service.list_datasets(services, caller)]


@router.get("/v1/catalog/{name}", summary="One dataset's description")
def dataset(name: str, caller: Caller, services: Services) -> dict[str, Any]:
    """One dataset's schema and tags."""
    return datasets_service.get_dataset(services, caller, name).schema()


@router.get("/v1/me", summary="Who you are")
def me(caller: Caller) -> dict[str, Any]:
    """The caller's user, role, organisation and tenant."""
    return {
        "user_id": caller.user_id,
        "name": caller.name,
        "role": str(caller.role),
        "organisation_id": caller.organisation_id,
        "organisation_kind": str(caller.organisation_kind),
        "tenant": caller.tenant,
    }


@router.get("/v1/health", summary="Whether the service and its job runner are up")
def health(services: Services, request: Request) -> Any:
    """``ok`` with the runner alive or run elsewhere; a 503 problem (``G-RUNNER``) when the
    app's runner process has died and queued jobs would wait forever."""
    alive = services.runner_alive()
    if alive is False:
        detail = "the job runner process has stopped: restart 'veilbox serve'; queued jobs wait until then"
        return problem(503, "Job runner down", detail, "G-RUNNER", request.url.path, runner="dead")
    return {"status": "ok", "runner": "external" if alive is None else "alive"}


@router.get("/v1/keys", summary="The public keys verifiers pin")
def keys(services: Services) -> dict[str, Any]:
    """The ledger's checkpoint key, the release key and the input-sealing key (the last two
    are published once the job runner has started)."""
    release, inputs = services.layout.release_public_key(), services.layout.input_public_key()
    if release is None or inputs is None:
        raise Conflict("G-STATE", "the enclave's keys are not published yet: start the job runner")
    return {"ledger": services.ledger.public_key().vkey, "release": release.vkey, "inputs": inputs}
