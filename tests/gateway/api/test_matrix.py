"""The authorization matrix: every endpoint × every role, and every kind of bad token.

Each row names one endpoint, how to call it, which roles it serves (``ok``) and to which it
pretends the object does not exist (``hidden``, 404 ``G-TENANT``); every other role gets
403 ``G-ROLE``, and a missing, garbage, revoked, expired or deactivated token 401
``G-TOKEN``. Every denial must be a problem and an ``access.denied`` ledger entry. Rows that
change something build their own objects, so cells run in any order.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import fastapi.routing
import pytest
from fastapi import FastAPI
from sqlalchemy import create_engine, update

from gateway.api import create_app
from gateway.control import control_url, schema
from gateway.control.accounting import ACCOUNTING_TZ
from tests.gateway.api.conftest import GOVERNANCE_COLUMNS, ROLES, World
from tests.gateway.api.probing import (
    ANONYMOUS,
    QUERY,
    assert_denial_recorded,
    assert_problem,
    ledger_size,
    pending_results,
    release,
)

TENANT = frozenset({"operator", "developer", "partner_developer"})
OTHER = frozenset({"other_operator", "other_developer"})
REVIEWERS = frozenset({"reviewer", "reviewer2"})
SEES_ALL = frozenset({"authority", "auditor"})
EVERYONE = frozenset(ROLES)
BAD_TOKENS = ("missing", "garbage", "revoked", "expired", "deactivated")
DOCS = ("/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc")


@dataclass(frozen=True)
class Call:
    path: str
    body: dict[str, Any] | None = None
    content: bytes | None = None
    """A binary body (the PSI reply), sent as application/octet-stream instead of ``body``."""


@dataclass
class Matrix:
    """The world plus what the rows aim at: a released and a pending result of the governance
    tenant, spare pending results for the reviewers' decisions, its verification scenario,
    each role's user id and the headers of each kind of bad token."""

    world: World
    released: str
    pending: str
    spare: list[str]
    verify: str
    psi: str = ""
    actors: dict[str, str] = field(default_factory=dict)
    bad: dict[str, dict[str, str]] = field(default_factory=dict)
    shared: dict[str, str] = field(default_factory=dict)
    """Objects that refused calls aim at, made once: a refusal changes nothing."""

    def once(self, kind: str, fresh: bool, make: Callable[[], str]) -> str:
        """A new object when the call will succeed and change it; otherwise one made once."""
        if fresh:
            return make()
        if kind not in self.shared:
            self.shared[kind] = make()
        return self.shared[kind]

    billing: dict[str, str] = field(default_factory=dict)
    """An industry authorization and its priced product, a pending free product, a statement
    and a revenue-share report of the governance tenant."""

    @property
    def operator_org(self) -> str:
        return str(self.world.orgs["operator"]["id"])

    @property
    def developer_id(self) -> str:
        return str(self.world.users["developer"]["id"])

    @property
    def scenario(self) -> str:
        return str(self.world.scenarios["governance"]["id"])

    def developer(self) -> str:
        """A fresh developer of the governance operator."""
        body = {
            "organisation_id": self.operator_org,
            "name": "新开发者",
            "role": "developer",
            "id_reference": f"RN-{secrets.token_hex(4)}",
        }
        return str(self.world.post("/v1/users", body)["id"])

    def token(self, user_id: str) -> tuple[str, str]:
        issued = self.world.post(f"/v1/users/{user_id}/tokens", {"label": "matrix"})
        return issued["id"], issued["token"]

    def authorization(self, ends_in: timedelta | None = None) -> str:
        """A fresh authorization of the governance operator; revoking it leaves the tenant in
        place. With ``ends_in`` its term ends that soon (its renewal window is open)."""
        body = {
            "operator_id": self.operator_org,
            "mode": "whole",
            "datasets": ["residents"],
            "category": "public_welfare",
        }
        if ends_in is not None:
            body["ends_at"] = (datetime.now(UTC) + ends_in).isoformat()
        return str(self.world.post("/v1/authorizations", body)["id"])

    def renewal(self) -> str:
        """A fresh renewal application waiting for the authority's decision."""
        body = {"authorization_id": self.authorization(RENEWABLE), "ends_at": _far(), "note": "续期"}
        return str(self.world.post("/v1/renewals", body, "operator")["id"])

    def disclosed(self) -> int:
        """The number of a published disclosure."""
        return int(self.world.post("/v1/disclosures", {})["number"])

    def ended(self) -> str:
        """A fresh authorization already revoked, so it has an exit report."""
        authorization_id = self.authorization()
        body = {"reason": "the matrix ends it"}
        self.world.post(f"/v1/authorizations/{authorization_id}/revoke", body, status=200)
        return authorization_id

    def application(self) -> str:
        """A fresh scenario application waiting for the authority's decision."""
        return str(self.world.post("/v1/scenarios", application(self.world), "operator")["id"])

    def product(self, succeeds: bool) -> str:
        """A pending free product: a fresh one (on a fresh scenario) when the call will change it."""
        if not succeeds:
            return self.billing["pending"]
        scenario = self.world.post("/v1/scenarios", application(self.world), "operator")["id"]
        self.world.post(f"/v1/scenarios/{scenario}/approve", TERMS, status=200)
        return str(self.world.post("/v1/products", free_product(scenario), "operator")["id"])

    def review(self, succeeds: bool) -> str:
        """A result to decide: a spare one when the decision will be taken, else the shared one."""
        return self.spare.pop() if succeeds else self.pending

    def checkpoint(self) -> str:
        return str(self.world.get("/v1/ledger/checkpoint", "auditor")["checkpoint"])

    def issue(self, answered: bool) -> str:
        """Fresh data-quality feedback of the governance tenant, answered by the residents' provider."""
        world = self.world
        if "bureau" not in world.tokens:  # the catalog's provider of every dataset here
            org = world.post(
                "/v1/organisations", {"name": "bureau", "kind": "provider", "id_reference": "REF-b"}
            )
            body = {
                "organisation_id": org["id"],
                "name": "提供者",
                "role": "provider",
                "id_reference": "RN-b",
            }
            user = world.post("/v1/users", body)
            world.tokens["bureau"] = world.post(f"/v1/users/{user['id']}/tokens", {"label": "matrix"})[
                "token"
            ]
        body = {"dataset": "residents", "category": "accuracy", "description": "the matrix files it"}
        issue = str(world.post("/v1/quality", body, "developer")["id"])
        if answered:
            world.post(f"/v1/quality/{issue}/answer", {"resolution": "fixed"}, "bureau", 200)
        return issue

    def incident(self) -> str:
        """A fresh open incident of the governance operator: its others closed, then one use of a
        revoked token of one of its developers, and a scan."""
        world = self.world
        for found in world.get("/v1/incidents"):
            if found["operator_id"] == self.operator_org and found["status"] != "closed":
                world.post(
                    f"/v1/incidents/{found['id']}/close", {"reason": "the matrix closes it"}, status=200
                )
        token_id, secret = self.token(self.developer())
        world.post(f"/v1/tokens/{token_id}/revoke", {}, status=200)
        world.client.get("/v1/me", headers={"Authorization": f"Bearer {secret}"})
        world.post("/v1/incidents/scan", {}, status=200)
        (found,) = [
            i for i in world.get("/v1/incidents?status=open") if i["operator_id"] == self.operator_org
        ]
        return str(found["id"])

    def operator(self, suspended: bool) -> str:
        """A fresh operator organisation, suspended if asked."""
        org = str(
            self.world.post("/v1/organisations", _organisation("operator")(self, True).body or {})["id"]
        )
        if suspended:
            self.world.post(f"/v1/operators/{org}/suspend", {"reason": "the matrix suspends it"}, status=200)
        return org

    def webhook(self) -> str:
        return str(self.world.post("/v1/webhooks", {"url": "http://127.0.0.1:9/matrix"})["id"])

    def psi_request(self) -> str:
        """A fresh PSI job of the governance tenant, waiting for the operator's reply."""
        job = self.world.post(
            "/v1/psi", {"scenario_id": self.verify, "domain": "enterprise"}, "developer", 200
        )
        assert job["status"] == "awaiting_reply", job
        return str(job["id"])


