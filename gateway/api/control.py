"""The control plane over HTTP: organisations, users and tokens; authorizations (授权) and their
exit; scenarios (场景) and their review by the authority. Every check — role, tenant, state
— lives in the service function each route calls (:mod:`gateway.control`, and
:mod:`gateway.governance` where a decision also reaches the catalog, review or budget)."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from gateway import governance
from gateway.api.auth import Caller, Services
from gateway.control import authorizations, identity, scenarios

identities = APIRouter(tags=["identities"])
grants = APIRouter(prefix="/v1/authorizations", tags=["authorizations"])
applications = APIRouter(prefix="/v1/scenarios", tags=["scenarios"])
ROUTERS = (identities, grants, applications)

Name = Annotated[str, Field(min_length=1, max_length=200)]
Reason = Annotated[str, Field(min_length=1, max_length=2000)]
Strict = ConfigDict(extra="forbid")


def _plain(obj: Any) -> dict[str, Any]:
    """A service dataclass as JSON values (datetimes as ISO text, tuples as lists)."""
    return {k: _value(v) for k, v in asdict(obj).items()}


def _value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, tuple | list):
        return [_value(v) for v in value]
    if isinstance(value, dict):
        return {k: _value(v) for k, v in value.items()}
    return value


# ----------------------------------------------------------------- identities


class NewOrganisation(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"name": "城市数据运营有限公司", "kind": "operator", "id_reference": "USCC-REF-0001"}
            ]
        },
    )

    name: Name
    kind: Literal["authority", "provider", "operator", "partner", "review", "audit"]
    id_reference: Name
    operator_id: str | None = Field(default=None, max_length=64)


class NewUser(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "organisation_id": "org_…",
                    "name": "张伟",
                    "role": "developer",
                    "id_reference": "RN-2026-0001",
                }
            ]
        },
    )

    organisation_id: str = Field(min_length=1, max_length=64)
    name: Name
    role: Literal["authority", "provider", "operator", "developer", "reviewer", "auditor"]
    id_reference: Name


class NewToken(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"label": "laptop of 张伟", "days": 30}]}
    )

    label: Name
    days: int = Field(default=90, ge=1, le=366)


@identities.post("/v1/organisations", status_code=201, summary="Register an organisation")
def create_organisation(body: NewOrganisation, caller: Caller, services: Services) -> dict[str, Any]:
    """The authority registers any organisation; an operator registers its partner organisations."""
    org = identity.create_organisation(
        services.control,
        caller,
        name=body.name,
        kind=body.kind,
        id_reference=body.id_reference,
        operator_id=body.operator_id,
    )
    return _plain(org)


@identities.get("/v1/organisations", summary="Organisations you may see")
def list_organisations(caller: Caller, services: Services) -> list[dict[str, Any]]:
    return [_plain(o) for o in identity.list_organisations(services.control, caller)]


@identities.get("/v1/organisations/{organisation_id}", summary="One organisation")
def get_organisation(organisation_id: str, caller: Caller, services: Services) -> dict[str, Any]:
    return _plain(identity.get_organisation(services.control, caller, organisation_id))


@identities.post("/v1/users", status_code=201, summary="Enrol a user")
def create_user(body: NewUser, caller: Caller, services: Services) -> dict[str, Any]:
    """The authority enrols anyone; an operator enrols its own and its partners' developers."""
    user = identity.create_user(
        services.control,
        caller,
        organisation_id=body.organisation_id,
        name=body.name,
        role=body.role,
        id_reference=body.id_reference,
    )
    return _plain(user)


@identities.get("/v1/users", summary="Users you may see")
def list_users(caller: Caller, services: Services) -> list[dict[str, Any]]:
    return [_plain(u) for u in identity.list_users(services.control, caller)]


@identities.get("/v1/users/{user_id}", summary="One user")
def get_user(user_id: str, caller: Caller, services: Services) -> dict[str, Any]:
    return _plain(identity.get_user(services.control, caller, user_id))


