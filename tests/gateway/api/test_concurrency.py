"""The served runner takes jobs on several threads: concurrent jobs still charge the budget
exactly, each result reaches review once, and the ledger stays whole."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from ledger import verify_log
from tests.gateway.api.conftest import GOVERNANCE_COLUMNS, World, add_scenario, running_world

QUERIES = (
    "SELECT district, COUNT(*) AS n{} FROM residents GROUP BY district",
    "SELECT education, COUNT(*) AS n{} FROM residents GROUP BY education",
    "SELECT gender, COUNT(*) AS n{} FROM residents GROUP BY gender",
)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with running_world(tmp_path_factory.mktemp("concurrency")) as built:
        assert built.client.app.state.platform.runner.alive()  # type: ignore[attr-defined]
        yield built


def _submit_together(world: World, bodies: list[dict[str, object]]) -> list[str]:
    """Submit every body from its own thread, all released at once; the job ids."""
    ids: list[str] = []
    lock, start = threading.Lock(), threading.Barrier(len(bodies))

    def submit(body: dict[str, object]) -> None:
        start.wait()
        job = world.post("/v1/jobs", body, "developer")
        with lock:
            ids.append(job["id"])

    threads = [threading.Thread(target=submit, args=(b,)) for b in bodies]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(ids) == len(bodies)
    return ids


def _finished(world: World, job_ids: list[str]) -> list[dict[str, object]]:
    return [world.get(f"/v1/jobs/{job_id}?wait=30", "developer") for job_id in job_ids]


def test_concurrent_dp_jobs_spend_exactly_the_scenario_budget(served: World) -> None:
    scenario = add_scenario(
        served,
        "small_budget",
        {"epsilon": 2.0, "query_epsilon": 0.5, "allow_dp": True, "min_cell": 10},
        name="budget race",
        purpose="population structure by district for public service planning",
        datasets={"residents": GOVERNANCE_COLUMNS["residents"]},
        output_forms=["aggregate"],
        privacy_unit="residents.resident_id",
    )
    bodies = [
        {"scenario_id": scenario["id"], "sql": QUERIES[i % 3].format(f"_{i}"), "dp": True} for i in range(10)
    ]
    jobs = _finished(served, _submit_together(served, bodies))
    statuses = Counter(str(job["status"]) for job in jobs)
    assert statuses == {"pending_review": 4, "refused": 6}, statuses
    assert {job["rule"] for job in jobs if job["status"] == "refused"} == {"DP-BUDGET"}
    budget = served.client.app.state.platform.budget  # type: ignore[attr-defined]
    assert budget.remaining(scenario["id"], "residents").epsilon == pytest.approx(0.0, abs=1e-9)
    paid = {receipt.job_id for receipt in budget.charges(scenario["id"])}
    assert paid == {job["id"] for job in jobs if job["status"] == "pending_review"}


def test_concurrent_jobs_each_reach_review_once_and_the_ledger_verifies(served: World) -> None:
    bodies = [
        {"scenario_id": served.scenarios["governance"]["id"], "sql": QUERIES[i % 3].format(f"_c{i}")}
        for i in range(8)
    ]
    ids = _submit_together(served, bodies)
    jobs = _finished(served, ids)
    assert {str(job["status"]) for job in jobs} == {"pending_review"}, jobs
    queue = [item["job_id"] for item in served.get("/v1/reviews", "reviewer")]
    assert Counter(j for j in queue if j in ids) == Counter(ids), "each result is queued exactly once"
    for job_id in ids:
        started = served.get(f"/v1/ledger/entries?action=job.started&subject={job_id}", "auditor")
        assert len(started["entries"]) == 1, job_id
    report = verify_log(Path(served.workdir) / "ledger")
    assert report.failure is None, report.failure
