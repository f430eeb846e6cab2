"""The gate on real jobs: checks run on arrival, differencing against every release, mitigations,
signed releases, and the race between two results approved side by side."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.csv as pacsv
import pytest

from ledger.bundle import inclusion_bundle
from outbound_review import CheckParameters, ReleaseInvalid, ReviewError, ReviewRefused, verify_release
from outbound_review.gate import Gate, SourceDataset, Submission
from outbound_review.queue import ReviewItem
from sandbox.dp import DpConfig
from sandbox.enclave import Enclave
from sandbox.jobs import QueryJob, run_query
from sandbox.policy import ScenarioPolicy
from sandbox.synth import generate_city
from tests.support import ingest_city

SCENARIO, OPERATOR, DEVELOPER = "governance", "org_operator", "usr_dev"


@pytest.fixture(scope="module")
def city(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Enclave, Path]]:
    root = tmp_path_factory.mktemp("gate")
    generate_city(3000, 5, root / "city")
    with Enclave.open(root / "work") as enclave:
        ingest_city(enclave, root / "city", ("residents",), level=2)
        enclave.budget.set_budget(SCENARIO, "residents", epsilon=5.0, delta=1e-5, actor="authority:bureau")
        yield enclave, root / "city"


@pytest.fixture
def gate(city: tuple[Enclave, Path], tmp_path: Path) -> Iterator[Gate]:
    enclave, _ = city
    opened = Gate(
        tmp_path / "review",
        enclave.ledger,
        enclave.data_keys,
        enclave.release_key(),
        enclave.release_key_name,
    )
    yield opened
    opened.close()


def _raw(city: tuple[Enclave, Path], where: str) -> int:
    path = city[1] / "residents.parquet"
    return int(duckdb.sql(f"SELECT COUNT(*) FROM '{path}' WHERE {where}").fetchall()[0][0])


def _admit(
    city: tuple[Enclave, Path],
    gate: Gate,
    sql: str,
    job_id: str,
    *,
    dp: DpConfig | None = None,
    **params: Any,
) -> ReviewItem:
    enclave, _ = city
    policy = ScenarioPolicy({"residents": enclave.catalog.get("residents")}, allow_dp=dp is not None)
    outcome = run_query(
        enclave, QueryJob(sql=sql, actor=DEVELOPER, scenario=SCENARIO, policy=policy, job_id=job_id, dp=dp)
    )
    assert outcome.status == "quarantined", outcome.reason
    table, meta = enclave.quarantine.load(job_id)
    residents = enclave.catalog.get("residents")
    source = SourceDataset("residents", residents.level, residents.content_hash, residents.row_count)
    submission = Submission(
        job_id,
        DEVELOPER,
        OPERATOR,
        SCENARIO,
        "population statistics for district planning",
        (source,),
        CheckParameters(**params),
        expected_epsilon=0.5,
        expected_bounds={},
    )
    return gate.admit(submission, table, meta)


def _approve_and_release(gate: Gate, job_id: str, out: Path) -> Path:
    gate.queue.decide(job_id, "usr_rev1", "org_review", "approve", "cells are large; purpose fits")
    if gate.queue.get(job_id).state != "approved":
        gate.queue.decide(job_id, "usr_rev2", "org_review", "approve", "second reviewer agrees")
    return gate.release(job_id, "usr_rev1", out / job_id).folder


def test_a_result_is_checked_on_arrival_with_the_evidence_a_reviewer_needs(
    city: tuple[Enclave, Path], gate: Gate
) -> None:
    item = _admit(city, gate, "SELECT district, COUNT(*) AS n FROM residents GROUP BY district", "job_a1")
    assert item.state == "pending_review" and item.worst_check == "pass"
    evidence = item.evidence
    assert evidence["code"].startswith("SELECT district")
    assert evidence["sources"][0]["name"] == "residents" and evidence["sources"][0]["rows"] == 3000
    rules = [o["rule"] for o in evidence["report"]["outcomes"]]
    assert rules[0] == "SDC-EVIDENCE" and rules[-1] == "SDC-DIFFERENCING"
    assert gate.result("job_a1").num_rows == evidence["rows"]
    assert gate.report("job_a1").worst == "pass"


def test_small_cells_fail_and_need_two_overriding_reviewers(city: tuple[Enclave, Path], gate: Gate) -> None:
    sql = "SELECT district, education, gender, COUNT(*) AS n FROM residents GROUP BY 1, 2, 3"
    item = _admit(city, gate, sql, "job_b1", min_cell=40)
    assert item.worst_check == "fail" and item.approvals_needed == 2
    assert gate.report("job_b1").outcome("SDC-MIN-CELL").outcome == "fail"
    first = gate.queue.decide("job_b1", "usr_rev1", "org_review", "approve", "cells are published elsewhere")
    assert first.state == "pending_review"
    with pytest.raises(ReviewRefused, match="R-TWO-REVIEWERS"):
        gate.queue.decide("job_b1", "usr_rev1", "org_review", "approve", "me again")


@pytest.mark.parametrize(
    ("job_id", "sql"),
    [
        (
            "job_c1",
            "WITH w AS (SELECT district FROM residents) SELECT district, COUNT(*) AS n FROM w GROUP BY 1",
        ),
        ("job_c2", "SELECT district, COUNT(*) AS n FROM residents GROUP BY district HAVING COUNT(*) > 0"),
    ],
)
def test_results_without_measured_evidence_fail(
    city: tuple[Enclave, Path], gate: Gate, job_id: str, sql: str
) -> None:
    item = _admit(city, gate, sql, job_id)
    assert item.worst_check == "fail"
    report = gate.report(job_id)
    assert report.outcome("SDC-EVIDENCE").outcome == "fail"
    assert report.outcome("SDC-MIN-CELL").outcome == "review"
    assert item.evidence["description"]["opaque"] is True


def test_a_narrowed_total_after_a_release_is_caught_naming_the_earlier_release(
    city: tuple[Enclave, Path], gate: Gate, tmp_path: Path
) -> None:
    small = _raw(city, "gender = 'F' AND district = '郊县'")
    threshold = small + 1
    _admit(city, gate, "SELECT COUNT(*) AS n FROM residents WHERE gender = 'F'", "job_d1", min_cell=threshold)
    _approve_and_release(gate, "job_d1", tmp_path)
    narrowed = "SELECT COUNT(*) AS n FROM residents WHERE gender = 'F' AND district <> '郊县'"
    item = _admit(city, gate, narrowed, "job_d2", min_cell=threshold)
    outcome = gate.report("job_d2").outcome("SDC-DIFFERENCING")
    assert (
        outcome.outcome == "fail"
        and "job_d1" in outcome.explanation
        and f"isolates {small}" in outcome.explanation
    )
    assert item.evidence["differencing"][0]["other_release_ids"] == ["job_d1"]


def test_releases_persist_for_every_later_gate(city: tuple[Enclave, Path], tmp_path: Path) -> None:
    enclave, _ = city
    small = _raw(city, "gender = 'M' AND district = '郊县'")
    first = Gate(
        tmp_path / "review",
        enclave.ledger,
        enclave.data_keys,
        enclave.release_key(),
        enclave.release_key_name,
    )
    _admit(
        city, first, "SELECT COUNT(*) AS n FROM residents WHERE gender = 'M'", "job_e1", min_cell=small + 1
    )
    _approve_and_release(first, "job_e1", tmp_path)
    first.close()
    again = Gate(
        tmp_path / "review",
        enclave.ledger,
        enclave.data_keys,
        enclave.release_key(),
        enclave.release_key_name,
    )
    narrowed = "SELECT COUNT(*) AS n FROM residents WHERE gender = 'M' AND district <> '郊县'"
    _admit(city, again, narrowed, "job_e2", min_cell=small + 1)
    assert again.report("job_e2").outcome("SDC-DIFFERENCING").outcome == "fail"
    again.close()


def test_two_results_approved_side_by_side_cannot_both_leave(
    city: tuple[Enclave, Path], gate: Gate, tmp_path: Path
) -> None:
    small = _raw(city, "district = '郊县'")
    everyone = "SELECT COUNT(*) AS n FROM residents"
    _admit(city, gate, everyone, "job_f1", min_cell=small + 1)
    _admit(city, gate, f"{everyone} WHERE district <> '郊县'", "job_f2", min_cell=small + 1)
    for job in ("job_f1", "job_f2"):
        assert gate.report(job).outcome("SDC-DIFFERENCING").outcome == "pass"  # neither was released yet
        gate.queue.decide(job, "usr_rev1", "org_review", "approve", "large counts")
    gate.release("job_f1", "usr_rev1", tmp_path / "f1")
    with pytest.raises(ReviewRefused, match="SDC-DIFFERENCING") as refused:
        gate.release("job_f2", "usr_rev1", tmp_path / "f2")
    assert "job_f1" in str(refused.value)
    assert not (tmp_path / "f2").exists()
    assert gate.queue.get("job_f2").state == "approved"
    returned = gate.queue.decide("job_f2", "usr_rev2", "org_review", "return", "differences with job_f1")
    assert returned.state == "returned"


def test_suppression_clears_the_failing_cells_and_is_recorded(
    city: tuple[Enclave, Path], gate: Gate, tmp_path: Path
) -> None:
    sql = "SELECT district, education, COUNT(*) AS n FROM residents GROUP BY 1, 2"
    item = _admit(city, gate, sql, "job_g1", min_cell=60)
    failing = gate.report("job_g1").outcome("SDC-MIN-CELL")
    assert item.worst_check == "fail" and failing.cells
    with pytest.raises(ReviewRefused, match="R-SEPARATION"):
        gate.mitigate("job_g1", DEVELOPER, "org_review", "suppress", "hide the small cells")
    mitigated = gate.mitigate("job_g1", "usr_rev1", "org_review", "suppress", "hide the small cells")
    assert mitigated.worst_check != "fail" and mitigated.approvals_needed == 1
    assert "mitigated" in gate.report("job_g1").outcome("SDC-MIN-CELL").explanation
    blanked = {row for row, _ in failing.cells}
    values = gate.result("job_g1").column("n").to_pylist()
    assert all(values[row] is None for row in blanked) and sum(v is None for v in values) == len(blanked)
    folder = _approve_and_release(gate, "job_g1", tmp_path)
    released = pacsv.read_csv(folder / "result.csv").column("n").to_pylist()
    assert sum(v is None for v in released) == len(blanked)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["mitigations"][0]["action"] == "suppress"
    actions = [e.action for e in city[0].ledger.entries() if e.subject == "job_g1"]
    assert "review.mitigated" in actions


def test_no_mitigation_after_an_approval(city: tuple[Enclave, Path], gate: Gate) -> None:
    sql = "SELECT district, education, COUNT(*) AS n FROM residents GROUP BY 1, 2"
    _admit(city, gate, sql, "job_h1", min_cell=60)
    gate.queue.decide("job_h1", "usr_rev1", "org_review", "approve", "override: published elsewhere")
    with pytest.raises(ReviewRefused, match="R-STATE"):
        gate.mitigate("job_h1", "usr_rev2", "org_review", "round", "round them", base=5)


def test_a_dp_result_is_judged_by_its_guarantee(city: tuple[Enclave, Path], gate: Gate) -> None:
    config = DpConfig("residents", "resident_id", epsilon=0.5, max_rows=1, max_groups=1)
    item = _admit(
        city, gate, "SELECT district, COUNT(*) AS n FROM residents GROUP BY district", "job_i1", dp=config
    )
    report = gate.report("job_i1")
    assert report.outcome("SDC-DP").outcome == "pass"
    assert report.outcome("SDC-DIFFERENCING").explanation.startswith("not applicable")
    assert item.evidence["dp_guarantee"]["epsilon"] == 0.5 and item.evidence["description"] is None


def test_a_release_verifies_against_its_signature_and_the_ledger(
    city: tuple[Enclave, Path], gate: Gate, tmp_path: Path
) -> None:
    enclave, _ = city
    _admit(city, gate, "SELECT gender, COUNT(*) AS n FROM residents GROUP BY gender", "job_j1")
    gate.queue.decide("job_j1", "usr_rev1", "org_review", "approve", "two large cells")
    release = gate.release("job_j1", "usr_rev1", tmp_path / "out")
    manifest = json.loads((release.folder / "manifest.json").read_text())
    assert (
        manifest["datasets"]["residents"]["content_sha256"] == enclave.catalog.get("residents").content_hash
    )
    assert manifest["reviewers"][0]["reviewer"] == "usr_rev1"
    assert manifest["approval_ledger_index"] == manifest["reviewers"][0]["ledger_index"]
    enclave.ledger.checkpoint()
    checkpoint = enclave.ledger.latest_checkpoint()
    assert checkpoint is not None
    proof = inclusion_bundle(enclave.ledger, release.ledger_index, checkpoint)
    summary = verify_release(
        release.folder, gate.public_key, proof=proof, ledger_key=enclave.ledger.public_key()
    )
    assert "verified" in summary
    (release.folder / "result.json").write_text("[]\n")
    with pytest.raises(ReleaseInvalid, match="altered"):
        verify_release(release.folder, gate.public_key)


def test_unapproved_results_never_leave_and_nothing_is_written(
    city: tuple[Enclave, Path], gate: Gate, tmp_path: Path
) -> None:
    _admit(city, gate, "SELECT gender, COUNT(*) AS n FROM residents GROUP BY gender", "job_k1")
    with pytest.raises(ReviewRefused, match="R-STATE"):
        gate.release("job_k1", "usr_rev1", tmp_path / "k1")
    assert not (tmp_path / "k1").exists()


def test_a_checked_result_altered_on_disk_is_refused(
    city: tuple[Enclave, Path], gate: Gate, tmp_path: Path
) -> None:
    item = _admit(city, gate, "SELECT gender, COUNT(*) AS n FROM residents GROUP BY gender", "job_l1")
    stored = tmp_path / "review" / "results" / "job_l1" / f"{item.result_sha256}.arrow"
    stored.write_bytes(stored.read_bytes()[:-8] + b"\0" * 8)
    with pytest.raises(ReviewError, match="altered"):
        gate.result("job_l1")


def test_the_same_job_cannot_be_admitted_twice(city: tuple[Enclave, Path], gate: Gate) -> None:
    enclave, _ = city
    _admit(city, gate, "SELECT gender, COUNT(*) AS n FROM residents GROUP BY gender", "job_m1")
    table, meta = enclave.quarantine.load("job_m1")
    item = gate.queue.get("job_m1")
    with pytest.raises(ReviewError, match="name the datasets"):
        Submission("job_m1", DEVELOPER, OPERATOR, SCENARIO, "again", ())
    source = SourceDataset("residents", 2, "00" * 32, 3000)
    submission = Submission("job_m1", DEVELOPER, OPERATOR, SCENARIO, "again", (source,))
    with pytest.raises(ReviewRefused, match="R-STATE"):
        gate.admit(submission, table, meta)
    assert gate.queue.get("job_m1") == item
    assert gate.result("job_m1").num_rows == 2