def application(world: World) -> dict[str, Any]:
    return {
        "authorization_id": world.authorizations["governance"]["id"],
        "name": "人口结构",
        "purpose": "population by district for service planning",
        "datasets": GOVERNANCE_COLUMNS,
        "output_forms": ["aggregate"],
        "privacy_unit": "residents.resident_id",
        "requested_epsilon": 1.0,
    }


def free_product(scenario: str) -> dict[str, Any]:
    return {
        "scenario_id": scenario, "name": f"公益产品-{secrets.token_hex(4)}",
        "description": "counts by district", "usage_scope": "district planning", "form": "aggregate",
        "category": "public_welfare",
    }  # fmt: skip


Build = Callable[[Matrix, bool], Call]


@dataclass(frozen=True)
class Row:
    """One endpoint called one way. ``build`` gets whether the call is expected to succeed."""

    method: str
    route: str
    build: Build
    ok: AbstractSet[str]
    hidden: AbstractSet[str] = frozenset()
    status: int = 200
    public: bool = False
    name: str = ""
    may_queue: bool = False
    """The call waits for the job runner's answer and may return 202 with the job still queued."""

    def expect(self, who: str) -> tuple[int, str | None]:
        if self.public:
            return self.status, None
        if who in BAD_TOKENS:
            return 401, "G-TOKEN"
        if who in self.ok:
            return self.status, None
        if who in self.hidden:
            return 404, "G-TENANT"
        return 403, "G-ROLE"


def fixed(path: str, body: dict[str, Any] | None = None) -> Build:
    return lambda m, succeeds: Call(path, body)


def _organisation(kind: str) -> Build:
    def build(m: Matrix, succeeds: bool) -> Call:
        body = {"name": f"机构-{secrets.token_hex(6)}", "kind": kind, "id_reference": "REF-matrix"}
        return Call(
            "/v1/organisations", {**body, "operator_id": m.operator_org if kind == "partner" else None}
        )

    return build


