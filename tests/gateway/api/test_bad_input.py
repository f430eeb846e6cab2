"""Hostile and broken requests: each is refused with the right status and a problem whose
``rule`` is set, and a refused request writes nothing — no row, no ledger entry but the
record of a denial."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from gateway.api import MAX_BODY_BYTES
from sandbox.policy import MAX_SQL_CHARS
from tests.gateway.api.conftest import World, drain, running_world
from tests.gateway.api.probing import QUERY, assert_denial_recorded, assert_problem, ledger_size

JSON = {"content-type": "application/json"}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """The probes need no job to run but the one result they aim at, which a runner drained in
    this process runs and releases; one drained at once publishes the enclave's keys."""
    with running_world(tmp_path_factory.mktemp("bad-input"), start_runner=False) as built:
        drain(built)
        yield built


@pytest.fixture(scope="module")
def released(world: World) -> Iterator[str]:
    job_id = world.submit(QUERY)["id"]
    drain(world)
    decision = {"decision": "approve", "reason": "cells ≥ 10"}
    world.post(f"/v1/reviews/{job_id}/decisions", decision, "reviewer", 200)
    drain(world)
    assert world.get(f"/v1/jobs/{job_id}", "developer")["status"] == "released"
    yield job_id


def _writes_since(world: World, start: int) -> list[dict[str, Any]]:
    """Ledger entries from ``start`` on that record a change (denials are not changes)."""
    found = world.get(f"/v1/ledger/entries?start={start}", "auditor")["entries"]
    entries = [json.loads(item["entry"]) for item in found]
    return [e for e in entries if e["action"] != "access.denied"]


def _raw(world: World, path: str, content: bytes, role: str = "authority", **headers: str) -> Any:
    return world.client.post(path, content=content, headers={**world.headers(role), **JSON, **headers})


def _organisation(name: str) -> dict[str, Any]:
    return {"name": name, "kind": "provider", "id_reference": "REF-bad-input"}


def _names(world: World) -> set[str]:
    return {o["name"] for o in world.get("/v1/organisations")}


def _job_ids(world: World) -> set[str]:
    return {j["id"] for j in world.get("/v1/jobs?limit=1000")}


# ----------------------------------------------------------------- the body itself


@pytest.mark.parametrize(
    ("content", "status", "rule"),
    [
        ('{"name": "未闭合", "kind": "provider",'.encode(), 422, "G-INPUT"),
        (b'{"name": "x",}', 422, "G-INPUT"),
        (b"null", 422, "G-INPUT"),
        (b"[]", 422, "G-INPUT"),
        (b'"an organisation"', 422, "G-INPUT"),
        (b"", 422, "G-INPUT"),
        (b'{"name": "\\ud800", "kind": "provider", "id_reference": "x"}', 422, "G-INPUT"),
        (b'{"name": "\xff\xfe", "kind": "provider", "id_reference": "x"}', 400, "G-HTTP"),
        (b"[" * 100_000 + b"]" * 100_000, 400, "G-HTTP"),
    ],
    ids=[
        "truncated",
        "trailing-comma",
        "null",
        "array",
        "string",
        "empty",
        "lone-surrogate",
        "not-utf8",
        "deep",
    ],
)
def test_a_body_that_is_not_a_json_object_is_refused(
    world: World, content: bytes, status: int, rule: str
) -> None:
    before, since = _names(world), ledger_size(world)
    assert_problem(_raw(world, "/v1/organisations", content), status, rule)
    assert _names(world) == before and _writes_since(world, since) == []


@pytest.mark.parametrize(
    "media",
    [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/xml",
        "",
    ],
)
def test_a_body_that_is_not_declared_json_is_refused_unread(world: World, media: str) -> None:
    since = ledger_size(world)
    body = json.dumps(_organisation("媒体类型测试")).encode()
    headers = {**world.headers("authority"), "content-type": media} if media else world.headers("authority")
    response = world.client.post("/v1/organisations", content=body, headers=headers)
    assert_problem(response, 415, "G-MEDIA")
    assert "媒体类型测试" not in _names(world) and _writes_since(world, since) == []


def test_an_oversized_body_is_refused_before_it_is_read(world: World) -> None:
    since = ledger_size(world)
    body = json.dumps({**_organisation("大"), "id_reference": "x" * MAX_BODY_BYTES}).encode()
    assert_problem(_raw(world, "/v1/organisations", body), 413, "G-SIZE")
    assert _writes_since(world, since) == []


