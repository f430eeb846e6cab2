"""One result's whole path through the API: submitted, refused or run, reviewed, released, downloaded."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from gateway.api import jobs as api_jobs
from tests.gateway.api.conftest import World, running_world


def test_a_query_runs_is_reviewed_and_released_to_its_operator_only(world: World) -> None:
    job = world.submit("SELECT district, COUNT(*) AS n FROM residents GROUP BY district")
    assert job["status"] == "queued"
    done = world.wait(job["id"])
    assert done["status"] == "pending_review", done
    queue = world.get("/v1/reviews", "reviewer")
    assert job["id"] in [i["job_id"] for i in queue]
    item = world.get(f"/v1/reviews/{job['id']}", "reviewer")
    assert item["worst_check"] == "pass" and item["total_rows"] == len(item["rows"])
    world.post(
        f"/v1/reviews/{job['id']}/decisions",
        {"decision": "approve", "reason": "large cells"},
        "reviewer",
        200,
    )
    released = world.wait(job["id"], until=("released", "returned"))
    assert released["status"] == "released", released
    csv = world.client.get(f"/v1/jobs/{job['id']}/release/result.csv", headers=world.headers("developer"))
    assert csv.status_code == 200 and csv.text.startswith('"district","n"')
    for outsider in ("other_developer", "reviewer", "auditor"):
        denied = world.client.get(f"/v1/jobs/{job['id']}/release/result.csv", headers=world.headers(outsider))
        assert denied.status_code in (403, 404), outsider
        assert denied.headers["content-type"].startswith("application/problem+json")
    downloads = world.get(f"/v1/ledger/entries?action=release.downloaded&subject={job['id']}", "auditor")
    assert len(downloads["entries"]) == 1


def test_waiting_on_a_job_answers_when_the_runner_moves_it(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # With re-reads 60 s apart, only the runner's report can end the wait early.
    monkeypatch.setattr(api_jobs, "_RECHECK_S", 60.0)
    job = world.submit("SELECT gender, COUNT(*) AS n FROM residents GROUP BY gender")
    started = time.monotonic()
    waited = world.get(f"/v1/jobs/{job['id']}?wait=30", "developer")
    assert waited["status"] not in ("queued", "running"), waited
    assert time.monotonic() - started < 20, "the wait ended at the runner's step, not at its limit"
    again = time.monotonic()
    assert world.get(f"/v1/jobs/{job['id']}?wait=30", "developer")["status"] == waited["status"]
    assert time.monotonic() - again < 20, "a job the runner has finished with is never held"


def test_a_submission_can_be_held_until_the_runner_moves_the_job(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(api_jobs, "_RECHECK_S", 60.0)
    body = {
        "scenario_id": world.scenarios["governance"]["id"],
        "sql": "SELECT gender, COUNT(*) AS n FROM residents GROUP BY gender",
    }
    started = time.monotonic()
    held = world.post("/v1/jobs?wait=30", body, "developer")
    assert held["status"] == "pending_review", held
    assert time.monotonic() - started < 20, "the hold ended at the runner's step, not at its limit"
    assert world.get(f"/v1/jobs/{held['id']}", "developer")["status"] == "pending_review"
    refused = world.post(
        "/v1/jobs?wait=30", {**body, "sql": "SELECT resident_id FROM residents"}, "developer"
    )
    assert refused["status"] == "refused" and refused["rule"].startswith("P-")


def test_a_bad_hold_on_a_submission_queues_nothing(world: World) -> None:
    body = {"scenario_id": world.scenarios["governance"]["id"], "sql": "SELECT 1 AS one"}
    before = world.get("/v1/jobs", "developer")
    for bad in ("-1", "31", "soon", "inf"):
        response = world.client.post(f"/v1/jobs?wait={bad}", json=body, headers=world.headers("developer"))
        assert response.status_code == 422, bad
        assert response.headers["content-type"].startswith("application/problem+json")
    assert world.get("/v1/jobs", "developer") == before
    assert world.client.post("/v1/jobs?wait=1", json=body).status_code == 401


def test_waiting_is_bounded_and_checked_like_any_read(world: World) -> None:
    job = world.submit("SELECT education, COUNT(*) AS n FROM residents GROUP BY education")
    for bad in ("-1", "31", "soon", "nan"):
        refused = world.client.get(f"/v1/jobs/{job['id']}?wait={bad}", headers=world.headers("developer"))
        assert refused.status_code == 422, bad
        assert refused.headers["content-type"].startswith("application/problem+json")
    hidden = world.client.get(f"/v1/jobs/{job['id']}?wait=30", headers=world.headers("other_developer"))
    assert hidden.status_code == 404
    assert world.client.get(f"/v1/jobs/{job['id']}?wait=1").status_code == 401


def test_a_refused_query_is_recorded_with_its_rule(world: World) -> None:
    job = world.submit("SELECT resident_id FROM residents")
    assert job["status"] == "refused" and job["rule"].startswith("P-")
    listed = world.get("/v1/jobs?status=refused", "developer")
    assert job["id"] in [j["id"] for j in listed]


def test_mock_runs_return_at_once_marked_mock(world: World) -> None:
    result = world.submit(
        "SELECT education, COUNT(*) AS n FROM residents GROUP BY education", mock=True, status=200
    )
    assert result["marker"] == "MOCK" and result["columns"] == ["education", "n"]


def test_health_reports_a_dead_runner(tmp_path: Path) -> None:
    with running_world(tmp_path, rows=500) as fresh:
        assert fresh.client.get("/v1/health").json() == {"status": "ok", "runner": "alive"}
        process = fresh.client.app.state.platform.runner.process  # type: ignore[attr-defined]
        process.kill()
        process.join(10)
        response = fresh.client.get("/v1/health")
        assert response.status_code == 503 and response.json()["runner"] == "dead"
        # Waking a dead runner must never block the API: the job simply waits in the queue.
        queued = fresh.submit("SELECT gender, COUNT(*) AS n FROM residents GROUP BY gender")
        assert queued["status"] == "queued"


@pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed here")
def test_a_dp_model_trains_through_the_api_and_carries_its_checks(world: World) -> None:
    body = {
        "scenario_id": world.scenarios["governance"]["id"],
        "kind": "model",
        "features": "SELECT resident_id, education, gender, employed FROM residents",
        "model": "logistic_regression",
        "label": "employed",
        "epsilon": 1.0,
    }
    job = world.post("/v1/jobs", body, "developer")
    done = world.wait(job["id"])
    assert done["status"] == "pending_review", done
    item = world.get(f"/v1/reviews/{job['id']}", "reviewer")
    model = next(o for o in item["evidence"]["report"]["outcomes"] if o["rule"] == "SDC-MODEL")
    assert model["outcome"] in ("pass", "review"), model
    assert item["evidence"]["description"] is None  # noise and the model checks protect it, not cell sizes
    meter = world.get(f"/v1/meters/{job['id']}", "developer")  # training ran confined: its CPU is metered too
    assert (meter["epsilon"], meter["datasets"][0]["dataset"]) == (1.0, "residents") and meter["cpu_ms"] > 0


def test_a_domain_authorization_covers_only_its_providers_datasets(world: World) -> None:
    provider = world.get("/v1/catalog/residents")["provider"]
    body = {"operator_id": world.orgs["operator"]["id"], "mode": "domain", "scope": [provider],
            "datasets": ["residents"], "category": "industry"}  # fmt: skip
    world.post("/v1/authorizations", body)
    for changes, detail in (
        ({"scope": ["housing_bureau"]}, "outside the domain scope"),
        ({"datasets": ["nowhere"]}, "no registered dataset"),
    ):
        refused = world.client.post(
            "/v1/authorizations", json={**body, **changes}, headers=world.headers("authority")
        )
        assert refused.status_code == 422 and detail in refused.json()["detail"], refused.text


def test_the_budget_lets_as_many_dp_queries_as_epsilon_allows(world: World) -> None:
    budget = world.client.app.state.platform.budget  # type: ignore[attr-defined]
    left = budget.remaining(world.scenarios["other"]["id"], "residents")
    # terms: ε 5 at 0.5 per query, δ 1e-6 per query: ten queries' worth of δ
    assert left.epsilon == pytest.approx(5.0) and left.delta == pytest.approx(1e-5)