def _user(m: Matrix, succeeds: bool) -> Call:
    body = {"organisation_id": m.operator_org, "name": "开发者", "role": "developer", "id_reference": "RN-m"}
    return Call("/v1/users", body)


def _revoke_token(m: Matrix, succeeds: bool) -> Call:
    token_id, _ = m.token(m.developer())
    return Call(f"/v1/tokens/{token_id}/revoke")


def _revoke_authorization(voluntary: bool) -> Build:
    def build(m: Matrix, succeeds: bool) -> Call:
        body = {"reason": "the matrix ends it", "voluntary": voluntary}
        return Call(f"/v1/authorizations/{m.authorization()}/revoke", body)

    return build


RENEWABLE = timedelta(days=30)
MISSING = "ren_00000000000000000000"


def _far() -> str:
    return (datetime.now(UTC) + timedelta(days=800)).isoformat()


def _renewal_application(m: Matrix, succeeds: bool) -> Call:
    target = m.authorization(RENEWABLE) if succeeds else m.world.authorizations["governance"]["id"]
    return Call("/v1/renewals", {"authorization_id": target, "ends_at": _far(), "note": "续期"})


def _evaluation(m: Matrix, succeeds: bool) -> Call:
    """An outcome for a fresh operator with no authorization (nothing to end), or none at all."""
    target = m.operator_org
    if succeeds:
        body = {"name": f"运营-{secrets.token_hex(6)}", "kind": "operator", "id_reference": "REF-eval"}
        target = m.world.post("/v1/organisations", body)["id"]
    return Call("/v1/evaluations", {"operator_id": target, "year": 2030, "outcome": "pass", "reason": "r"})


def _job(**extra: Any) -> Build:
    def build(m: Matrix, succeeds: bool) -> Call:
        return Call("/v1/jobs", {"scenario_id": m.scenario, **extra})

    return build


def _answer(path: str, **body: Any) -> Build:
    return lambda m, succeeds: Call(path, {"scenario_id": m.verify, **body})


FIRM = "91350100M000100Y43"
VERIFICATION = {"template": "V-CAPITAL-AT-LEAST", "subject": FIRM, "params": {"threshold": 500}}
CONSENT = {
    "domain": "enterprise",
    "subject": FIRM,
    "scope": ["V-CAPITAL-AT-LEAST"],
    "expires_at": "2099-01-01T00:00:00Z",
    "evidence": "signed consent form",
    "issuer": "bank.branch-042",
}
DECISION = {"decision": "reject", "reason": "the matrix rejects it"}
MITIGATION = {"action": "round", "base": 5, "reason": "round the counts"}
TERMS = {"terms": {"epsilon": 1.0, "query_epsilon": 0.5, "allow_dp": True}, "reason": "fits"}
QUALITY = {"dataset": "residents", "category": "completeness", "description": "empty districts"}
CAP = {"form": "aggregate", "unit": "call", "cap_fen": 50_000, "reason": "guidance"}
RULES = {"authority_bp": 2_000, "operator_bp": 5_000, "weighting": "rows_scanned", "reason": "agreement"}


def _fresh(m: Matrix) -> str:
    """A fresh approved scenario of the governance tenant, with no product yet."""
    scenario = m.world.post("/v1/scenarios", application(m.world), "operator")["id"]
    return str(m.world.post(f"/v1/scenarios/{scenario}/approve", TERMS, status=200)["id"])


def _limit(m: Matrix) -> dict[str, Any]:
    year = datetime.now(ACCOUNTING_TZ).year
    return {"authorization_id": m.billing["industry"], "year": year, "max_fen": 10**8, "reason": "assessed"}