def test_a_chunked_body_of_unannounced_size_is_refused(world: World) -> None:
    since = ledger_size(world)
    chunks = iter([json.dumps(_organisation("分块")).encode()])
    response = world.client.post(
        "/v1/organisations", content=chunks, headers={**world.headers("authority"), **JSON}
    )
    assert_problem(response, 411, "G-SIZE")
    assert "分块" not in _names(world) and _writes_since(world, since) == []


@pytest.mark.parametrize("mock", [False, True])
def test_oversized_sql_is_refused_and_queues_nothing(world: World, mock: bool) -> None:
    before, since = _job_ids(world), ledger_size(world)
    sql = QUERY + " -- " + "x" * (MAX_SQL_CHARS - len(QUERY))
    body = {"scenario_id": world.scenarios["governance"]["id"], "sql": sql, "mock": mock}
    response = world.client.post("/v1/jobs", json=body, headers=world.headers("developer"))
    assert "sql" in assert_problem(response, 422, "G-INPUT")["detail"]
    assert _job_ids(world) == before and _writes_since(world, since) == []


# ----------------------------------------------------------------- ids, fields, types, numbers


UNKNOWN = [
    ("GET", "/v1/organisations/org_00000000000000000000", None, "authority"),
    ("GET", "/v1/users/usr_00000000000000000000", None, "authority"),
    ("GET", "/v1/users/usr_00000000000000000000/tokens", None, "authority"),
    ("POST", "/v1/users/usr_00000000000000000000/tokens", {"label": "x"}, "authority"),
    ("POST", "/v1/users/usr_00000000000000000000/deactivate", None, "authority"),
    ("POST", "/v1/tokens/tok_00000000000000000000/revoke", None, "authority"),
    ("GET", "/v1/authorizations/auth_00000000000000000000", None, "authority"),
    ("POST", "/v1/authorizations/auth_00000000000000000000/revoke", {"reason": "x"}, "authority"),
    ("GET", "/v1/scenarios/scn_00000000000000000000", None, "authority"),
    (
        "POST",
        "/v1/scenarios/scn_00000000000000000000/approve",
        {"terms": {"epsilon": 1.0, "query_epsilon": 0.5}, "reason": "x"},
        "authority",
    ),
    ("POST", "/v1/scenarios/scn_00000000000000000000/reject", {"reason": "x"}, "authority"),
    ("POST", "/v1/jobs", {"scenario_id": "scn_00000000000000000000", "sql": QUERY}, "developer"),
    ("GET", "/v1/jobs/job_0000000000000000", None, "authority"),
    ("GET", "/v1/jobs/job_0000000000000000/release/result.csv", None, "developer"),
    ("GET", "/v1/catalog/no_such_dataset", None, "developer"),
    ("GET", "/v1/reviews/job_0000000000000000", None, "reviewer"),
    ("POST", "/v1/reviews/job_0000000000000000/decisions", {"decision": "reject", "reason": "x"}, "reviewer"),
    ("POST", "/v1/reviews/job_0000000000000000/mitigations", {"action": "round", "reason": "x"}, "reviewer"),
    ("GET", "/v1/quality/qi_00000000000000000000", None, "authority"),
    ("POST", "/v1/quality/qi_00000000000000000000/answer", {"resolution": "x"}, "provider"),
    ("POST", "/v1/quality/qi_00000000000000000000/reopen", {"reason": "x"}, "developer"),
    ("GET", "/v1/incidents/inc_00000000000000000000", None, "authority"),
    ("POST", "/v1/incidents/inc_00000000000000000000/report", {"report": "x"}, "operator"),
    ("POST", "/v1/incidents/inc_00000000000000000000/close", {"reason": "x"}, "authority"),
    ("POST", "/v1/operators/org_00000000000000000000/suspend", {"reason": "x"}, "authority"),
    ("POST", "/v1/operators/org_00000000000000000000/reinstate", {"reason": "x"}, "authority"),
    ("GET", "/v1/webhooks/hook_00000000000000000000/deliveries", None, "auditor"),
    ("POST", "/v1/webhooks/hook_00000000000000000000/remove", None, "authority"),
]


