"""The runner against the control plane: revocation and expiry stop queued and running jobs at
once, results of closed jobs never reach review, and a release the differencing control
refuses is returned rather than retried forever."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from gateway.jobs import claim, load
from gateway.runner import Runner
from sandbox.jobs import JobOutcome
from sandbox.limits import Limits
from tests.gateway.api.conftest import GOVERNANCE_COLUMNS, World, running_world


@pytest.fixture(scope="module")
def idle(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """A platform whose runner the tests drive by hand."""
    with running_world(tmp_path_factory.mktemp("runner"), start_runner=False) as built:
        yield built


def _tenant(world: World, name: str, min_cell: int = 10, **grant: Any) -> dict[str, Any]:
    """A fresh operator with a developer, an authorization and an approved scenario."""
    org = world.post("/v1/organisations", {"name": name, "kind": "operator", "id_reference": f"REF-{name}"})
    dev = world.post(
        "/v1/users",
        {"organisation_id": org["id"], "name": "开发者", "role": "developer", "id_reference": "RN-x"},
    )
    token = world.post(f"/v1/users/{dev['id']}/tokens", {"label": "t"})["token"]
    auth = world.post(
        "/v1/authorizations",
        {
            "operator_id": org["id"],
            "mode": "whole",
            "datasets": ["residents"],
            "category": "industry",
            **grant,
        },
    )
    applied = world.client.post(
        "/v1/scenarios",
        json={
            "authorization_id": auth["id"],
            "name": "s",
            "purpose": "planning",
            "datasets": GOVERNANCE_COLUMNS,
            "output_forms": ["aggregate"],
            "privacy_unit": "residents.resident_id",
            "requested_epsilon": 1.0,
        },
        headers=world.headers("authority"),
    )
    # Scenarios are applied by operators; the authority only approves them.
    assert applied.status_code == 403
    operator = world.post(
        "/v1/users",
        {"organisation_id": org["id"], "name": "运营者", "role": "operator", "id_reference": "RN-y"},
    )
    op_token = world.post(f"/v1/users/{operator['id']}/tokens", {"label": "t"})["token"]
    world.tokens[f"{name}-op"], world.tokens[name] = op_token, token
    scenario = world.post(
        "/v1/scenarios",
        {
            "authorization_id": auth["id"],
            "name": "s",
            "purpose": "planning",
            "datasets": GOVERNANCE_COLUMNS,
            "output_forms": ["aggregate"],
            "privacy_unit": "residents.resident_id",
            "requested_epsilon": 1.0,
        },
        role=f"{name}-op",
    )
    terms = {"epsilon": 1.0, "query_epsilon": 0.5, "allow_dp": True, "min_cell": min_cell}
    world.scenarios[name] = world.post(
        f"/v1/scenarios/{scenario['id']}/approve", {"terms": terms, "reason": "ok"}, status=200
    )
    return {"org": org, "authorization": auth, "token": token}


def _revoke(world: World, authorization_id: str) -> Any:
    return world.post(
        f"/v1/authorizations/{authorization_id}/revoke", {"reason": "terms breached"}, status=200
    )


COUNT = "SELECT district, COUNT(*) AS n FROM residents GROUP BY district"


def test_revocation_closes_queued_jobs_and_the_runner_never_runs_them(idle: World) -> None:
    tenant = _tenant(idle, "exit-queued")
    job = idle.submit(COUNT, role="exit-queued", scenario="exit-queued")
    assert job["status"] == "queued"
    summary = _revoke(idle, tenant["authorization"]["id"])
    assert summary["exited"] and job["id"] in summary["jobs_closed"]
    runner = Runner.open(idle.workdir)
    try:
        runner.drain()
        closed = load(runner.control, job["id"])
        assert closed.status == "closed" and closed.rule == "G-REVOKED"
        assert not (idle.workdir / "quarantine" / job["id"]).exists()
    finally:
        runner.close()
    again = idle.client.get(f"/v1/jobs/{job['id']}", headers=idle.headers("exit-queued"))
    assert again.status_code == 401  # the exited operator's tokens were revoked with it


def test_a_job_revoked_while_it_runs_never_reaches_review(idle: World) -> None:
    tenant = _tenant(idle, "exit-running")
    job = idle.submit(COUNT, role="exit-running", scenario="exit-running")

    class RevokedMidRun(Runner):
        """Revokes the authorization after the enclave computed the result, before admission."""

        def _execute(self, *args: Any) -> JobOutcome:
            outcome = super()._execute(*args)
            _revoke(idle, tenant["authorization"]["id"])
            return outcome

    runner = RevokedMidRun.open(idle.workdir)
    try:
        claimed = claim(runner.control)
        assert claimed is not None and claimed.id == job["id"]
        runner.run(claimed)
        assert load(runner.control, job["id"]).status == "closed"
        assert not (idle.workdir / "quarantine" / job["id"]).exists()
        assert not (idle.workdir / "review" / "results" / job["id"]).exists()
        assert all(i.job_id != job["id"] for i in runner.gate.queue.items("pending_review"))
        actions = [e.action for e in runner.enclave.ledger.entries() if e.subject == job["id"]]
        assert actions[-1] == "job.discarded"
        assert "job.metered" in actions  # what it consumed before it was closed is metered all the same
    finally:
        runner.close()


def test_an_expired_authorization_stops_a_queued_job(idle: World) -> None:
    ends = datetime.now(UTC) + timedelta(days=2)
    _tenant(idle, "expiring", ends_at=ends.isoformat())
    job = idle.submit(COUNT, role="expiring", scenario="expiring")
    later = ends + timedelta(minutes=1)
    runner = Runner.open(idle.workdir, clock=lambda: later)
    try:
        runner.drain()
        closed = load(runner.control, job["id"])
        assert closed.status == "closed" and closed.rule in ("G-AUTHORIZATION", "G-SCENARIO"), closed
    finally:
        runner.close()


def test_an_approved_result_is_withdrawn_not_released_when_the_operator_exits(idle: World) -> None:
    tenant = _tenant(idle, "exit-approved")
    job = idle.submit(COUNT, role="exit-approved", scenario="exit-approved")
    runner = Runner.open(idle.workdir)
    try:
        runner.drain()
        idle.post(
            f"/v1/reviews/{job['id']}/decisions", {"decision": "approve", "reason": "ok"}, "reviewer", 200
        )
        _revoke(idle, tenant["authorization"]["id"])
        runner.drain()
        assert load(runner.control, job["id"]).status == "closed"
        assert runner.gate.queue.get(job["id"]).state == "rejected"
        assert not (idle.workdir / "releases" / job["id"]).exists()
    finally:
        runner.close()


def test_a_release_that_now_differences_is_returned_with_the_rule(idle: World) -> None:
    # Postgraduates are far fewer than 500 here, every total far more: each result passes alone.
    _tenant(idle, "diff", min_cell=500)
    everyone = idle.submit("SELECT COUNT(*) AS n FROM residents", role="diff", scenario="diff")
    narrowed = idle.submit(
        "SELECT COUNT(*) AS n FROM residents WHERE education <> 'postgraduate'", role="diff", scenario="diff"
    )
    runner = Runner.open(idle.workdir)
    try:
        runner.drain()
        for job in (everyone, narrowed):
            item = idle.get(f"/v1/reviews/{job['id']}", "reviewer")
            assert item["worst_check"] == "pass", item["evidence"]["report"]
            idle.post(
                f"/v1/reviews/{job['id']}/decisions", {"decision": "approve", "reason": "ok"}, "reviewer", 200
            )
        runner.drain()
        outcomes = sorted(
            (load(runner.control, j["id"]).status, load(runner.control, j["id"]).rule)
            for j in (everyone, narrowed)
        )
    finally:
        runner.close()
    assert outcomes == [("released", None), ("returned", "SDC-DIFFERENCING")]


def test_a_wait_on_a_job_no_runner_takes_ends_at_its_limit_with_the_job_unchanged(idle: World) -> None:
    job = idle.submit("SELECT district, COUNT(*) AS n FROM residents GROUP BY district")
    waited = idle.get(f"/v1/jobs/{job['id']}?wait=0.3", "developer")
    assert waited["status"] == "queued" and waited["updated_at"] == job["updated_at"]


def test_a_claim_says_when_more_jobs_wait_and_takes_them_oldest_first(idle: World) -> None:
    runner = Runner.open(idle.workdir)
    calls: list[str] = []
    try:
        while claim(runner.control) is not None:  # what earlier tests left queued
            pass
        first = idle.submit("SELECT district, COUNT(*) AS n FROM residents GROUP BY district")
        second = idle.submit("SELECT gender, COUNT(*) AS n FROM residents GROUP BY gender")
        taken = [claim(runner.control, more=lambda: calls.append("more")) for _ in range(3)]
    finally:
        runner.close()
    assert [job.id if job else None for job in taken] == [first["id"], second["id"], None]
    assert calls == ["more"], "only the claim that left a job waiting asks for another thread"
    assert [idle.get(f"/v1/jobs/{j['id']}", "developer")["status"] for j in (first, second)] == [
        "running"
    ] * 2


def test_a_held_submission_no_runner_takes_ends_at_its_limit_still_queued(idle: World) -> None:
    body = {
        "scenario_id": idle.scenarios["governance"]["id"],
        "sql": "SELECT gender, COUNT(*) AS n FROM residents GROUP BY gender",
    }
    held = idle.post("/v1/jobs?wait=0.3", body, "developer")
    assert held["status"] == "queued"
    assert idle.get(f"/v1/jobs/{held['id']}", "developer") == held


def test_a_runner_opens_the_worker_pool_it_is_given(idle: World) -> None:
    runner = Runner.open(idle.workdir, workers=1, limits=Limits(timeout_s=5, memory_mb=300))
    try:
        assert runner.enclave.pool.workers == 1
        assert (runner.enclave.pool.limits.timeout_s, runner.enclave.pool.limits.memory_mb) == (5, 300)
    finally:
        runner.close()


def test_the_release_key_is_published_for_verifiers(idle: World) -> None:
    keys = idle.get("/v1/keys", "auditor")
    assert keys["release"].startswith(keys["ledger"].split("+")[0])