ROWS: tuple[Row, ...] = (
    # identities
    Row("POST", "/v1/organisations", _organisation("provider"), {"authority"}, status=201, name="register"),
    Row(
        "POST",
        "/v1/organisations",
        _organisation("partner"),
        {"operator"},
        {"other_operator"},
        201,
        name="enrol partner",
    ),
    Row("GET", "/v1/organisations", fixed("/v1/organisations"), EVERYONE),
    Row(
        "GET",
        "/v1/organisations/{organisation_id}",
        lambda m, s: Call(f"/v1/organisations/{m.operator_org}"),
        SEES_ALL | {"operator", "developer"},
        EVERYONE - SEES_ALL - {"operator", "developer"},
    ),
    Row("POST", "/v1/users", _user, {"authority", "operator"}, {"other_operator"}, 201),
    Row("GET", "/v1/users", fixed("/v1/users"), EVERYONE),
    Row(
        "GET",
        "/v1/users/{user_id}",
        lambda m, s: Call(f"/v1/users/{m.developer_id}"),
        SEES_ALL | {"operator", "developer"},
        EVERYONE - SEES_ALL - {"operator", "developer"},
    ),
    Row(
        "POST",
        "/v1/users/{user_id}/deactivate",
        lambda m, s: Call(f"/v1/users/{m.developer()}/deactivate"),
        {"authority", "operator"},
        {"other_operator"},
    ),
    Row(
        "POST",
        "/v1/users/{user_id}/tokens",
        lambda m, s: Call(f"/v1/users/{m.developer_id}/tokens", {"label": "matrix", "days": 1}),
        {"authority", "operator", "developer"},
        EVERYONE - {"authority", "operator", "developer", "auditor"},
        201,
    ),
    Row(
        "GET",
        "/v1/users/{user_id}/tokens",
        lambda m, s: Call(f"/v1/users/{m.developer_id}/tokens"),
        SEES_ALL | {"operator", "developer"},
        EVERYONE - SEES_ALL - {"operator", "developer"},
    ),
    Row(
        "POST",
        "/v1/tokens/{token_id}/revoke",
        _revoke_token,
        {"authority", "operator"},
        EVERYONE - {"authority", "operator", "auditor"},
    ),
    # authorizations
    Row(
        "POST",
        "/v1/authorizations",
        lambda m, s: Call(
            "/v1/authorizations",
            {
                "operator_id": m.operator_org,
                "mode": "whole",
                "datasets": ["residents"],
                "category": "industry",
            },
        ),
        {"authority"},
        status=201,
    ),
    Row("GET", "/v1/authorizations", fixed("/v1/authorizations"), SEES_ALL | TENANT | OTHER),
    Row(
        "GET",
        "/v1/authorizations/{authorization_id}",
        lambda m, s: Call(f"/v1/authorizations/{m.world.authorizations['governance']['id']}"),
        SEES_ALL | TENANT,
        OTHER,
    ),
    Row(
        "POST",
        "/v1/authorizations/{authorization_id}/revoke",
        _revoke_authorization(False),
        {"authority"},
        name="forced",
    ),
    Row(
        "POST",
        "/v1/authorizations/{authorization_id}/revoke",
        _revoke_authorization(True),
        {"operator"},
        {"other_operator"},
        name="voluntary",
    ),
    # renewals and exits
    Row("POST", "/v1/renewals", _renewal_application, {"operator"}, {"other_operator"}, 201),
    Row("GET", "/v1/renewals", fixed("/v1/renewals"), SEES_ALL | TENANT | OTHER),
    Row(
        "POST",
        "/v1/renewals/{renewal_id}/decision",
        lambda m, s: Call(
            f"/v1/renewals/{m.renewal() if s else MISSING}/decision", {"decision": "reject", "reason": "r"}
        ),
        {"authority"},
    ),
    Row("GET", "/v1/expiring", fixed("/v1/expiring"), SEES_ALL | TENANT | OTHER),
    Row("POST", "/v1/expiring/warnings", fixed("/v1/expiring/warnings"), {"authority"}),
    Row(
        "GET",
        "/v1/authorizations/{authorization_id}/exit-report",
        lambda m, s: Call(
            f"/v1/authorizations/{m.ended() if s else m.world.authorizations['governance']['id']}/exit-report"
        ),
        SEES_ALL,
    ),
    # annual evaluation
    Row(
        "GET",
        "/v1/evaluations/report",
        lambda m, s: Call(f"/v1/evaluations/report?operator_id={m.operator_org}&year=2030"),
        SEES_ALL | {"operator"},
        {"other_operator"},
    ),
    Row("POST", "/v1/evaluations", _evaluation, {"authority"}, status=201),
    Row("GET", "/v1/evaluations", fixed("/v1/evaluations"), SEES_ALL | {"operator", "other_operator"}),
    # public disclosure
    Row("POST", "/v1/disclosures", fixed("/v1/disclosures", {}), {"authority"}, status=201),
    Row("GET", "/v1/disclosures", fixed("/v1/disclosures"), EVERYONE, public=True),
    Row(
        "GET",
        "/v1/disclosures/latest",
        lambda m, s: Call(f"/v1/disclosures/latest?after={m.disclosed()}"),
        EVERYONE,
        public=True,
    ),
    Row(
        "GET",
        "/v1/disclosures/{number}",
        lambda m, s: Call(f"/v1/disclosures/{m.disclosed()}"),
        EVERYONE,
        public=True,
    ),
    # scenarios
    Row(
        "POST",
        "/v1/scenarios",
        lambda m, s: Call("/v1/scenarios", application(m.world)),
        {"operator"},
        {"other_operator"},
        201,
    ),
    Row("GET", "/v1/scenarios", fixed("/v1/scenarios"), SEES_ALL | REVIEWERS | TENANT | OTHER),
    Row(
        "GET",
        "/v1/scenarios/{scenario_id}",
        lambda m, s: Call(f"/v1/scenarios/{m.scenario}"),
        SEES_ALL | REVIEWERS | TENANT,
        OTHER,
    ),
    Row(
        "POST",
        "/v1/scenarios/{scenario_id}/approve",
        lambda m, s: Call(f"/v1/scenarios/{m.application()}/approve", TERMS),
        {"authority"},
    ),
    Row(
        "POST",
        "/v1/scenarios/{scenario_id}/reject",
        lambda m, s: Call(f"/v1/scenarios/{m.application()}/reject", {"reason": "out of scope"}),
        {"authority"},
    ),
    # jobs: a query the policy refuses is still a submission (201), and queues nothing
    Row("POST", "/v1/jobs", _job(sql="SELECT resident_id FROM residents"), TENANT, OTHER, 201, name="submit"),
    Row("POST", "/v1/jobs", _job(sql=QUERY, mock=True), TENANT, OTHER, name="mock"),
    Row("GET", "/v1/jobs", fixed("/v1/jobs"), SEES_ALL | TENANT | OTHER),
    Row("GET", "/v1/jobs/{job_id}", lambda m, s: Call(f"/v1/jobs/{m.released}"), SEES_ALL | TENANT, OTHER),
    Row(
        "GET",
        "/v1/jobs/{job_id}/release/{name}",
        lambda m, s: Call(f"/v1/jobs/{m.released}/release/result.csv"),
        TENANT,
        OTHER,
    ),
    # reviews: reviewers only, and never their own organisation's results
    Row("GET", "/v1/reviews", fixed("/v1/reviews"), REVIEWERS),
    Row("GET", "/v1/reviews/{job_id}", lambda m, s: Call(f"/v1/reviews/{m.pending}"), REVIEWERS),
    Row(
        "POST",
        "/v1/reviews/{job_id}/decisions",
        lambda m, s: Call(f"/v1/reviews/{m.review(s)}/decisions", DECISION),
        REVIEWERS,
    ),
    Row(
        "POST",
        "/v1/reviews/{job_id}/mitigations",
        lambda m, s: Call(f"/v1/reviews/{m.review(s)}/mitigations", MITIGATION),
        REVIEWERS,
    ),
    # verifications (核验) and consents: asked inside the tenant's verification scenario
    Row(
        "POST",
        "/v1/verifications",
        _answer("/v1/verifications", **VERIFICATION),
        TENANT,
        OTHER,
        may_queue=True,
    ),
    Row("POST", "/v1/consents", _answer("/v1/consents", **CONSENT), TENANT, OTHER, may_queue=True),
    # PSI: the tenant's developers and operator start a match, fetch the request, send the reply
    Row("POST", "/v1/psi", _answer("/v1/psi", domain="enterprise"), TENANT, OTHER, may_queue=True),
    Row("GET", "/v1/psi/{job_id}/request", lambda m, s: Call(f"/v1/psi/{m.psi}/request"), TENANT, OTHER),
    Row(
        "POST",
        "/v1/psi/{job_id}/reply",
        lambda m, s: Call(f"/v1/psi/{m.psi_request() if s else m.psi}/reply", content=b"not a reply"),
        TENANT,
        OTHER,
        may_queue=True,
    ),
    # the ledger: auditors and the authority
    Row("GET", "/v1/ledger/checkpoint", fixed("/v1/ledger/checkpoint"), SEES_ALL),
    Row("GET", "/v1/ledger/entries", fixed("/v1/ledger/entries?start=0&stop=5"), SEES_ALL),
    Row("GET", "/v1/ledger/proofs/inclusion/{index}", fixed("/v1/ledger/proofs/inclusion/0"), SEES_ALL),
    Row(
        "POST",
        "/v1/ledger/proofs/consistency",
        lambda m, s: Call("/v1/ledger/proofs/consistency", {"old_checkpoint": m.checkpoint()}),
        SEES_ALL,
    ),
    # the catalog describes schemas, never values, to everyone signed in
    Row("GET", "/v1/catalog", fixed("/v1/catalog"), EVERYONE),
    Row("GET", "/v1/catalog/{name}", fixed("/v1/catalog/residents"), EVERYONE),
    # data-quality feedback: operators file, the dataset's provider answers (the world's provider
    # organisation provides none of them, so it sees none), the authority escalates
    Row("POST", "/v1/quality", fixed("/v1/quality", QUALITY), TENANT | OTHER, status=201),
    Row("GET", "/v1/quality", fixed("/v1/quality"), SEES_ALL | TENANT | OTHER | {"provider"}),
    Row("GET", "/v1/quality/calendar", fixed("/v1/quality/calendar"), EVERYONE),
    Row("POST", "/v1/quality/sweep", fixed("/v1/quality/sweep"), {"authority"}),
    Row(
        "GET",
        "/v1/quality/{issue_id}",
        lambda m, s: Call(f"/v1/quality/{m.once('issue', False, lambda: m.issue(False))}"),
        SEES_ALL | TENANT,
        OTHER | {"provider"},
    ),
    Row(
        "POST",
        "/v1/quality/{issue_id}/answer",
        lambda m, s: Call(
            f"/v1/quality/{m.once('issue', False, lambda: m.issue(False))}/answer", {"resolution": "fixed"}
        ),
        set(),
        {"provider"},
    ),
    Row(
        "POST",
        "/v1/quality/{issue_id}/confirm",
        lambda m, s: Call(f"/v1/quality/{m.once('issue', s, lambda: m.issue(True))}/confirm"),
        TENANT,
        OTHER,
    ),
    Row(
        "POST",
        "/v1/quality/{issue_id}/reopen",
        lambda m, s: Call(
            f"/v1/quality/{m.once('issue', s, lambda: m.issue(True))}/reopen", {"reason": "still wrong"}
        ),
        TENANT,
        OTHER,
    ),
    # security incidents: the operator concerned reports, the authority closes and suspends
    Row("GET", "/v1/incidents", fixed("/v1/incidents"), SEES_ALL | {"operator", "other_operator"}),
    Row("GET", "/v1/incidents/rules", fixed("/v1/incidents/rules"), SEES_ALL),
    Row("POST", "/v1/incidents/scan", fixed("/v1/incidents/scan"), {"authority"}),
    Row(
        "GET",
        "/v1/incidents/{incident_id}",
        lambda m, s: Call(f"/v1/incidents/{m.once('incident', False, m.incident)}"),
        SEES_ALL | {"operator"},
        {"other_operator"},
    ),
    Row(
        "POST",
        "/v1/incidents/{incident_id}/report",
        lambda m, s: Call(
            f"/v1/incidents/{m.once('incident', s, m.incident)}/report", {"report": "by phone"}
        ),
        {"authority", "operator"},
        {"other_operator"},
    ),
    Row(
        "POST",
        "/v1/incidents/{incident_id}/close",
        lambda m, s: Call(
            f"/v1/incidents/{m.once('incident', s, m.incident)}/close", {"reason": "false positive"}
        ),
        {"authority"},
    ),
    Row(
        "POST",
        "/v1/operators/{operator_id}/suspend",
        lambda m, s: Call(
            f"/v1/operators/{m.once('operator', s, lambda: m.operator(False))}/suspend",
            {"reason": "investigating"},
        ),
        {"authority"},
    ),
    Row(
        "POST",
        "/v1/operators/{operator_id}/reinstate",
        lambda m, s: Call(
            f"/v1/operators/{m.once('suspended', s, lambda: m.operator(True))}/reinstate",
            {"reason": "cleared"},
        ),
        {"authority"},
    ),
    Row("GET", "/v1/operators/suspensions", fixed("/v1/operators/suspensions"), SEES_ALL),
    # webhooks: configured by the authority, read by auditors too
    Row(
        "POST",
        "/v1/webhooks",
        fixed("/v1/webhooks", {"url": "http://127.0.0.1:9/matrix"}),
        {"authority"},
        status=201,
    ),
    Row("GET", "/v1/webhooks", fixed("/v1/webhooks"), SEES_ALL),
    Row(
        "POST",
        "/v1/webhooks/{webhook_id}/remove",
        lambda m, s: Call(f"/v1/webhooks/{m.webhook()}/remove"),
        {"authority"},
    ),
    Row(
        "GET",
        "/v1/webhooks/{webhook_id}/deliveries",
        lambda m, s: Call(f"/v1/webhooks/{m.once('webhook', False, m.webhook)}/deliveries"),
        SEES_ALL,
    ),
    Row("GET", "/v1/me", fixed("/v1/me"), EVERYONE),
    # products and services, price guidance, meters and the books
    Row(
        "POST",
        "/v1/products",
        lambda m, s: Call("/v1/products", free_product(m.billing["scenario"] if not s else _fresh(m))),
        {"operator"},
        {"other_operator"},
        201,
    ),
    Row("GET", "/v1/products", fixed("/v1/products"), SEES_ALL | TENANT | OTHER),
    Row("GET", "/v1/products/public", fixed("/v1/products/public"), EVERYONE, public=True),
    Row(
        "GET",
        "/v1/products/{product_id}",
        lambda m, s: Call(f"/v1/products/{m.billing['priced']}"),
        SEES_ALL | TENANT,
        OTHER,
    ),
    Row(
        "POST",
        "/v1/products/{product_id}/decision",
        lambda m, s: Call(f"/v1/products/{m.product(s)}/decision", {"decision": "approve", "reason": "fits"}),
        {"authority"},
    ),
    Row(
        "POST",
        "/v1/products/{product_id}/price",
        lambda m, s: Call(f"/v1/products/{m.billing['priced']}/price", {"price_fen": 100, "reason": "r"}),
        {"operator"},
        {"other_operator"},
    ),
    Row(
        "POST",
        "/v1/products/{product_id}/status",
        lambda m, s: Call(f"/v1/products/{m.product(s)}/status", {"status": "withdrawn", "reason": "r"}),
        {"authority", "operator"},
        {"other_operator"},
    ),
    Row("GET", "/v1/price-caps", fixed("/v1/price-caps"), EVERYONE),
    Row("POST", "/v1/price-caps", fixed("/v1/price-caps", CAP), {"authority"}, status=201),
    Row("GET", "/v1/revenue-limits", fixed("/v1/revenue-limits"), SEES_ALL | {"operator", "other_operator"}),
    Row(
        "POST",
        "/v1/revenue-limits",
        lambda m, s: Call("/v1/revenue-limits", _limit(m)),
        {"authority"},
        status=201,
    ),
    Row("GET", "/v1/meters", fixed("/v1/meters"), SEES_ALL | TENANT | OTHER),
    Row(
        "GET", "/v1/meters/{job_id}", lambda m, s: Call(f"/v1/meters/{m.released}"), SEES_ALL | TENANT, OTHER
    ),
    Row(
        "POST",
        "/v1/statements",
        lambda m, s: Call("/v1/statements", {"operator_id": m.operator_org, "period": "2030"}),
        {"authority", "operator"},
        {"other_operator"},
        201,
    ),
    Row("GET", "/v1/statements", fixed("/v1/statements"), SEES_ALL | {"operator", "other_operator"}),
    Row(
        "GET",
        "/v1/statements/{statement_id}",
        lambda m, s: Call(f"/v1/statements/{m.billing['statement']}"),
        SEES_ALL | {"operator"},
        {"other_operator"},
    ),
    Row("GET", "/v1/revenue-share/rules", fixed("/v1/revenue-share/rules"), EVERYONE),
    Row(
        "POST", "/v1/revenue-share/rules", fixed("/v1/revenue-share/rules", RULES), {"authority"}, status=201
    ),
    Row(
        "POST", "/v1/revenue-share", fixed("/v1/revenue-share", {"period": "2030"}), {"authority"}, status=201
    ),
    Row("GET", "/v1/revenue-share", fixed("/v1/revenue-share"), SEES_ALL | {"provider"}),
    Row(
        "GET",
        "/v1/revenue-share/{report_id}",
        lambda m, s: Call(f"/v1/revenue-share/{m.billing['report']}"),
        SEES_ALL | {"provider"},
    ),
    Row("GET", "/v1/keys", fixed("/v1/keys"), EVERYONE, public=True),
    Row("GET", "/v1/health", fixed("/v1/health"), EVERYONE, public=True),
    *(Row("GET", path, fixed(path), EVERYONE, public=True) for path in DOCS),
)
CELLS = [(row, who) for row in ROWS for who in (*ROLES, *BAD_TOKENS)]