@pytest.mark.parametrize(
    ("method", "path", "body", "role"), UNKNOWN, ids=[f"{m} {p}" for m, p, _, _ in UNKNOWN]
)
def test_an_unknown_id_is_not_found(
    world: World, method: str, path: str, body: dict[str, Any] | None, role: str
) -> None:
    since = ledger_size(world)
    response = world.client.request(method, path, json=body, headers=world.headers(role))
    assert_problem(response, 404, "G-TENANT")
    assert [e["action"] for e in _writes_since(world, since)] == []
    assert_denial_recorded(world, since, world.get("/v1/me", role)["user_id"], path, "G-TENANT")


def test_another_tenant_s_object_reads_exactly_like_a_missing_one(world: World, released: str) -> None:
    missing = world.client.get("/v1/jobs/job_0000000000000000", headers=world.headers("other_developer"))
    hidden = world.client.get(f"/v1/jobs/{released}", headers=world.headers("other_developer"))
    a, b = assert_problem(missing, 404, "G-TENANT"), assert_problem(hidden, 404, "G-TENANT")
    assert a["detail"].replace("job_0000000000000000", released) == b["detail"]
    assert set(missing.headers) == set(hidden.headers)


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/v1/nowhere"), ("GET", "/v2/jobs"), ("GET", "/v1/jobs/job_x/result"), ("GET", "/")],
)
def test_an_unknown_route_is_a_problem(world: World, method: str, path: str) -> None:
    assert_problem(world.client.request(method, path, headers=world.headers("developer")), 404, "G-ROUTE")


@dataclass(frozen=True)
class Probe:
    """A valid request to one operation with a body, which a test then spoils."""

    route: str
    path: str
    role: str
    body: dict[str, Any]

    def send(self, world: World, **changes: Any) -> Any:
        return world.client.post(self.path, json={**self.body, **changes}, headers=world.headers(self.role))


MISSING_AUTHORIZATION = "auth_00000000000000000000"
MISSING = "x_00000000000000000000"
MISSING_SCENARIO = "scn_00000000000000000000"


def _product(scenario: str) -> dict[str, Any]:
    return {
        "scenario_id": scenario, "name": "n", "description": "d", "usage_scope": "s", "form": "aggregate",
        "category": "industry", "price_fen": 100,
    }  # fmt: skip


