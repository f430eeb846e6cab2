"""What the API security suites share: the problem-details assertion, the ledger's record of
denials, and results driven through review to the states the suites probe."""

from __future__ import annotations

import json
from typing import Any

from httpx2 import Response

from tests.gateway.api.conftest import World

PROBLEM_MEDIA = "application/problem+json"
PROBLEM_FIELDS = ("type", "title", "status", "detail", "instance", "rule")
ANONYMOUS = "anonymous"
QUERY = "SELECT district, COUNT(*) AS n FROM residents GROUP BY district"


def assert_problem(response: Response, status: int, rule: str) -> dict[str, Any]:
    """``response`` is an RFC 9457 problem with ``status`` and ``rule``; returns its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM_MEDIA), response.headers
    body: dict[str, Any] = response.json()
    assert set(PROBLEM_FIELDS) <= set(body), body
    assert body["status"] == status and body["rule"] == rule, body
    assert body["type"] == f"urn:veilbox:problem:{rule}"
    assert body["title"] and body["detail"], body
    return body


def ledger_size(world: World) -> int:
    """How many entries the ledger holds now: where to look for what a probe records. Read from
    the log itself rather than through the API, as the suites take this before nearly every probe."""
    return world.ledger.size


def denials_since(world: World, start: int) -> list[dict[str, Any]]:
    """The ``access.denied`` entries appended from index ``start`` on, decoded."""
    found = world.get(f"/v1/ledger/entries?start={start}&action=access.denied", "auditor")
    return [json.loads(item["entry"]) for item in found["entries"]]


def assert_denial_recorded(world: World, start: int, actor: str, path: str, rule: str) -> None:
    entries = denials_since(world, start)
    assert any(
        e["actor"] == actor and e["subject"] == path and e["details"]["rule"] == rule for e in entries
    ), (actor, path, rule, entries)


def pending_results(world: World, count: int) -> list[str]:
    """``count`` fresh governance jobs waiting in the review queue (submitted together, so the
    runner works through them in one go)."""
    ids = [world.submit(QUERY)["id"] for _ in range(count)]
    for job_id in ids:
        assert world.wait(job_id)["status"] == "pending_review", job_id
    return ids


def release(world: World, job_id: str) -> None:
    """Approve a pending result and wait until the runner has released it."""
    world.post(
        f"/v1/reviews/{job_id}/decisions", {"decision": "approve", "reason": "cells ≥ 10"}, "reviewer", 200
    )
    assert world.wait(job_id, until=("released", "returned", "rejected"))["status"] == "released"
