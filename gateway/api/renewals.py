"""``/v1/renewals`` and exit reports: renewing an authorization inside its window, the
warnings before expiry, and the report an authorization's end leaves. Every check lives in
:mod:`gateway.control.renewals` and :mod:`gateway.exits`."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, Literal

from fastapi import APIRouter
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from gateway import exits
from gateway.api.auth import Caller, Services
from gateway.control import Role, renewals
from gateway.control.identity import require_role

router = APIRouter(tags=["authorizations"])


class Application(BaseModel):
    """An operator's application to extend an authorization's term."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"authorization_id": "auth_…", "ends_at": "2030-01-01T00:00:00Z", "note": "续期三年"}
            ]
        },
    )

    authorization_id: str = Field(min_length=1, max_length=64)
    ends_at: AwareDatetime
    note: str = Field(min_length=1, max_length=4000)


class RenewalDecision(BaseModel):
    """The authority's decision; ``ends_at`` overrides the date applied for."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"decision": "approve", "reason": "no incidents; products registered"}]
        },
    )

    decision: Literal["approve", "reject"]
    reason: str = Field(min_length=1, max_length=4000)
    ends_at: AwareDatetime | None = None


def _plain(obj: Any) -> dict[str, Any]:
    return {k: v.isoformat() if hasattr(v, "isoformat") else v for k, v in asdict(obj).items()}


@router.post("/v1/renewals", status_code=201, summary="Apply to renew an authorization (operator)")
def apply(body: Application, caller: Caller, services: Services) -> dict[str, Any]:
    """Only inside the renewal window: from three months before the term ends until it ends."""
    return _plain(
        renewals.apply(services.control, caller, body.authorization_id, ends_at=body.ends_at, note=body.note)
    )


@router.get("/v1/renewals", summary="Renewal applications you may see")
def list_renewals(caller: Caller, services: Services) -> list[dict[str, Any]]:
    return [_plain(r) for r in renewals.list_renewals(services.control, caller)]


@router.post("/v1/renewals/{renewal_id}/decision", summary="Approve or reject a renewal (authority)")
def decide(renewal_id: str, body: RenewalDecision, caller: Caller, services: Services) -> dict[str, Any]:
    found = renewals.decide(
        services.control,
        caller,
        renewal_id,
        approve=body.decision == "approve",
        reason=body.reason,
        ends_at=body.ends_at,
    )
    return _plain(found)


@router.get("/v1/expiring", summary="Authorizations inside their renewal window")
def expiring(caller: Caller, services: Services) -> list[dict[str, Any]]:
    """Each with its days left and the application for its current term, if any."""
    found = []
    for expiry in renewals.expiring(services.control, caller):
        item = _plain(expiry)
        item["renewal"] = None if expiry.renewal is None else _plain(expiry.renewal)
        found.append(item)
    return found


@router.post("/v1/expiring/warnings", summary="Record the expiry warnings now due (authority)")
def warn(caller: Caller, services: Services) -> list[dict[str, Any]]:
    """Warnings at 90, 30 and 7 days before a term ends, each recorded once per term."""
    require_role(caller, {Role.AUTHORITY}, "recording expiry warnings")
    return renewals.warn_expiring(services.control, caller.user_id)


@router.get(
    "/v1/authorizations/{authorization_id}/exit-report", summary="The report an authorization's end left"
)
def exit_report(authorization_id: str, caller: Caller, services: Services) -> dict[str, Any]:
    """The stored report and its SHA-256 (the ledger's ``authorization.exit_report`` records it)."""
    return exits.report_of(services, caller, authorization_id)