def _probes(world: World) -> dict[str, Probe]:
    """A valid request of every operation with a body, by its model. The targets are missing
    or already decided, so a spoilt request that slipped through would still change nothing."""
    operator = world.orgs["operator"]["id"]
    developer = world.users["developer"]["id"]
    governance = world.scenarios["governance"]["id"]
    application = {
        "authorization_id": world.authorizations["governance"]["id"],
        "name": "n",
        "purpose": "p",
        "datasets": {"residents": ["district"]},
        "output_forms": ["aggregate"],
        "requested_epsilon": 1.0,
    }
    subject = {"scenario_id": governance, "subject": "91350100M000100Y43"}
    consent = {
        **subject,
        "domain": "enterprise",
        "scope": ["V-CAPITAL-AT-LEAST"],
        "expires_at": "2099-01-01T00:00:00Z",
        "evidence": "signed form",
        "issuer": "bank.branch-042",
    }
    probes = (
        ("organisation", "/v1/organisations", "/v1/organisations", "authority", _organisation("字段测试")),
        (
            "user",
            "/v1/users",
            "/v1/users",
            "authority",
            {"organisation_id": operator, "name": "n", "role": "developer", "id_reference": "RN-f"},
        ),
        ("token", "/v1/users/{user_id}/tokens", f"/v1/users/{developer}/tokens", "developer", {"label": "l"}),
        (
            "authorization",
            "/v1/authorizations",
            "/v1/authorizations",
            "authority",
            {"operator_id": operator, "mode": "whole", "datasets": ["residents"], "category": "industry"},
        ),
        (
            "revocation",
            "/v1/authorizations/{authorization_id}/revoke",
            f"/v1/authorizations/{MISSING_AUTHORIZATION}/revoke",
            "authority",
            {"reason": "r"},
        ),
        ("application", "/v1/scenarios", "/v1/scenarios", "operator", application),
        (
            "approval",
            "/v1/scenarios/{scenario_id}/approve",
            f"/v1/scenarios/{governance}/approve",
            "authority",
            {"terms": {"epsilon": 1.0, "query_epsilon": 0.5}, "reason": "r"},
        ),
        (
            "rejection",
            "/v1/scenarios/{scenario_id}/reject",
            f"/v1/scenarios/{governance}/reject",
            "authority",
            {"reason": "r"},
        ),
        ("job", "/v1/jobs", "/v1/jobs", "developer", {"scenario_id": governance, "sql": QUERY}),
        (
            "verification",
            "/v1/verifications",
            "/v1/verifications",
            "developer",
            {**subject, "template": "V-CAPITAL-AT-LEAST"},
        ),
        ("consent", "/v1/consents", "/v1/consents", "developer", consent),
        ("psi", "/v1/psi", "/v1/psi", "developer", {"scenario_id": governance, "domain": "enterprise"}),
        (
            "decision",
            "/v1/reviews/{job_id}/decisions",
            "/v1/reviews/job_x/decisions",
            "reviewer",
            {"decision": "reject", "reason": "r"},
        ),
        (
            "mitigation",
            "/v1/reviews/{job_id}/mitigations",
            "/v1/reviews/job_x/mitigations",
            "reviewer",
            {"action": "round", "reason": "r"},
        ),
        (
            "consistency",
            "/v1/ledger/proofs/consistency",
            "/v1/ledger/proofs/consistency",
            "auditor",
            {"old_checkpoint": "c"},
        ),
        (
            "renewal",
            "/v1/renewals",
            "/v1/renewals",
            "operator",
            {"authorization_id": MISSING_AUTHORIZATION, "ends_at": "2040-01-01T00:00:00Z", "note": "n"},
        ),
        (
            "outcome",
            "/v1/evaluations",
            "/v1/evaluations",
            "auditor",
            {"operator_id": "org_x", "year": 2030, "outcome": "pass", "reason": "r"},
        ),
        ("period", "/v1/disclosures", "/v1/disclosures", "auditor", {"start": "2030-01-01T00:00:00Z"}),
        (
            "renewal_decision",
            "/v1/renewals/{renewal_id}/decision",
            "/v1/renewals/ren_x/decision",
            "authority",
            {"decision": "reject", "reason": "r"},
        ),
        ("product", "/v1/products", "/v1/products", "operator", _product(MISSING_SCENARIO)),
        (
            "product decision",
            "/v1/products/{product_id}/decision",
            "/v1/products/prd_x/decision",
            "authority",
            {"decision": "reject", "reason": "r"},
        ),
        (
            "price",
            "/v1/products/{product_id}/price",
            "/v1/products/prd_x/price",
            "operator",
            {"price_fen": 1, "reason": "r"},
        ),
        (
            "product status",
            "/v1/products/{product_id}/status",
            "/v1/products/prd_x/status",
            "authority",
            {"status": "suspended", "reason": "r"},
        ),
        (
            "cap",
            "/v1/price-caps",
            "/v1/price-caps",
            "authority",
            {"form": "aggregate", "unit": "call", "cap_fen": 1, "reason": "r"},
        ),
        (
            "limit",
            "/v1/revenue-limits",
            "/v1/revenue-limits",
            "authority",
            {"authorization_id": MISSING_AUTHORIZATION, "year": 2030, "max_fen": 1, "reason": "r"},
        ),
        (
            "statement",
            "/v1/statements",
            "/v1/statements",
            "operator",
            {"operator_id": "org_x", "period": "2030"},
        ),
        (
            "rules",
            "/v1/revenue-share/rules",
            "/v1/revenue-share/rules",
            "authority",
            {"authority_bp": 0, "operator_bp": 0, "weighting": "rows_scanned", "reason": "r"},
        ),
        (
            "revenue report",
            "/v1/revenue-share",
            "/v1/revenue-share",
            "authority",
            {"period": "2030", "operator_id": "org_x"},
        ),
        (
            "issue",
            "/v1/quality",
            "/v1/quality",
            "developer",
            {"dataset": "residents", "category": "accuracy", "description": "d", "columns": ["district"]},
        ),
        (
            "answer",
            "/v1/quality/{issue_id}/answer",
            f"/v1/quality/{MISSING}/answer",
            "provider",
            {"resolution": "r"},
        ),
        (
            "reopening",
            "/v1/quality/{issue_id}/reopen",
            f"/v1/quality/{MISSING}/reopen",
            "developer",
            {"reason": "r"},
        ),
        (
            "report",
            "/v1/incidents/{incident_id}/report",
            f"/v1/incidents/{MISSING}/report",
            "operator",
            {"report": "r"},
        ),
        (
            "closing",
            "/v1/incidents/{incident_id}/close",
            f"/v1/incidents/{MISSING}/close",
            "authority",
            {"reason": "r"},
        ),
        (
            "suspending",
            "/v1/operators/{operator_id}/suspend",
            f"/v1/operators/{MISSING}/suspend",
            "authority",
            {"reason": "r", "incident_id": None},
        ),
        (
            "reinstating",
            "/v1/operators/{operator_id}/reinstate",
            f"/v1/operators/{MISSING}/reinstate",
            "authority",
            {"reason": "r"},
        ),
        ("webhook", "/v1/webhooks", "/v1/webhooks", "authority", {"url": "http://127.0.0.1:9/hook"}),
    )
    return {name: Probe(route, path, role, body) for name, route, path, role, body in probes}


