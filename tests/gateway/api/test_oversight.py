"""Quality feedback, incidents, suspension and webhooks through the real HTTP API and job runner:
access after revocation recorded and raised, failed sign-ins and differencing attempts
detected, a suspended operator refused on every route and its jobs held, and a webhook
heard by a receiver on 127.0.0.1."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import fastapi.routing
import pytest
from fastapi.testclient import TestClient

from gateway.api import BINARY_PATH
from gateway.jobs import claim, load
from gateway.runner import Runner
from tests.gateway.api.conftest import GOVERNANCE_COLUMNS, World, drain, running_world
from tests.gateway.api.probing import assert_problem, ledger_size
from tests.gateway.receiver import receiving

TOTAL = "SELECT COUNT(*) AS n FROM residents"
ALL_BUT_POSTGRADUATES = "SELECT COUNT(*) AS n FROM residents WHERE education <> 'postgraduate'"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """A platform whose runner the tests drive by hand, with the residents' provider enrolled."""
    with running_world(tmp_path_factory.mktemp("oversight"), start_runner=False) as built:
        org = built.post(
            "/v1/organisations",
            {"name": "bureau", "kind": "provider", "id_reference": "REF-bureau"},
        )
        user = built.post(
            "/v1/users",
            {"organisation_id": org["id"], "name": "民政", "role": "provider", "id_reference": "RN-ca"},
        )
        built.tokens["residents_provider"] = built.post(f"/v1/users/{user['id']}/tokens", {"label": "t"})[
            "token"
        ]
        yield built


def tenant(world: World, min_cell: int = 10) -> dict[str, str]:
    """A fresh operator with an operator user, a developer, an authorization over residents and
    an approved scenario; their tokens are ``world.tokens[<name>-op]`` and ``[<name>-dev]``."""
    name = f"t{secrets.token_hex(3)}"
    org = world.post("/v1/organisations", {"name": name, "kind": "operator", "id_reference": f"REF-{name}"})
    for role, key in (("operator", f"{name}-op"), ("developer", f"{name}-dev")):
        user = world.post(
            "/v1/users",
            {"organisation_id": org["id"], "name": key, "role": role, "id_reference": f"RN-{key}"},
        )
        world.users[key] = user
        world.tokens[key] = world.post(f"/v1/users/{user['id']}/tokens", {"label": "t"})["token"]
    grant = {"operator_id": org["id"], "mode": "whole", "datasets": ["residents"], "category": "industry"}
    authorization = world.post("/v1/authorizations", grant)
    application = {
        "authorization_id": authorization["id"], "name": "s", "purpose": "planning",
        "datasets": GOVERNANCE_COLUMNS, "output_forms": ["aggregate"], "requested_epsilon": 1.0,
    }  # fmt: skip
    applied = world.post("/v1/scenarios", application, role=f"{name}-op")
    terms = {"terms": {"epsilon": 1.0, "query_epsilon": 0.5, "min_cell": min_cell}, "reason": "ok"}
    world.scenarios[name] = world.post(f"/v1/scenarios/{applied['id']}/approve", terms, status=200)
    return {"name": name, "org": org["id"], "authorization": authorization["id"]}


def scan(world: World) -> dict[str, Any]:
    return world.post("/v1/incidents/scan", {}, status=200)


def incidents_of(world: World, rule: str, subject: str) -> list[dict[str, Any]]:
    return [i for i in world.get("/v1/incidents") if i["rule"] == rule and i["subject_key"] == subject]


# ----------------------------------------------------------------- data quality