@identities.post("/v1/users/{user_id}/deactivate", summary="Deactivate a user (its tokens stop working)")
def deactivate_user(user_id: str, caller: Caller, services: Services) -> dict[str, Any]:
    return _plain(identity.deactivate_user(services.control, caller, user_id))


@identities.post("/v1/users/{user_id}/tokens", status_code=201, summary="Issue an API token (shown once)")
def issue_token(user_id: str, body: NewToken, caller: Caller, services: Services) -> dict[str, Any]:
    """The secret is in this response only; the platform keeps its hash."""
    info, secret = identity.issue_token(
        services.control, caller, user_id, label=body.label, ttl=timedelta(days=body.days)
    )
    return {**_plain(info), "token": secret}


@identities.get("/v1/users/{user_id}/tokens", summary="A user's tokens (never their secrets)")
def list_tokens(user_id: str, caller: Caller, services: Services) -> list[dict[str, Any]]:
    return [_plain(t) for t in identity.list_tokens(services.control, caller, user_id)]


@identities.post("/v1/tokens/{token_id}/revoke", summary="Revoke a token")
def revoke_token(token_id: str, caller: Caller, services: Services) -> dict[str, Any]:
    return _plain(identity.revoke_token(services.control, caller, token_id))


# ----------------------------------------------------------------- authorizations


class NewAuthorization(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "operator_id": "org_…",
                    "mode": "domain",
                    "scope": ["city-statistics-bureau"],
                    "datasets": ["residents", "social_insurance"],
                    "category": "public_welfare",
                }
            ]
        },
    )

    operator_id: str = Field(min_length=1, max_length=64)
    mode: Literal["whole", "domain", "scenario"]
    scope: list[Name] = Field(default_factory=list, max_length=100)
    datasets: list[Name] = Field(min_length=1, max_length=200)
    category: Literal["public_welfare", "industry"]
    starts_at: AwareDatetime | None = None
    ends_at: AwareDatetime | None = None


class Revocation(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"reason": "operating agreement terminated on 2026-06-30", "voluntary": False}]
        },
    )

    reason: Reason
    voluntary: bool = False


@grants.post("", status_code=201, summary="Grant an operator an authorization")
def grant(body: NewAuthorization, caller: Caller, services: Services) -> dict[str, Any]:
    """The authority grants; the default term is three years; authorizations are non-exclusive.

    Every dataset must be registered; under a ``domain`` authorization each must come from
    a provider the scope names.
    """
    found = governance.grant(
        services,
        caller,
        operator_id=body.operator_id,
        mode=body.mode,
        scope=list(body.scope),
        datasets=list(body.datasets),
        category=body.category,
        starts_at=body.starts_at,
        ends_at=body.ends_at,
    )
    return _plain(found)


@grants.get("", summary="Authorizations you may see")
def list_grants(caller: Caller, services: Services) -> list[dict[str, Any]]:
    return [_plain(a) for a in authorizations.list_authorizations(services.control, caller)]


@grants.get("/{authorization_id}", summary="One authorization")
def get_grant(authorization_id: str, caller: Caller, services: Services) -> dict[str, Any]:
    return _plain(authorizations.get_authorization(services.control, caller, authorization_id))


@grants.post("/{authorization_id}/revoke", summary="Revoke an authorization (forced or voluntary exit)")
def revoke(authorization_id: str, body: Revocation, caller: Caller, services: Services) -> dict[str, Any]:
    """When the operator holds no other active authorization it exits: its tokens, scenarios
    and open jobs close at once, its data keys are destroyed (crypto-shredding its results
    and their backups) and its released artifacts deleted. The answer carries the exit
    report, whose SHA-256 the ledger records."""
    summary, report, digest = governance.revoke(
        services, caller, authorization_id, reason=body.reason, voluntary=body.voluntary
    )
    return {**_plain(summary), "exit_report": report.to_json(), "exit_report_sha256": digest}


# ----------------------------------------------------------------- scenarios