MODELS = (
    "organisation",
    "user",
    "token",
    "authorization",
    "revocation",
    "application",
    "approval",
    "rejection",
    "job",
    "verification",
    "consent",
    "psi",
    "decision",
    "mitigation",
    "consistency",
    "renewal",
    "period",
    "outcome",
    "renewal_decision",
    "issue",
    "answer",
    "reopening",
    "report",
    "closing",
    "suspending",
    "reinstating",
    "webhook",
    "product",
    "product decision",
    "price",
    "product status",
    "cap",
    "limit",
    "statement",
    "rules",
    "revenue report",
)


def test_every_operation_with_a_body_is_probed(world: World) -> None:
    probes = _probes(world)
    assert sorted(probes) == sorted(MODELS)
    document = world.client.get("/openapi.json").json()
    with_body = {
        path
        for path, item in document["paths"].items()
        for op in item.values()
        if "application/json" in op.get("requestBody", {}).get("content", {})
    }
    assert {probe.route for probe in probes.values()} == with_body


def test_the_binary_psi_reply_refuses_json_and_unknown_jobs(world: World) -> None:
    since = ledger_size(world)
    as_json = world.client.post("/v1/psi/job_x/reply", json={"a": 1}, headers=world.headers("developer"))
    assert_problem(as_json, 415, "G-MEDIA")
    binary = {**world.headers("developer"), "Content-Type": "application/octet-stream"}
    assert_problem(world.client.post("/v1/psi/job_x/reply", content=b"x", headers=binary), 404, "G-TENANT")
    assert_problem(
        world.client.get("/v1/psi/job_x/request", headers=world.headers("developer")), 404, "G-TENANT"
    )
    assert _writes_since(world, since) == []


@pytest.mark.parametrize("model", MODELS)
def test_an_unknown_field_is_refused_and_changes_nothing(world: World, model: str) -> None:
    since = ledger_size(world)
    problem = assert_problem(_probes(world)[model].send(world, is_admin=True), 422, "G-INPUT")
    assert problem["errors"][0]["location"] == ["body", "is_admin"]
    assert _writes_since(world, since) == []


def test_an_unknown_field_inside_the_terms_is_refused(world: World) -> None:
    probe = _probes(world)["approval"]
    response = probe.send(world, terms={**probe.body["terms"], "min_cell": 10, "skip_review": True})
    location = assert_problem(response, 422, "G-INPUT")["errors"][0]["location"]
    assert location == ["body", "terms", "skip_review"]


