"""Annual evaluation over HTTP: the report of a year, who may read it, the outcomes and what
follows them — a final pass, a 30-day rectification, and exit on a fail or a second rectify."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest

from gateway.control import ControlPlane, control_url
from gateway.control.accounting import ACCOUNTING_TZ
from gateway.control.rectification import flag_overdue
from ledger import Ledger
from tests.gateway.api.conftest import World, drain, running_world

YEAR = datetime.now(ACCOUNTING_TZ).year


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """The report's job is run by a runner drained in this process: no runner process is needed."""
    with running_world(tmp_path_factory.mktemp("evaluations"), start_runner=False) as built:
        yield built


def _report(world: World, operator: str, role: str = "authority", status: int = 200) -> dict:
    path = f"/v1/evaluations/report?operator_id={world.orgs[operator]['id']}&year={YEAR}"
    return world.get(path, role, status)


def _record(world: World, operator: str, outcome: str, status: int = 201) -> dict:
    body = {"operator_id": world.orgs[operator]["id"], "year": YEAR, "outcome": outcome, "reason": "assessed"}
    return world.post("/v1/evaluations", body, status=status)


def _new_operator(world: World, name: str) -> tuple[str, str]:
    """An operator organisation with an authorization and a token: (organisation id, token)."""
    org = world.post("/v1/organisations", {"name": name, "kind": "operator", "id_reference": f"REF-{name}"})
    user = world.post(
        "/v1/users",
        {"organisation_id": org["id"], "name": name, "role": "operator", "id_reference": f"RN-{name}"},
    )
    token = world.post(f"/v1/users/{user['id']}/tokens", {"label": "t"})["token"]
    grant = {
        "operator_id": org["id"],
        "mode": "whole",
        "datasets": ["residents"],
        "category": "public_welfare",
    }
    world.post("/v1/authorizations", grant)
    world.orgs[name] = org
    world.tokens[name] = token
    return org["id"], token


def test_the_report_gathers_the_year_of_one_operator(world: World) -> None:
    job = world.submit("SELECT district, COUNT(*) AS n FROM residents GROUP BY district")
    drain(world)
    assert world.get(f"/v1/jobs/{job['id']}", "developer")["status"] == "pending_review"
    found = _report(world, "operator")
    assert found["operator"]["name"] == "城市数据运营有限公司" and found["year"] == YEAR
    assert found["jobs"]["total"] >= 1 and found["jobs"]["pending_review"] >= 1
    assert found["usage"]["jobs_metered"] >= 1 and found["usage"]["rows_scanned"] >= 2000
    assert found["incidents"]["total"] == 0 and found["quality_feedback"]["filed"] == 0
    assert {b["dataset"] for b in found["budgets"]} == {"residents"}
    assert [a["status"] for a in found["authorizations"]] == ["active"]
    assert _report(world, "operator", role="operator")["operator"] == found["operator"]


@pytest.mark.parametrize(("role", "status"), [("other_operator", 404), ("developer", 403), ("reviewer", 403)])
def test_others_cannot_read_an_operators_report(world: World, role: str, status: int) -> None:
    _report(world, "operator", role=role, status=status)


def test_a_pass_is_final(world: World) -> None:
    passed = _record(world, "operator", "pass")
    assert passed["round"] == 1 and passed["rectify_due"] is None and passed["exited"] == []
    refused = _record(world, "operator", "fail", status=409)
    assert refused["rule"] == "G-EVALUATION"
    (entry,) = world.get(
        f"/v1/ledger/entries?action=evaluation.recorded&subject={world.orgs['operator']['id']}", "auditor"
    )["entries"]
    assert '"outcome":"pass"' in entry["entry"] and '"report_sha256":' in entry["entry"]


def test_only_the_authority_records_and_bad_outcomes_are_refused(world: World) -> None:
    body = {"operator_id": world.orgs["other_operator"]["id"], "year": YEAR, "outcome": "pass", "reason": "r"}
    for role in ("operator", "auditor", "reviewer"):
        assert world.client.post("/v1/evaluations", json=body, headers=world.headers(role)).status_code == 403
    for bad in ({"outcome": "excellent"}, {"year": 1999}, {"reason": ""}):
        response = world.client.post(
            "/v1/evaluations", json={**body, **bad}, headers=world.headers("authority")
        )
        assert response.status_code == 422
    assert world.get("/v1/evaluations", "other_operator") == []


def test_a_rectification_has_thirty_days_and_is_flagged_once_when_missed(world: World) -> None:
    _new_operator(world, "整改运营公司")
    first = _record(world, "整改运营公司", "rectify")
    due = datetime.fromisoformat(first["rectify_due"])
    assert due - datetime.fromisoformat(first["decided_at"]) == timedelta(days=30)
    ledger = Ledger.open(world.workdir / "ledger")
    later = ControlPlane.open(control_url(world.workdir), ledger, clock=lambda: due + timedelta(minutes=1))
    try:
        assert flag_overdue(later, "platform:runner") == [first["id"]]
        assert flag_overdue(later, "platform:runner") == []
    finally:
        later.close()
        ledger.close()
    listed = {e["id"]: e for e in world.get("/v1/evaluations")}
    assert listed[first["id"]]["overdue_at"] is not None
    again = _record(world, "整改运营公司", "pass")
    assert again["round"] == 2 and again["exited"] == []
    assert _record(world, "整改运营公司", "pass", status=409)["rule"] == "G-EVALUATION"
    assert world.get("/v1/authorizations", "整改运营公司")[0]["status"] == "active"


@pytest.mark.parametrize("outcomes", [("fail",), ("rectify", "rectify")])
def test_a_fail_or_a_second_rectify_ends_in_exit(world: World, outcomes: tuple[str, ...]) -> None:
    name = f"退出运营公司-{len(outcomes)}"
    _, token = _new_operator(world, name)
    for outcome in outcomes:
        decided = _record(world, name, outcome)
    assert len(decided["exited"]) == 1
    (ended,) = decided["exited"]
    assert world.get(f"/v1/authorizations/{ended}")["status"] == "revoked"
    assert world.get(f"/v1/authorizations/{ended}/exit-report")["report"]["exited"]
    assert world.client.get("/v1/me", headers={"Authorization": f"Bearer {token}"}).status_code == 401