def test_quality_feedback_is_filed_answered_by_the_provider_alone_and_confirmed(world: World) -> None:
    t = tenant(world)
    body = {
        "dataset": "residents",
        "category": "completeness",
        "description": "district empty",
        "columns": ["district"],
    }
    issue = world.post("/v1/quality", body, role=f"{t['name']}-dev")
    assert issue["status"] == "open" and not issue["overdue"]
    assert datetime.fromisoformat(issue["due_at"]) - datetime.fromisoformat(issue["filed_at"]) >= timedelta(
        days=5
    )
    path = f"/v1/quality/{issue['id']}"
    answer = {"resolution": "re-imported", "fixed_in_version": "v2"}
    for role, status, rule in (
        ("provider", 404, "G-TENANT"),
        ("operator", 403, "G-ROLE"),
        ("authority", 403, "G-ROLE"),
    ):
        response = world.client.post(f"{path}/answer", json=answer, headers=world.headers(role))
        assert_problem(response, status, rule)
    assert world.post(f"{path}/answer", answer, role="residents_provider", status=200)["status"] == "answered"
    assert world.post(f"{path}/confirm", {}, role=f"{t['name']}-op", status=200)["status"] == "closed"
    assert_problem(world.client.get(path, headers=world.headers("other_operator")), 404, "G-TENANT")
    assert world.get("/v1/quality/calendar", role=f"{t['name']}-dev")["holidays"] == []


def test_quality_feedback_refusals_through_the_api(world: World) -> None:
    t = tenant(world)
    good = {"dataset": "residents", "category": "accuracy", "description": "ages over 150"}
    for change, status, rule in (
        ({"dataset": "enterprises"}, 403, "G-AUTHORIZATION"),
        ({"dataset": "no_such_data"}, 422, "G-INPUT"),
        ({"category": "vibes"}, 422, "G-INPUT"),
        ({"columns": ["salary"]}, 422, "G-INPUT"),
        ({"unexpected": 1}, 422, "G-INPUT"),
    ):
        response = world.client.post(
            "/v1/quality", json={**good, **change}, headers=world.headers(f"{t['name']}-dev")
        )
        assert_problem(response, status, rule)
    assert_problem(
        world.client.post("/v1/quality", json=good, headers=world.headers("provider")), 403, "G-ROLE"
    )
    assert_problem(world.client.post("/v1/quality/sweep", headers=world.headers("operator")), 403, "G-ROLE")
    assert world.post("/v1/quality/sweep", {}, status=200) == []


# ----------------------------------------------------------------- incidents


def test_access_after_revocation_is_recorded_and_raises_an_incident_with_a_deadline(world: World) -> None:
    t = tenant(world)
    developer = world.tokens[f"{t['name']}-dev"]
    world.post(f"/v1/authorizations/{t['authorization']}/revoke", {"reason": "agreement ended"}, status=200)
    since = ledger_size(world)
    response = world.client.get("/v1/jobs", headers={"Authorization": f"Bearer {developer}"})
    assert_problem(response, 401, "G-TOKEN")
    entries = world.get(f"/v1/ledger/entries?start={since}&action=access.denied", "auditor")["entries"]
    (denial,) = [json.loads(e["entry"]) for e in entries]
    assert denial["details"]["kind"] == "revoked" and denial["details"]["operator_id"] == t["org"]
    assert denial["details"]["user_id"] == world.users[f"{t['name']}-dev"]["id"]
    assert developer not in json.dumps(denial) and denial["details"]["token"] != developer[:12]
    assert_problem(world.client.post("/v1/incidents/scan", headers=world.headers("operator")), 403, "G-ROLE")
    raised = scan(world)["incidents_raised"]
    (incident,) = incidents_of(world, "D-REVOKED-ACCESS", t["org"])
    assert incident["id"] in raised and incident["operator_id"] == t["org"] and incident["status"] == "open"
    due = datetime.fromisoformat(incident["report_due_at"]) - datetime.fromisoformat(incident["detected_at"])
    assert due == timedelta(hours=1) and 0 < incident["minutes_left"] <= 60 and not incident["overdue"]
    shown = world.get(f"/v1/incidents/{incident['id']}", "auditor")
    assert shown["timeline"][0]["ledger_index"] == denial["index"]
    assert_problem(
        world.client.get(f"/v1/incidents/{incident['id']}", headers=world.headers("operator")),
        404,
        "G-TENANT",
    )
    reported = world.post(f"/v1/incidents/{incident['id']}/report", {"report": "by phone"}, status=200)
    assert reported["status"] == "reported" and reported["reported_late"] is False
    assert scan(world)["incidents_raised"] == []