WRONG = [
    ("organisation", {"name": 42}),
    ("organisation", {"kind": "government"}),
    ("organisation", {"id_reference": None}),
    ("user", {"role": "superuser"}),
    ("user", {"organisation_id": ["org"]}),
    ("token", {"days": "ninety"}),
    ("token", {"days": 1.5}),
    ("authorization", {"datasets": "residents"}),
    ("authorization", {"datasets": []}),
    ("authorization", {"starts_at": "yesterday"}),
    ("authorization", {"ends_at": "2030-01-01T00:00:00"}),
    ("authorization", {"scope": {"a": 1}}),
    ("application", {"datasets": ["residents"]}),
    ("application", {"output_forms": "aggregate"}),
    ("application", {"output_forms": ["raw_rows"]}),
    ("approval", {"terms": None}),
    ("approval", {"terms": {"epsilon": "lots", "query_epsilon": 1}}),
    ("job", {"kind": "python"}),
    ("job", {"dp": "maybe"}),
    ("job", {"hyperparameters": [1, 2]}),
    ("job", {"sql": {"select": "*"}}),
    ("decision", {"decision": "approve!"}),
    ("mitigation", {"action": "delete"}),
    ("consistency", {"old_checkpoint": 7}),
    ("issue", {"category": "vibes"}),
    ("issue", {"columns": "district"}),
    ("answer", {"fixed_in_version": 2}),
    ("report", {"report": ""}),
    ("suspending", {"incident_id": 5}),
    ("webhook", {"url": 7}),
    ("webhook", {"events": ["incident.closed"]}),
    ("webhook", {"events": []}),
    ("product", {"form": "raw_rows"}),
    ("product", {"category": "free"}),
    ("product", {"price_fen": "200 yuan"}),
    ("product", {"price_fen": 12.5}),
    ("product decision", {"decision": "maybe"}),
    ("product status", {"status": "pending"}),
    ("cap", {"unit": "row"}),
    ("limit", {"year": "this year"}),
    ("statement", {"period": 2030}),
    ("rules", {"weighting": "by_mood"}),
    ("revenue report", {"costs": ["org_x"]}),
]


@pytest.mark.parametrize(("model", "change"), WRONG, ids=[f"{m}-{next(iter(c))}" for m, c in WRONG])
def test_a_field_of_the_wrong_type_is_refused(world: World, model: str, change: dict[str, Any]) -> None:
    since = ledger_size(world)
    assert_problem(_probes(world)[model].send(world, **change), 422, "G-INPUT")
    assert _writes_since(world, since) == []


NUMBERS = [
    ("token", {"days": 0}),
    ("token", {"days": -1}),
    ("token", {"days": 367}),
    ("token", {"days": 10**30}),
    ("application", {"requested_epsilon": 0}),
    ("application", {"requested_epsilon": -1.0}),
    ("application", {"requested_epsilon": 1e300}),
    ("approval", {"terms": {"epsilon": 1.0, "query_epsilon": 2.0}}),
    ("approval", {"terms": {"epsilon": 1.0, "query_epsilon": 0.5, "delta": 1}}),
    ("approval", {"terms": {"epsilon": 1.0, "query_epsilon": 0.5, "min_cell": 0}}),
    ("approval", {"terms": {"epsilon": 1.0, "query_epsilon": 0.5, "k": 1}}),
    ("approval", {"terms": {"epsilon": -1.0, "query_epsilon": -0.5}}),
    ("job", {"mock": True, "mock_rows": 0}),
    ("job", {"mock": True, "mock_rows": 10**7}),
    ("job", {"max_rows": 10**12}),
    ("job", {"kind": "model", "features": QUERY, "model": "linear_regression", "epsilon": -1}),
    ("mitigation", {"base": -5}),
    ("mitigation", {"base": 10**9}),
    ("authorization", {"ends_at": "9999-12-31T23:59:59-23:59"}),
    ("authorization", {"starts_at": "0001-01-01T00:00:00+23:59"}),
    ("authorization", {"starts_at": "9999-01-01T00:00:00+00:00"}),
    ("product", {"price_fen": -1}),
    ("product", {"price_fen": 10**16}),
    ("price", {"price_fen": -100}),
    ("product decision", {"cap_fen": -1}),
    ("cap", {"cap_fen": 10**30}),
    ("limit", {"year": 1999}),
    ("limit", {"max_fen": -5}),
    ("rules", {"authority_bp": 10_001}),
    ("report", {"costs": {"org_x": -1}}),
]


@pytest.mark.parametrize(("model", "change"), NUMBERS, ids=[f"{m}-{json.dumps(c)[:40]}" for m, c in NUMBERS])
def test_a_number_out_of_range_is_refused(world: World, model: str, change: dict[str, Any]) -> None:
    since = ledger_size(world)
    assert_problem(_probes(world)[model].send(world, **change), 422, "G-INPUT")
    assert _writes_since(world, since) == []


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999"])
@pytest.mark.parametrize(
    ("model", "field"), [("application", "requested_epsilon"), ("job", "hyperparameters")]
)
def test_a_number_that_is_not_finite_is_refused(world: World, literal: str, model: str, field: str) -> None:
    probe = _probes(world)[model]
    body = probe.body
    if field == "hyperparameters":
        body = {**body, "kind": "model", "features": QUERY, "model": "linear_regression", "epsilon": 0.5}
        raw = json.dumps(body)[:-1] + f', "hyperparameters": {{"alpha": {literal}}}}}'
    else:
        raw = json.dumps({k: v for k, v in body.items() if k != field})[:-1] + f', "{field}": {literal}}}'
    since = ledger_size(world)
    assert_problem(_raw(world, probe.path, raw.encode(), probe.role), 422, "G-INPUT")
    assert _writes_since(world, since) == []


