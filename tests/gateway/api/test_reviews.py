"""Separation of duties and the two-reviewer rule cannot be bypassed through the API, and the
reviewer's mitigations work end to end."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.gateway.api.conftest import World, drain, running_world

SMALL = "SELECT district, education, gender, employed, COUNT(*) AS n FROM residents GROUP BY 1, 2, 3, 4"
LARGE = "SELECT gender, COUNT(*) AS n FROM residents GROUP BY gender"


@pytest.fixture(scope="module")
def sensitive(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """A platform whose datasets are classification level 3: every result needs two reviewers.
    Its jobs are run by a runner drained in this process."""
    with running_world(tmp_path_factory.mktemp("level3"), start_runner=False, level=3) as built:
        yield built


def _pending(world: World, sql: str) -> str:
    job = world.submit(sql)
    done = world.wait(job["id"])
    assert done["status"] == "pending_review", done
    return str(job["id"])


def _decide(world: World, job_id: str, role: str, decision: str = "approve", reason: str = "ok") -> Any:
    return world.client.post(
        f"/v1/reviews/{job_id}/decisions",
        json={"decision": decision, "reason": reason},
        headers=world.headers(role),
    )


def test_only_reviewers_reach_the_queue(world: World) -> None:
    job_id = _pending(world, LARGE)
    for role in ("developer", "operator", "partner_developer", "auditor", "authority", "provider"):
        listed = world.client.get("/v1/reviews", headers=world.headers(role))
        assert listed.status_code == 403 and listed.json()["rule"] == "G-ROLE", role
        decided = _decide(world, job_id, role)
        assert decided.status_code == 403, role
    assert world.get(f"/v1/jobs/{job_id}", "developer")["status"] == "pending_review"


def test_one_reviewer_cannot_approve_twice_for_level_three_data(sensitive: World) -> None:
    job_id = sensitive.submit(LARGE)["id"]
    drain(sensitive)
    assert sensitive.get(f"/v1/jobs/{job_id}", "developer")["status"] == "pending_review"
    first = _decide(sensitive, job_id, "reviewer")
    assert first.status_code == 200 and first.json()["state"] == "pending_review"
    again = _decide(sensitive, job_id, "reviewer")
    assert again.status_code == 403 and again.json()["rule"] == "R-TWO-REVIEWERS"
    assert sensitive.get(f"/v1/jobs/{job_id}", "developer")["status"] == "pending_review"
    second = _decide(sensitive, job_id, "reviewer2")
    assert second.json()["state"] == "approved"
    drain(sensitive)
    assert sensitive.get(f"/v1/jobs/{job_id}", "developer")["status"] == "released"


def test_a_failing_result_needs_two_reasoned_overrides(world: World) -> None:
    job_id = _pending(world, SMALL)
    item = world.get(f"/v1/reviews/{job_id}", "reviewer")
    assert item["worst_check"] == "fail" and item["approvals_needed"] == 2
    blank = _decide(world, job_id, "reviewer", reason="   ")
    assert blank.status_code == 422 and blank.json()["rule"] == "R-REASON"
    assert (
        _decide(world, job_id, "reviewer", reason="published in the yearbook").json()["state"]
        == "pending_review"
    )
    assert _decide(world, job_id, "reviewer2", reason="agree").json()["state"] == "approved"
    overrides = world.get(f"/v1/ledger/entries?action=review.override&subject={job_id}", "auditor")
    assert len(overrides["entries"]) == 2


def test_decisions_on_a_decided_result_are_refused(world: World) -> None:
    job_id = _pending(world, LARGE)
    assert _decide(world, job_id, "reviewer", "reject", "purpose does not need it").status_code == 200
    assert world.get(f"/v1/jobs/{job_id}", "developer")["status"] == "rejected"
    late = _decide(world, job_id, "reviewer2")
    assert late.status_code == 409 and late.json()["rule"] == "R-STATE"


def test_suppression_through_the_api_clears_small_cells_before_approval(world: World) -> None:
    job_id = _pending(world, SMALL)
    response = world.client.post(
        f"/v1/reviews/{job_id}/mitigations",
        json={"action": "suppress", "reason": "blank the small cells"},
        headers=world.headers("reviewer"),
    )
    assert response.status_code == 200, response.text
    item = world.get(f"/v1/reviews/{job_id}?limit=1000", "reviewer")
    assert item["evidence"]["mitigations"][0]["action"] == "suppress"
    assert any(row["n"] is None for row in item["rows"])
    assert item["worst_check"] != "fail"


def test_the_evidence_a_reviewer_sees_is_complete(world: World) -> None:
    job_id = _pending(world, LARGE)
    item = world.get(f"/v1/reviews/{job_id}", "reviewer")
    evidence = item["evidence"]
    assert evidence["code"] == LARGE and evidence["purpose"]
    assert evidence["sources"][0]["name"] == "residents" and evidence["sources"][0]["level"] == 2
    assert {o["rule"] for o in evidence["report"]["outcomes"]} >= {"SDC-MIN-CELL", "SDC-DIFFERENCING"}
    assert item["columns"] == ["gender", "n"] and item["total_rows"] == 2