def test_failed_sign_ins_from_one_address_raise_one_incident(world: World) -> None:
    address = "192.0.2.44"
    probe = TestClient(world.client.app, client=(address, 40000))
    threshold = next(r for r in world.get("/v1/incidents/rules") if r["id"] == "D-SIGN-IN")["threshold"]
    for _ in range(threshold - 1):
        garbage = {"Authorization": f"Bearer vbx_{secrets.token_urlsafe(32)}"}
        assert_problem(probe.get("/v1/scenarios", headers=garbage), 401, "G-TOKEN")
    scan(world)
    assert incidents_of(world, "D-SIGN-IN", address) == []
    assert_problem(
        probe.get("/v1/scenarios", headers={"Authorization": "Bearer not-even-a-token"}), 401, "G-TOKEN"
    )
    scan(world)
    (incident,) = incidents_of(world, "D-SIGN-IN", address)
    assert incident["signals"] == threshold and incident["operator_id"] is None


def test_repeated_differencing_attempts_raise_an_incident(world: World) -> None:
    # Postgraduates are far fewer than 500, every total far more: each result passes alone.
    t = tenant(world, min_cell=500)
    role, scenario = f"{t['name']}-dev", t["name"]
    total = world.submit(TOTAL, role=role, scenario=scenario)
    drain(world)
    world.post(
        f"/v1/reviews/{total['id']}/decisions", {"decision": "approve", "reason": "ok"}, "reviewer", 200
    )
    drain(world)
    assert world.get(f"/v1/jobs/{total['id']}", role)["status"] == "released"
    for _ in range(3):
        world.submit(ALL_BUT_POSTGRADUATES, role=role, scenario=scenario)
    drain(world)
    developer = world.users[role]["id"]
    (incident,) = incidents_of(world, "D-DIFFERENCING", developer)
    assert incident["operator_id"] == t["org"] and incident["signals"] == 3 and incident["severity"] == "high"


# ----------------------------------------------------------------- suspension


def _protected_routes(world: World) -> list[tuple[str, str]]:
    """Every (method, path) of the app that refuses a request without a token, ids filled in."""
    # FastAPI ≥ 0.160 keeps included routers nested; older versions list routes flat.
    flatten = getattr(fastapi.routing, "iter_route_contexts", None)
    routes = flatten(world.client.app.routes) if flatten is not None else world.client.app.routes
    found = []
    for route in routes:
        path = route.path.replace("{", "").replace("}", "")
        for method in sorted(set(getattr(route, "methods", None) or ()) - {"HEAD"}):
            if _call(world, method, path, {}).status_code == 401:
                found.append((method, path))
    return found


def _call(world: World, method: str, path: str, headers: dict[str, str]) -> Any:
    if BINARY_PATH.fullmatch(path):
        headers = {**headers, "Content-Type": "application/octet-stream"}
        return world.client.request(method, path, content=b"x", headers=headers)
    return world.client.request(method, path, json={} if method == "POST" else None, headers=headers)


