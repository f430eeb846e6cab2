"""``/v1/disclosures``: the public disclosure of authorizations and data use (信息披露).

Publishing is the authority's; reading needs no token — the public is the audience. Each
disclosure comes with an inclusion proof of the ledger entry that commits to its SHA-256,
under a signed checkpoint (see :mod:`gateway.disclosure`).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import AwareDatetime, BaseModel, ConfigDict

from gateway import disclosure
from gateway.api.auth import Caller, Services

router = APIRouter(prefix="/v1/disclosures", tags=["disclosure"])


class Period(BaseModel):
    """The period a disclosure covers; the last 30 days by default."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"start": "2026-10-01T00:00:00+08:00", "end": "2026-11-01T00:00:00+08:00"}]
        },
    )

    start: AwareDatetime | None = None
    end: AwareDatetime | None = None


@router.post("", status_code=201, summary="Publish a disclosure now (authority)")
def publish(body: Period, caller: Caller, services: Services) -> dict[str, Any]:
    """Build, store and commit a disclosure of the period; the runner also publishes each
    month's on its own."""
    start, end = disclosure.default_period(services.control.now())
    published = disclosure.publish_requested(
        services.control, services.layout, caller, body.start or start, body.end or end
    )
    return {"number": published.number, "sha256": published.sha256, "ledger_index": published.ledger_index}


@router.get("", summary="Every disclosure published (public)")
def listing(services: Services) -> list[dict[str, Any]]:
    return disclosure.listing(services.layout)


@router.get("/latest", summary="The latest disclosure with its ledger proof (public)")
def latest(services: Services) -> dict[str, Any]:
    """The document, its SHA-256 and an inclusion bundle ``veilbox ledger verify-proof`` checks."""
    return disclosure.with_proof(services.ledger, services.layout)


@router.get("/{number}", summary="One disclosure with its ledger proof (public)")
def one(number: int, services: Services) -> dict[str, Any]:
    return disclosure.with_proof(services.ledger, services.layout, number)
