"""``/v1/catalog`` and ``/v1/me``: the resource catalog (schemas, tags, descriptions — never
values), the caller's own identity, and the platform's public keys."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from gateway.api.auth import Caller, Services
from gateway.control.identity import invisible
from gateway.errors import Conflict
from sandbox.errors import CatalogError

router = APIRouter(tags=["catalog"])


@router.get("/v1/catalog", summary="Every registered dataset's description")
def datasets(caller: Caller, services: Services) -> list[dict[str, Any]]:
    """Schemas, tags, bounds and declared domains of every dataset; no value of the data."""
    return [d.schema() for d in services.catalog.list()]


@router.get("/v1/catalog/{name}", summary="One dataset's description")
def dataset(name: str, caller: Caller, services: Services) -> dict[str, Any]:
    """One dataset's schema and tags."""
    try:
        return services.catalog.get(name).schema()
    except CatalogError:
        raise invisible("dataset", name) from None


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
def health(services: Services, response: Response) -> dict[str, Any]:
    """``ok`` with the runner alive or run elsewhere; 503 when the app's runner has died."""
    alive = services.runner_alive()
    runner = "external" if alive is None else "alive" if alive else "dead"
    if runner == "dead":
        response.status_code = 503
    return {"status": "ok" if runner != "dead" else "degraded", "runner": runner}


@router.get("/v1/keys", summary="The public keys verifiers pin")
def keys(services: Services) -> dict[str, Any]:
    """The ledger's checkpoint key, the release key and the input-sealing key (the last two
    are published once the job runner has started)."""
    release, inputs = services.layout.release_public_key(), services.layout.input_public_key()
    if release is None or inputs is None:
        raise Conflict("G-STATE", "the enclave's keys are not published yet: start the job runner")
    return {"ledger": services.ledger.public_key().vkey, "release": release.vkey, "inputs": inputs}