@pytest.mark.parametrize(
    "query",
    ["start=-1", "limit=0", "limit=1001", "limit=1e3", "limit=10000000000000000000000", "status=" + "x" * 33],
)
def test_a_query_parameter_out_of_range_is_refused(world: World, query: str) -> None:
    path = "/v1/ledger/entries" if query.startswith("start") else "/v1/jobs"
    response = world.client.get(f"{path}?{query}", headers=world.headers("auditor"))
    assert_problem(response, 422, "G-INPUT")


@pytest.mark.parametrize("index", ["-1", "1000000000000000000000000", "one"])
def test_an_inclusion_proof_of_an_entry_that_cannot_exist_is_refused(world: World, index: str) -> None:
    response = world.client.get(f"/v1/ledger/proofs/inclusion/{index}", headers=world.headers("auditor"))
    assert_problem(response, 422, "G-INPUT")


# ----------------------------------------------------------------- characters


def test_unicode_and_emoji_names_are_stored_exactly(world: World) -> None:
    name = "城市数据 😀 Ünïcödé 👩‍💻 合伙人"
    created = world.post("/v1/organisations", _organisation(name))
    assert created["name"] == name
    assert world.get(f"/v1/organisations/{created['id']}")["name"] == name
    entry = world.get(f"/v1/ledger/entries?action=org.created&subject={created['id']}", "auditor")["entries"]
    assert json.loads(entry[0]["entry"])["details"]["name"] == name


@pytest.mark.parametrize(
    "bad", ["\x00", "\x1b[2J", "\x07", "\x7f", "\x85"], ids=["nul", "escape", "bell", "del", "nel"]
)
def test_a_control_character_in_a_name_is_refused(world: World, bad: str) -> None:
    before, since = _names(world), ledger_size(world)
    response = world.client.post(
        "/v1/organisations", json=_organisation(f"机构{bad}名"), headers=world.headers("authority")
    )
    assert "control character" in assert_problem(response, 422, "G-INPUT")["detail"]
    assert _names(world) == before and _writes_since(world, since) == []


@pytest.mark.parametrize("mock", [False, True])
def test_a_nul_in_sql_is_refused_and_queues_nothing(world: World, mock: bool) -> None:
    before, since = _job_ids(world), ledger_size(world)
    sql = "SELECT district, COUNT(*) AS n FROM residents WHERE district <> '\x00' GROUP BY district"
    body = {"scenario_id": world.scenarios["governance"]["id"], "sql": sql, "mock": mock}
    response = world.client.post("/v1/jobs", json=body, headers=world.headers("developer"))
    assert "NUL" in assert_problem(response, 422, "G-INPUT")["detail"]
    assert _job_ids(world) == before and _writes_since(world, since) == []


def test_emoji_in_sql_reach_the_policy_which_names_its_rule(world: World) -> None:
    sql = "SELECT 😀, COUNT(*) AS n FROM residents GROUP BY 1"
    refused = world.submit(sql)
    assert refused["status"] == "refused" and refused["rule"].startswith("P-")
    mocked = world.client.post(
        "/v1/jobs",
        json={"scenario_id": world.scenarios["governance"]["id"], "sql": sql, "mock": True},
        headers=world.headers("developer"),
    )
    assert_problem(mocked, 422, refused["rule"])
    literal = world.submit(
        "SELECT district, COUNT(*) AS n FROM residents WHERE district <> '城区😀' GROUP BY district",
        mock=True,
        status=200,
    )
    assert literal["marker"] == "MOCK"


# ----------------------------------------------------------------- paths and methods


