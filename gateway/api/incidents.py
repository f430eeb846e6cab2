"""Security incidents (安全事件) over HTTP: the incidents detection raised, their one-hour
reports, the authority's suspension of an operator, and the webhooks that hear of it all.
Role and tenant checks live in the service functions each route calls."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from gateway.api.auth import Caller, Services
from gateway.control import incidents, suspensions, webhooks
from gateway.control.identity import SEES_ALL, require_role
from gateway.detection import RULES
from gateway.oversight import scan_now

incident_router = APIRouter(prefix="/v1/incidents", tags=["security incidents"])
operator_router = APIRouter(prefix="/v1/operators", tags=["security incidents"])
webhook_router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])
ROUTERS = (incident_router, operator_router, webhook_router)

Text = Annotated[str, Field(min_length=1, max_length=4000)]


class Report(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "report": "a developer's script retried a refused query in a loop; the script is "
                    "withdrawn and the developer retrained. Reported to 市数据局 by phone at 10:20."
                }
            ]
        },
    )

    report: Text


class Closing(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"reason": "report accepted; no data left the enclave"}]},
    )

    reason: Text


class Suspending(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"reason": "repeated differencing attempts under investigation", "incident_id": "inc_…"}
            ]
        },
    )

    reason: Text
    incident_id: str | None = Field(default=None, max_length=64)


class Reinstating(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"reason": "investigation closed; controls improved"}]},
    )

    reason: Text


class NewWebhook(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "url": "https://soc.example.gov.cn/hooks/veilbox",
                    "events": ["incident.raised", "incident.overdue", "quality.escalated"],
                    "description": "市数据局 security operations",
                }
            ]
        },
    )

    url: str = Field(min_length=1, max_length=2000)
    events: list[Literal["incident.raised", "incident.overdue", "quality.escalated"]] | None = Field(
        default=None, min_length=1, max_length=3
    )
    description: Annotated[str, Field(min_length=1, max_length=200)] | None = None


# ----------------------------------------------------------------- incidents


@incident_router.get("", summary="Security incidents you may see, with their report deadlines")
def list_incidents(
    caller: Caller,
    services: Services,
    status: Annotated[Literal["open", "reported", "closed"] | None, Query()] = None,
    overdue: Annotated[
        bool | None, Query(description="Only incidents (not) past their report deadline.")
    ] = None,
) -> list[dict[str, Any]]:
    """Every incident for the authority and auditors; an operator's own for its operator users."""
    found = incidents.list_incidents(services.control, caller, status=status, overdue=overdue)
    now = services.control.now()
    return [incident.to_json(now) for incident in found]


@incident_router.get("/rules", summary="The detection rules")
def rules(caller: Caller) -> list[dict[str, Any]]:
    """What each rule counts, per what, within which window, and how many raise an incident."""
    require_role(caller, SEES_ALL, "reading the detection rules")
    return [
        {
            "id": rule.id,
            "counts": rule.counts,
            "per": rule.per,
            "window_seconds": int(rule.window.total_seconds()),
            "threshold": rule.threshold,
            "severity": rule.severity,
        }
        for rule in RULES
    ]


@incident_router.post("/scan", summary="Scan for incidents and missed deadlines now")
def scan(caller: Caller, services: Services) -> dict[str, Any]:
    """The authority runs the oversight sweep on demand (the job runner runs it on its own and
    sends the webhooks): detection over the ledger, overdue reports, overdue feedback."""
    return scan_now(services, caller).to_json()


@incident_router.get("/{incident_id}", summary="One incident with its timeline")
def get_incident(incident_id: str, caller: Caller, services: Services) -> dict[str, Any]:
    return incidents.get_incident(services.control, caller, incident_id).to_json(services.control.now())


@incident_router.post("/{incident_id}/report", summary="Report an incident (due within one hour)")
def report(incident_id: str, body: Report, caller: Caller, services: Services) -> dict[str, Any]:
    """The operator concerned reports, or the authority records a report made another way; one
    after the deadline is accepted and marked late."""
    found = incidents.report(services.control, caller, incident_id, report=body.report)
    return found.to_json(services.control.now())


@incident_router.post("/{incident_id}/close", summary="Close an incident (the authority)")
def close(incident_id: str, body: Closing, caller: Caller, services: Services) -> dict[str, Any]:
    found = incidents.close(services.control, caller, incident_id, reason=body.reason)
    return found.to_json(services.control.now())


# ----------------------------------------------------------------- operators


@operator_router.post("/{operator_id}/suspend", summary="Suspend an operator (暂停授权)")
def suspend(operator_id: str, body: Suspending, caller: Caller, services: Services) -> dict[str, Any]:
    """Every request of the operator's users is refused (``G-SUSPENDED``) and none of its jobs
    start until it is reinstated."""
    found = suspensions.suspend(
        services.control, caller, operator_id, reason=body.reason, incident_id=body.incident_id
    )
    return asdict(found)


@operator_router.post("/{operator_id}/reinstate", summary="Reinstate a suspended operator")
def reinstate(operator_id: str, body: Reinstating, caller: Caller, services: Services) -> dict[str, Any]:
    """Its users are served again and its queued jobs run."""
    found = suspensions.reinstate(services.control, caller, operator_id, reason=body.reason)
    services.wake()
    return asdict(found)


@operator_router.get("/suspensions", summary="Suspensions of operators")
def list_suspensions(
    caller: Caller,
    services: Services,
    in_force: Annotated[bool | None, Query(description="Only suspensions (not) in force.")] = None,
) -> list[dict[str, Any]]:
    found = suspensions.list_suspensions(services.control, caller, in_force=in_force)
    return [asdict(s) for s in found]


# ----------------------------------------------------------------- webhooks


@webhook_router.post("", status_code=201, summary="Add a webhook (its secret is shown once)")
def add_webhook(body: NewWebhook, caller: Caller, services: Services) -> dict[str, Any]:
    """The platform POSTs each event to ``url`` as JSON signed with HMAC-SHA256 under the
    secret returned here (see ``X-Veilbox-Signature``); the secret is not shown again."""
    hook, secret = webhooks.add(
        services.control,
        caller,
        url=body.url,
        events=None if body.events is None else list(body.events),
        description=body.description,
    )
    return {**asdict(hook), "secret": secret}


@webhook_router.get("", summary="Webhooks (never their secrets)")
def list_webhooks(caller: Caller, services: Services) -> list[dict[str, Any]]:
    return [asdict(h) for h in webhooks.list_webhooks(services.control, caller)]


@webhook_router.post("/{webhook_id}/remove", summary="Remove a webhook")
def remove_webhook(webhook_id: str, caller: Caller, services: Services) -> dict[str, Any]:
    return asdict(webhooks.remove(services.control, caller, webhook_id))


@webhook_router.get("/{webhook_id}/deliveries", summary="A webhook's deliveries and their outcomes")
def deliveries(
    webhook_id: str,
    caller: Caller,
    services: Services,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    found = webhooks.deliveries(services.control, caller, webhook_id, limit=limit)
    return [asdict(d) for d in found]