class Application(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "authorization_id": "auth_…",
                    "name": "城市治理: 人口结构",
                    "purpose": "population by district, age band and education for service planning",
                    "datasets": {"residents": ["district", "birth_year", "education", "resident_id"]},
                    "output_forms": ["aggregate"],
                    "privacy_unit": "residents.resident_id",
                    "requested_epsilon": 3.0,
                }
            ]
        },
    )

    authorization_id: str = Field(min_length=1, max_length=64)
    name: Name
    purpose: str = Field(min_length=1, max_length=4000)
    datasets: dict[str, list[Name]] = Field(min_length=1, max_length=50)
    output_forms: list[Literal["aggregate", "model", "verification", "psi", "record"]] = Field(min_length=1)
    privacy_unit: str | None = Field(default=None, max_length=130)
    requested_epsilon: float = Field(gt=0, le=1000, allow_inf_nan=False)


class Terms(BaseModel):
    """The authority's terms for a scenario: thresholds, privacy budget, column narrowing."""

    model_config = Strict

    min_cell: int = Field(default=10, ge=1, le=100_000)
    k: int | None = Field(default=None, ge=2, le=100_000)
    epsilon: float = Field(gt=0, le=1000, allow_inf_nan=False)
    delta: float = Field(default=1e-6, ge=0, lt=1)
    query_epsilon: float = Field(gt=0, le=1000, allow_inf_nan=False)
    max_rows: int = Field(default=1, ge=1, le=1000)
    max_groups: int = Field(default=1, ge=1, le=1000)
    narrow: dict[str, dict[str, str]] = Field(default_factory=dict)
    allow_dp: bool = False
    ends_at: AwareDatetime | None = None
    nk_n: int = Field(default=2, ge=1, le=10)
    nk_k: float = Field(default=0.9, gt=0, le=1)
    p_percent: float = Field(default=0.10, gt=0, lt=1)
    zeros_disclosive: bool = True
    negatives: Literal["review", "fail"] = "review"


class Approval(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "terms": {"min_cell": 10, "epsilon": 3.0, "query_epsilon": 0.5, "max_groups": 4},
                    "reason": "purpose is public governance; columns limited to what it needs",
                }
            ]
        },
    )

    terms: Terms
    reason: Reason


class Rejection(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"reason": "the purpose does not need resident-level columns"}]},
    )

    reason: Reason


@applications.post("", status_code=201, summary="Apply for a scenario (一场景一审核)")
def apply(body: Application, caller: Caller, services: Services) -> dict[str, Any]:
    """An operator applies within one of its active authorizations."""
    found = scenarios.apply(
        services.control,
        caller,
        authorization_id=body.authorization_id,
        name=body.name,
        purpose=body.purpose,
        datasets={k: list(v) for k, v in body.datasets.items()},
        output_forms=list(body.output_forms),
        privacy_unit=body.privacy_unit,
        requested_epsilon=body.requested_epsilon,
    )
    return _plain(found)


@applications.get("", summary="Scenarios you may see")
def list_scenarios(caller: Caller, services: Services) -> list[dict[str, Any]]:
    return [_plain(s) for s in scenarios.list_scenarios(services.control, caller)]


@applications.get("/{scenario_id}", summary="One scenario")
def get_scenario(scenario_id: str, caller: Caller, services: Services) -> dict[str, Any]:
    return _plain(scenarios.get_scenario(services.control, caller, scenario_id))


@applications.post("/{scenario_id}/approve", summary="Approve a scenario with its terms")
def approve(scenario_id: str, body: Approval, caller: Caller, services: Services) -> dict[str, Any]:
    """The authority approves and sets the policy; the budget is set on every dataset of the
    scenario: ε as approved, and δ for as many queries as ε allows (``delta`` is per query)."""
    terms = scenarios.ScenarioTerms(**body.terms.model_dump())
    return _plain(governance.approve(services, caller, scenario_id, terms=terms, reason=body.reason))


@applications.post("/{scenario_id}/reject", summary="Reject a scenario with a reason")
def reject(
    scenario_id: str, body: Annotated[Rejection, Body()], caller: Caller, services: Services
) -> dict[str, Any]:
    return _plain(scenarios.reject(services.control, caller, scenario_id, reason=body.reason))