def test_a_suspended_operators_users_are_refused_on_every_route_until_reinstated(world: World) -> None:
    t = tenant(world)
    path = f"/v1/operators/{t['org']}/suspend"
    assert_problem(
        world.client.post(path, json={"reason": "x"}, headers=world.headers("operator")), 403, "G-ROLE"
    )
    world.post(path, {"reason": "investigating an incident"}, status=200)
    routes = _protected_routes(world)
    assert len(routes) > 40 and ("POST", "/v1/jobs") in routes and ("GET", "/v1/incidents") in routes
    since = ledger_size(world)
    for key in (f"{t['name']}-op", f"{t['name']}-dev"):
        for method, route in routes:
            assert_problem(_call(world, method, route, world.headers(key)), 403, "G-SUSPENDED")
    denials = world.get(f"/v1/ledger/entries?start={since}&action=access.denied", "auditor")["entries"]
    assert {json.loads(e["entry"])["actor"] for e in denials} == {
        world.users[f"{t['name']}-op"]["id"],
        world.users[f"{t['name']}-dev"]["id"],
    }
    assert world.get("/v1/me", "developer")["role"] == "developer"  # other operators are untouched
    assert_problem(
        world.client.post(path, json={"reason": "again"}, headers=world.headers("authority")), 409, "G-STATE"
    )
    world.post(f"/v1/operators/{t['org']}/reinstate", {"reason": "cleared"}, status=200)
    assert world.get("/v1/me", f"{t['name']}-dev")["role"] == "developer"
    (ended,) = [s for s in world.get("/v1/operators/suspensions", "auditor") if s["operator_id"] == t["org"]]
    assert ended["reinstated_at"] is not None


def test_a_suspended_operators_queued_jobs_wait_for_reinstatement(world: World) -> None:
    t = tenant(world)
    role = f"{t['name']}-dev"
    job = world.submit(
        "SELECT district, COUNT(*) AS n FROM residents GROUP BY district", role=role, scenario=t["name"]
    )
    world.post(f"/v1/operators/{t['org']}/suspend", {"reason": "investigating"}, status=200)
    drain(world)
    assert world.get(f"/v1/jobs/{job['id']}", "auditor")["status"] == "queued"
    world.post(f"/v1/operators/{t['org']}/reinstate", {"reason": "cleared"}, status=200)
    drain(world)
    assert world.get(f"/v1/jobs/{job['id']}", role)["status"] == "pending_review"


def test_a_job_claimed_just_before_the_suspension_goes_back_to_the_queue(world: World) -> None:
    t = tenant(world)
    role = f"{t['name']}-dev"
    job = world.submit(
        "SELECT district, COUNT(*) AS n FROM residents GROUP BY district", role=role, scenario=t["name"]
    )
    runner = Runner.open(world.workdir)
    try:
        claimed = claim(runner.control)
        assert claimed is not None and claimed.id == job["id"] and claimed.status == "running"
        world.post(f"/v1/operators/{t['org']}/suspend", {"reason": "investigating"}, status=200)
        runner.run(claimed)
        assert load(runner.control, job["id"]).status == "queued"
    finally:
        runner.close()
    world.post(f"/v1/operators/{t['org']}/reinstate", {"reason": "cleared"}, status=200)
    drain(world)
    assert world.get(f"/v1/jobs/{job['id']}", role)["status"] == "pending_review"


# ----------------------------------------------------------------- webhooks


def test_the_runner_tells_a_webhook_of_a_new_incident_signed(world: World) -> None:
    with receiving(lambda: datetime.now(UTC)) as receiver:
        bad = {"url": "ftp://127.0.0.1/x"}
        assert_problem(
            world.client.post("/v1/webhooks", json=bad, headers=world.headers("authority")), 422, "G-INPUT"
        )
        hook = world.post("/v1/webhooks", {"url": receiver.url, "events": ["incident.raised"]})
        receiver.secret = hook["secret"]
        assert all("secret" not in h for h in world.get("/v1/webhooks", "auditor"))
        t = tenant(world)
        world.post(f"/v1/authorizations/{t['authorization']}/revoke", {"reason": "ended"}, status=200)
        world.client.get("/v1/me", headers={"Authorization": f"Bearer {world.tokens[t['name'] + '-op']}"})
        drain(world)  # the runner's sweep detects, then sends
        signed = [json.loads(body) for _, body, ok in receiver.got if ok]
        assert any(p["event"] == "incident.raised" and p["data"]["operator_id"] == t["org"] for p in signed)
        assert all(ok for _, _, ok in receiver.got)
        delivered = world.get(f"/v1/webhooks/{hook['id']}/deliveries")
        assert delivered and {d["status"] for d in delivered} == {"delivered"}
        world.post(f"/v1/webhooks/{hook['id']}/remove", {}, status=200)