def _cell_id(row: Row, who: str) -> str:
    return f"{row.method} {row.route}{f' ({row.name})' if row.name else ''} as {who}"


@pytest.fixture(scope="module")
def matrix(world: World) -> Matrix:
    *spare, pending, released = pending_results(world, 6)
    release(world, released)
    built = Matrix(world, released, pending, spare, _verification_scenario(world))
    built.psi = built.psi_request()
    built.actors = {role: world.get("/v1/me", role)["user_id"] for role in ROLES}
    _billing(built)
    built.bad = {"missing": {}, "garbage": {"Authorization": f"Bearer vbx_{secrets.token_urlsafe(32)}"}}
    for kind in ("revoked", "expired", "deactivated"):
        user = built.developer()
        token_id, secret = built.token(user)
        built.bad[kind] = {"Authorization": f"Bearer {secret}"}
        if kind == "revoked":
            world.post(f"/v1/tokens/{token_id}/revoke", {}, status=200)
        elif kind == "deactivated":
            world.post(f"/v1/users/{user}/deactivate", {}, status=200)
        else:
            _expire(world, token_id)
    return built


def _billing(m: Matrix) -> None:
    world = m.world
    world.post("/v1/price-caps", CAP)
    grant = {
        "operator_id": m.operator_org,
        "mode": "whole",
        "datasets": ["residents"],
        "category": "industry",
    }
    m.billing["industry"] = world.post("/v1/authorizations", grant)["id"]
    body = {
        **application(world),
        "authorization_id": m.billing["industry"],
        "datasets": {"residents": ["district"]},
    }
    scenario = world.post("/v1/scenarios", {**body, "privacy_unit": None}, "operator")["id"]
    world.post(
        f"/v1/scenarios/{scenario}/approve",
        {**TERMS, "terms": {"epsilon": 1.0, "query_epsilon": 0.5}},
        status=200,
    )
    priced = {**free_product(scenario), "category": "industry", "price_fen": 100}
    m.billing["priced"] = world.post("/v1/products", priced, "operator")["id"]
    m.billing["scenario"] = _fresh(m)
    m.billing["pending"] = world.post("/v1/products", free_product(m.billing["scenario"]), "operator")["id"]
    m.billing["statement"] = world.post("/v1/statements", {"operator_id": m.operator_org, "period": "2030"})[
        "id"
    ]
    world.post("/v1/revenue-share/rules", RULES)
    m.billing["report"] = world.post("/v1/revenue-share", {"period": "2030"})["id"]


