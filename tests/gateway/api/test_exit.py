"""An operator's exit over HTTP: permissions closed, data keys destroyed (results and their
backups unreadable), released artifacts deleted, logs kept, and a report the ledger vouches for."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from deid.datakeys import DataKeys
from deid.errors import KeyDestroyed
from gateway.workdir import Layout
from ledger import Ledger
from tests.gateway.api.conftest import World, drain, running_world

SQL = "SELECT district, COUNT(*) AS n FROM residents GROUP BY district"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with running_world(tmp_path_factory.mktemp("exit")) as built:
        yield built


def _released(world: World) -> str:
    job = world.submit(SQL)
    assert world.wait(job["id"])["status"] == "pending_review"
    decision = {"decision": "approve", "reason": "large cells"}
    world.post(f"/v1/reviews/{job['id']}/decisions", decision, "reviewer", 200)
    assert world.wait(job["id"], until=("released", "returned"))["status"] == "released"
    return str(job["id"])


def _backups(layout: Layout, job_id: str) -> list[tuple[bytes, str]]:
    """Copies of a result's sealed files, as a backup taken before the exit would hold them."""
    copies = [
        ((layout.quarantine / job_id / name).read_bytes(), f"{job_id}/{name}") for name in ("result.arrow",)
    ]
    for path in (layout.review / "results" / job_id).glob("*.arrow"):
        copies.append((path.read_bytes(), f"{job_id}/{path.stem}"))
    return copies


def test_an_exit_shreds_what_the_operator_left_and_keeps_the_logs(world: World) -> None:
    layout = Layout(world.workdir)
    released = _released(world)
    pending = world.submit("SELECT education, COUNT(*) AS people FROM residents GROUP BY education")
    assert world.wait(pending["id"])["status"] == "pending_review"
    other = world.submit(SQL, role="other_developer", scenario="other")
    assert world.wait(other["id"], role="other_developer")["status"] == "pending_review"
    backups = _backups(layout, pending["id"]) + _backups(layout, released)
    assert len(backups) >= 3 and (layout.releases / released).is_dir()
    size_before = world.get("/v1/ledger/checkpoint", "auditor")["size"]

    ended = world.post(
        f"/v1/authorizations/{world.authorizations['governance']['id']}/revoke",
        {"reason": "licence breach"},
        status=200,
    )

    report = ended["exit_report"]
    assert ended["exited"] and report["exited"] and report["tokens_revoked"] >= 2
    assert {released, pending["id"]} <= set(report["results_deleted"])
    assert report["releases_deleted"] == [released] and len(report["data_keys_destroyed"]) == 1
    assert not (layout.quarantine / pending["id"]).exists() and not (layout.releases / released).exists()
    assert not (layout.review / "results" / pending["id"]).exists()
    ledger = Ledger.open(layout.ledger)
    keys = DataKeys(layout.data_keys, ledger)
    try:
        for blob, context in backups:
            with pytest.raises(KeyDestroyed, match="crypto-shredded"):
                keys.open(blob, context)
        # The logs stay: every entry before the exit is still there, the exit's own after them.
        assert ledger.size > size_before
        actions = [e.action for e in ledger.iter_entries(0, ledger.size)]
        assert "job.quarantined" in actions and "datakey.destroyed" in actions
        recorded = [
            e
            for e in ledger.iter_entries(size_before, ledger.size)
            if e.action == "authorization.exit_report"
        ]
    finally:
        keys.close()
        ledger.close()
    stored = (layout.exit_reports / f"{world.authorizations['governance']['id']}.json").read_bytes()
    assert recorded[0].details["sha256"] == ended["exit_report_sha256"] == hashlib.sha256(stored).hexdigest()
    ended_at = datetime.fromisoformat(report["ended_at"])
    retained = datetime.fromisoformat(report["logs_retained_until"])
    assert (retained.year - ended_at.year) * 12 + retained.month - ended_at.month == 12

    # Another operator's result is untouched.
    assert world.get(f"/v1/reviews/{other['id']}", "reviewer")["total_rows"] > 0


def test_the_exit_report_is_for_the_authority_and_auditors(world: World) -> None:
    path = f"/v1/authorizations/{world.authorizations['governance']['id']}/exit-report"
    for role in ("authority", "auditor"):
        found = world.get(path, role)
        assert found["report"]["exited"] and len(found["sha256"]) == 64
    assert world.client.get(path, headers=world.headers("reviewer")).status_code == 403
    assert world.client.get(path, headers=world.headers("operator")).status_code == 401  # its tokens ended
    still = f"/v1/authorizations/{world.authorizations['other']['id']}/exit-report"
    missing = world.client.get(still, headers=world.headers("authority"))
    assert missing.status_code == 404 and "has not ended" in missing.json()["detail"]


def test_an_operator_back_after_its_exit_gets_a_new_key(world: World) -> None:
    again = world.post(
        "/v1/authorizations",
        {
            "operator_id": world.orgs["operator"]["id"],
            "mode": "whole",
            "datasets": ["residents"],
            "category": "public_welfare",
        },
    )
    issued = world.get(
        f"/v1/ledger/entries?action=datakey.issued&subject={world.orgs['operator']['id']}", "auditor"
    )
    assert len(issued["entries"]) == 2 and again["status"] == "active"


def test_the_runner_warns_of_a_term_ending_soon(world: World) -> None:
    ends_at = (datetime.now(UTC) + timedelta(days=20)).isoformat()
    soon = world.post(
        "/v1/authorizations",
        {
            "operator_id": world.orgs["other_operator"]["id"],
            "mode": "whole",
            "datasets": ["residents"],
            "category": "public_welfare",
            "ends_at": ends_at,
        },
    )
    assert soon["id"] in [e["authorization_id"] for e in world.get("/v1/expiring", "other_operator")]
    drain(world)
    drain(world)
    path = f"/v1/ledger/entries?action=authorization.expiry_warning&subject={soon['id']}"
    (warning,) = world.get(path, "auditor")["entries"]
    assert '"days_before":30' in warning["entry"]
