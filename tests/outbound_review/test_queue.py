"""The review queue: separation of duties and the two-reviewer rule cannot be bypassed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ledger import Ledger, verify_log
from outbound_review.errors import ReviewRefused
from outbound_review.queue import ReviewItem, ReviewQueue


@pytest.fixture
def queue(tmp_path: Path) -> Iterator[ReviewQueue]:
    log = Ledger.open(tmp_path / "ledger")
    opened = ReviewQueue(tmp_path / "reviews.sqlite", log)
    yield opened
    opened.close()
    log.close()


def _item(job_id: str = "job_1", **changes: Any) -> ReviewItem:
    fields: dict[str, Any] = {
        "job_id": job_id, "submitter": "developer:alice", "organisation": "city-data-co",
        "scenario": "governance", "level": 2, "result_sha256": "ab" * 32, "worst_check": "pass",
        "evidence": {"sql": "SELECT 1"},
    }  # fmt: skip
    fields.update(changes)
    return ReviewItem(**fields)


def test_one_outside_approval_releases_an_ordinary_result(queue: ReviewQueue, tmp_path: Path) -> None:
    queue.submit(_item())
    approved = queue.decide("job_1", "reviewer:bob", "data-bureau", "approve", "aggregate, cells ≥ 10")
    assert approved.state == "approved"
    queue.mark_released("job_1", "gateway", "cd" * 32)
    assert queue.get("job_1").state == "released"
    actions = [e.action for e in Ledger.open(tmp_path / "ledger").entries()]
    assert actions == ["review.requested", "review.approve", "result.released"]
    assert verify_log(tmp_path / "ledger").ok


@pytest.mark.parametrize(
    ("reviewer", "organisation"), [("developer:alice", "data-bureau"), ("reviewer:carol", "city-data-co")]
)
def test_the_submitter_and_its_organisation_cannot_review(
    queue: ReviewQueue, reviewer: str, organisation: str
) -> None:
    queue.submit(_item())
    for decision in ("approve", "reject", "return"):
        with pytest.raises(ReviewRefused, match="R-SEPARATION"):
            queue.decide("job_1", reviewer, organisation, decision, "looks fine")  # type: ignore[arg-type]
    assert queue.get("job_1").state == "pending_review"
    assert queue.pending("city-data-co") == []
    assert [i.job_id for i in queue.pending("data-bureau")] == ["job_1"]


@pytest.mark.parametrize("changes", [{"level": 3}, {"worst_check": "fail"}])
def test_sensitive_or_failing_results_need_two_distinct_reviewers(
    queue: ReviewQueue, changes: dict[str, Any]
) -> None:
    queue.submit(_item(**changes))
    first = queue.decide("job_1", "reviewer:bob", "data-bureau", "approve", "checked cell by cell")
    assert first.state == "pending_review" and first.approvals == ("reviewer:bob",)
    with pytest.raises(ReviewRefused, match="R-TWO-REVIEWERS"):
        queue.decide("job_1", "reviewer:bob", "data-bureau", "approve", "approving again")
    with pytest.raises(ReviewRefused, match="R-STATE"):
        queue.mark_released("job_1", "gateway", "cd" * 32)
    second = queue.decide("job_1", "reviewer:dan", "audit-office", "approve", "independent second check")
    assert second.state == "approved"


def test_failed_checks_are_overrides_in_the_ledger(queue: ReviewQueue, tmp_path: Path) -> None:
    queue.submit(_item(worst_check="fail"))
    queue.decide("job_1", "reviewer:bob", "data-bureau", "approve", "suppressed cell reviewed")
    actions = [e.action for e in Ledger.open(tmp_path / "ledger").entries()]
    assert actions[-1] == "review.override"


def test_rejection_and_return_are_final_for_the_job(queue: ReviewQueue) -> None:
    queue.submit(_item("job_1"))
    queue.submit(_item("job_2"))
    assert (
        queue.decide("job_1", "reviewer:bob", "data-bureau", "reject", "a cell of 3 people").state
        == "rejected"
    )
    assert (
        queue.decide("job_2", "reviewer:bob", "data-bureau", "return", "add the purpose").state == "returned"
    )
    for job in ("job_1", "job_2"):
        with pytest.raises(ReviewRefused, match="R-STATE"):
            queue.decide(job, "reviewer:dan", "audit-office", "approve", "changed my mind")
        with pytest.raises(ReviewRefused, match="R-STATE"):
            queue.mark_released(job, "gateway", "cd" * 32)


def test_decisions_need_reasons_and_known_jobs(queue: ReviewQueue) -> None:
    queue.submit(_item())
    with pytest.raises(ReviewRefused, match="R-REASON"):
        queue.decide("job_1", "reviewer:bob", "data-bureau", "approve", "  ")
    with pytest.raises(ReviewRefused, match="not in the review queue"):
        queue.decide("job_9", "reviewer:bob", "data-bureau", "approve", "ok")
    with pytest.raises(ReviewRefused, match="already in the review queue"):
        queue.submit(_item())