def _verification_scenario(world: World) -> str:
    body = {
        **application(world),
        "datasets": {"enterprises": ["uscc", "registered_capital"]},
        "output_forms": ["verification", "psi"],
        "privacy_unit": None,
    }
    applied = world.post("/v1/scenarios", body, "operator")
    terms = {"terms": {"epsilon": 1.0, "query_epsilon": 0.5}, "reason": "consent-based verification"}
    return str(world.post(f"/v1/scenarios/{applied['id']}/approve", terms, status=200)["id"])


def _expire(world: World, token_id: str) -> None:
    """Move a token's expiry into the past in the control plane's own database."""
    engine = create_engine(control_url(world.workdir))
    try:
        with engine.begin() as conn:
            past = datetime.now(UTC) - timedelta(minutes=1)
            conn.execute(update(schema.tokens).where(schema.tokens.c.id == token_id).values(expires_at=past))
    finally:
        engine.dispose()


def _send(m: Matrix, row: Row, who: str, call: Call) -> Any:
    headers = m.bad[who] if who in BAD_TOKENS else m.world.headers(who)
    if row.method == "GET":
        return m.world.client.get(call.path, headers=headers)
    if call.content is not None:
        binary = {**headers, "Content-Type": "application/octet-stream"}
        return m.world.client.post(call.path, content=call.content, headers=binary)
    return m.world.client.post(call.path, json=call.body or {}, headers=headers)