@pytest.mark.parametrize(
    ("name", "rule"),
    [
        ("%2e%2e", "G-TENANT"),
        ("..%2Fmanifest.json", "G-ROUTE"),
        ("%2e%2e%2fmanifest.json", "G-ROUTE"),
        ("..%5Cmanifest.json", "G-TENANT"),
        ("..%5C..%5Cledger", "G-TENANT"),
        ("result.csv%00", "G-TENANT"),
        ("result.csv%00.txt", "G-TENANT"),
        ("MANIFEST.JSON", "G-TENANT"),
        ("%2Fetc%2Fpasswd", "G-ROUTE"),
        ("result.csv%20", "G-TENANT"),
    ],
)
def test_a_release_file_name_cannot_leave_the_release(
    world: World, released: str, name: str, rule: str
) -> None:
    since = ledger_size(world)
    response = world.client.get(f"/v1/jobs/{released}/release/{name}", headers=world.headers("developer"))
    body = assert_problem(response, 404, rule)
    if rule == "G-TENANT":
        assert_denial_recorded(world, since, world.users["developer"]["id"], body["instance"], rule)
    assert _writes_since(world, since) == []


def test_a_job_id_cannot_walk_out_of_the_releases(world: World, released: str) -> None:
    for job_id in ("%2e%2e", "..%5C..", f"{released}%00"):
        response = world.client.get(
            f"/v1/jobs/{job_id}/release/manifest.json", headers=world.headers("developer")
        )
        assert_problem(response, 404, "G-TENANT")


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("DELETE", "/v1/organisations", "GET, POST"),
        ("PUT", "/v1/jobs", "GET, POST"),
        ("PATCH", "/v1/users/usr_x", "GET"),
        ("DELETE", "/v1/jobs/job_x", "GET"),
        ("GET", "/v1/ledger/proofs/consistency", "POST"),
        ("POST", "/v1/me", "GET"),
        ("PUT", "/v1/reviews/job_x/decisions", "POST"),
    ],
)
def test_a_method_the_route_does_not_serve_is_refused(
    world: World, method: str, path: str, allowed: str
) -> None:
    response = world.client.request(method, path, json={}, headers=world.headers("authority"))
    assert_problem(response, 405, "G-METHOD")
    assert sorted(response.headers["allow"].split(", ")) == sorted(allowed.split(", "))


# ----------------------------------------------------------------- nothing half-written


def test_a_refused_approval_leaves_the_scenario_applied_and_unbudgeted(world: World) -> None:
    probe = _probes(world)["application"]
    scenario = world.post(probe.path, probe.body, probe.role)["id"]
    since = ledger_size(world)
    loosen = {"epsilon": 1.0, "query_epsilon": 0.5, "narrow": {"residents": {"district": "public"}}}
    response = world.client.post(
        f"/v1/scenarios/{scenario}/approve",
        json={"terms": loosen, "reason": "r"},
        headers=world.headers("authority"),
    )
    assert_problem(response, 422, "G-NARROW")
    assert world.get(f"/v1/scenarios/{scenario}")["status"] == "applied"
    assert _writes_since(world, since) == []


def test_a_user_of_a_role_its_organisation_cannot_hold_is_never_created(world: World) -> None:
    users, since = len(world.get("/v1/users")), ledger_size(world)
    assert_problem(_probes(world)["user"].send(world, role="auditor"), 422, "G-INPUT")
    assert len(world.get("/v1/users")) == users and _writes_since(world, since) == []


@pytest.mark.parametrize(
    ("role", "change", "status", "rule"),
    [
        ("other_developer", {}, 404, "G-TENANT"),
        ("reviewer", {}, 403, "G-ROLE"),
        ("developer", {"sql": "SELECT resident_id FROM residents"}, 201, None),
        ("developer", {"kind": "model"}, 422, "G-INPUT"),
        ("developer", {"kind": "model", "features": QUERY, "model": "gpt", "epsilon": 1.0}, 422, "G-INPUT"),
        ("developer", {"sql": "   "}, 422, "G-INPUT"),
    ],
    ids=[
        "other-tenant",
        "wrong-role",
        "policy-refusal-is-stored",
        "model-without-spec",
        "unknown-model",
        "blank",
    ],
)
def test_a_refused_submission_leaves_no_job(
    world: World, role: str, change: dict[str, Any], status: int, rule: str | None
) -> None:
    before = _job_ids(world)
    body = {"scenario_id": world.scenarios["governance"]["id"], "sql": QUERY, **change}
    response = world.client.post("/v1/jobs", json=body, headers=world.headers(role))
    if rule is None:
        assert response.status_code == status and response.json()["status"] == "refused"
        assert _job_ids(world) - before == {response.json()["id"]}
        return
    assert_problem(response, status, rule)
    assert _job_ids(world) == before
