"""Verifications and consents through the API: answered only with consent, the raw subject
sealed before it is stored and never kept anywhere but in the enclave's vault."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb
import pytest
from sqlalchemy import update

from gateway.control import schema
from gateway.runner import Runner
from tests.gateway.api.conftest import World, add_scenario, drain, running_world

TEMPLATE = "V-CAPITAL-AT-LEAST"


@pytest.fixture(scope="module")
def idle(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with running_world(tmp_path_factory.mktemp("answers"), start_runner=False) as built:
        drain(built)  # a runner publishes the input key the API seals to
        add_scenario(
            built,
            "verify",
            {},
            name="普惠金融核验",
            purpose="check a loan applicant's registered capital, with its consent",
            datasets={"enterprises": ["uscc", "registered_capital"]},
            output_forms=["verification"],
        )
        yield built


def _firm(world: World, rank: int) -> tuple[str, float]:
    """The raw credit code and capital of the enterprise at ``rank`` by capital (as a bank knows it)."""
    path = str(world.workdir.parent / "city" / "enterprises.parquet")
    rows = duckdb.execute(
        "SELECT uscc, registered_capital FROM read_parquet(?) ORDER BY 2, 1 LIMIT 1 OFFSET ?", [path, rank]
    ).fetchall()
    return str(rows[0][0]), float(rows[0][1])


def _call(world: World, path: str, body: dict[str, Any]) -> Any:
    response = world.client.post(path, json={"scenario_id": world.scenarios["verify"]["id"], **body},
                                 headers=world.headers("developer"))  # fmt: skip
    assert response.status_code == 202, response.text  # no runner in this app: queued
    drain(world)
    return world.get(f"/v1/jobs/{response.json()['id']}", "developer")


def _consent(world: World, uscc: str, **changes: Any) -> Any:
    body = {
        "domain": "enterprise",
        "subject": uscc,
        "scope": [TEMPLATE],
        "expires_at": (datetime.now(UTC) + timedelta(days=30)).isoformat(),
        "evidence": "loan application LA-2026-0042",
        "issuer": "bank.branch-042",
        **changes,
    }
    return _call(world, "/v1/consents", body)


def test_with_consent_the_answer_matches_the_data(idle: World) -> None:
    uscc, capital = _firm(idle, 0)
    recorded = _consent(idle, uscc)
    assert recorded["status"] == "recorded", recorded
    assert recorded["outcome"]["consent_id"].startswith("cns_")
    for threshold, expected in ((capital, True), (capital + 1, False)):
        question = {"template": TEMPLATE, "subject": uscc, "params": {"threshold": threshold}}
        asked = _call(idle, "/v1/verifications", question)
        assert asked["status"] == "answered", asked
        assert asked["outcome"]["answer"] is expected


def test_without_consent_the_question_is_refused(idle: World) -> None:
    uscc, _ = _firm(idle, 1)  # no consent was recorded for this one
    asked = _call(
        idle, "/v1/verifications", {"template": TEMPLATE, "subject": uscc, "params": {"threshold": 1}}
    )
    assert asked["status"] == "refused" and asked["rule"] == "V-CONSENT", asked


@pytest.mark.parametrize(
    ("changes", "rule"),
    [
        ({"subject": "91350100M000100Y40"}, "V-SUBJECT"),  # wrong check character
        ({"expires_at": "2020-01-01T00:00:00Z"}, "C-CONSENT"),  # expires before it is issued
    ],
)
def test_malformed_consents_are_refused_with_their_rule(
    idle: World, changes: dict[str, Any], rule: str
) -> None:
    uscc, _ = _firm(idle, 2)
    recorded = _consent(idle, uscc, **changes)
    assert recorded["status"] == "refused" and recorded["rule"] == rule, recorded


def test_the_raw_subject_is_stored_nowhere_outside_the_vault(idle: World) -> None:
    uscc, _ = _firm(idle, 3)
    _consent(idle, uscc)
    _call(idle, "/v1/verifications", {"template": TEMPLATE, "subject": uscc, "params": {"threshold": 1}})
    raw = uscc.encode()
    for path in idle.workdir.rglob("*"):
        if path.is_file() and "enclave" not in path.parts:
            assert raw not in path.read_bytes(), path


def test_a_sealed_subject_copied_into_another_job_does_not_open(idle: World) -> None:
    uscc, _ = _firm(idle, 2)
    body = {"scenario_id": idle.scenarios["verify"]["id"], "template": TEMPLATE, "subject": uscc,
            "params": {"threshold": 1}}  # fmt: skip
    first = idle.client.post("/v1/verifications", json=body, headers=idle.headers("developer")).json()
    second = idle.client.post("/v1/verifications", json={**body, "subject": "91350100M000100Y43"},
                              headers=idle.headers("developer")).json()  # fmt: skip
    runner = Runner.open(idle.workdir)
    try:
        with runner.control.transaction() as conn:
            conn.execute(
                update(schema.jobs).where(schema.jobs.c.id == second["id"]).values(spec=first["spec"])
            )
        runner.drain()
    finally:
        runner.close()
    moved = idle.get(f"/v1/jobs/{second['id']}", "developer")
    assert moved["status"] == "refused" and moved["rule"] == "G-SEALED", moved


def test_verification_needs_a_scenario_that_offers_it(idle: World) -> None:
    uscc, _ = _firm(idle, 2)
    response = idle.client.post(
        "/v1/verifications",
        json={"scenario_id": idle.scenarios["governance"]["id"], "template": TEMPLATE, "subject": uscc},
        headers=idle.headers("developer"),
    )
    assert response.status_code == 422 and response.json()["rule"] == "G-INPUT"
    assert uscc not in response.text