@pytest.mark.parametrize(("row", "who"), CELLS, ids=[_cell_id(r, w) for r, w in CELLS])
def test_cell(matrix: Matrix, row: Row, who: str) -> None:
    status, rule = row.expect(who)
    call = row.build(matrix, rule is None)
    since = ledger_size(matrix.world)
    response = _send(matrix, row, who, call)
    if rule is None:
        assert response.status_code == status or (row.may_queue and response.status_code == 202), (
            response.text
        )
        return
    assert_problem(response, status, rule)
    if status == 401:
        assert response.headers["www-authenticate"] == "Bearer"
    actor = ANONYMOUS if who in BAD_TOKENS else matrix.actors[who]
    assert_denial_recorded(matrix.world, since, actor, call.path.split("?")[0], rule)


def _routes(app: FastAPI) -> set[tuple[str, str]]:
    # FastAPI ≥ 0.160 keeps included routers nested; older versions list routes flat.
    flatten = getattr(fastapi.routing, "iter_route_contexts", None)
    routes = flatten(app.routes) if flatten is not None else app.routes
    return {(method, route.path) for route in routes for method in route.methods or () if method != "HEAD"}


def test_the_table_has_a_row_for_every_route(tmp_path: Path) -> None:
    listed = {(row.method, row.route) for row in ROWS}
    assert _routes(create_app(tmp_path, start_runner=False)) == listed


def test_another_tenant_sees_nothing_of_the_governance_tenant(matrix: Matrix) -> None:
    world = matrix.world
    governance = {world.orgs["operator"]["id"], world.orgs["partner"]["id"]}
    for who in OTHER:
        assert not {o["id"] for o in world.get("/v1/organisations", who)} & governance
        assert not {u["organisation_id"] for u in world.get("/v1/users", who)} & governance
        for path in ("/v1/authorizations", "/v1/scenarios", "/v1/jobs?limit=1000"):
            assert {item["operator_id"] for item in world.get(path, who)} <= {
                world.orgs["other_operator"]["id"]
            }
        filtered = world.get(f"/v1/jobs?scenario_id={world.scenarios['governance']['id']}", who)
        assert filtered == []


def test_a_partner_developer_sees_its_tenant_but_not_the_operator_s_users(matrix: Matrix) -> None:
    world = matrix.world
    jobs = world.get("/v1/jobs?limit=1000", "partner_developer")
    assert matrix.released in {j["id"] for j in jobs}
    assert [u["id"] for u in world.get("/v1/users", "partner_developer")] == [
        world.users["partner_developer"]["id"]
    ]


def test_a_reviewer_can_never_belong_to_an_operator(matrix: Matrix) -> None:
    world = matrix.world
    body = {
        "organisation_id": matrix.operator_org,
        "name": "审核员",
        "role": "reviewer",
        "id_reference": "RN-r",
    }
    assert_problem(
        world.client.post("/v1/users", json=body, headers=world.headers("authority")), 422, "G-INPUT"
    )
    assert_problem(
        world.client.post("/v1/users", json=body, headers=world.headers("operator")), 403, "G-ROLE"
    )


def test_auditors_read_job_states_but_never_results(matrix: Matrix) -> None:
    job = matrix.world.get(f"/v1/jobs/{matrix.released}", "auditor")
    assert job["status"] == "released" and not {"rows", "columns", "result"} & set(job)
    assert "rows" not in matrix.world.get("/v1/catalog/residents", "auditor")


def test_a_token_stops_working_once_revoked(matrix: Matrix) -> None:
    world = matrix.world
    user = matrix.developer()
    token_id, secret = matrix.token(user)
    own = {"Authorization": f"Bearer {secret}"}
    assert world.client.get("/v1/me", headers=own).json()["user_id"] == user
    assert world.client.post(f"/v1/tokens/{token_id}/revoke", headers=own).status_code == 200
    assert_problem(world.client.get("/v1/me", headers=own), 401, "G-TOKEN")
