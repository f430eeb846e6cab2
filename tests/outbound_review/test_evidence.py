"""Evidence measured in the enclave with each result drives the disclosure checks end to end."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from outbound_review import ReleaseDescriptor, ReleaseIndex, ResultEvidence, describe_release, run_checks
from sandbox.enclave import Enclave
from sandbox.jobs import QueryJob, run_query
from sandbox.limits import Limits
from sandbox.policy import ScenarioPolicy, check_query
from sandbox.synth import generate_city
from tests.support import ingest_city


@pytest.fixture(scope="module")
def city(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Enclave, ScenarioPolicy, Path]]:
    root = tmp_path_factory.mktemp("evidence")
    generate_city(3000, 21, root / "city")
    with Enclave.open(root / "work", limits=Limits(timeout_s=20, memory_mb=256), workers=1) as enclave:
        ingest_city(enclave, root / "city", ("residents", "enterprises"), level=2)
        policy = ScenarioPolicy({n: enclave.catalog.get(n) for n in ("residents", "enterprises")})
        yield enclave, policy, root / "city"


def _run(city: tuple[Enclave, ScenarioPolicy, Path], sql: str) -> tuple[object, ResultEvidence]:
    enclave, policy, _ = city
    outcome = run_query(enclave, QueryJob(sql=sql, actor="developer:alice", scenario="s", policy=policy))
    table, meta = enclave.quarantine.load(outcome.job_id)  # type: ignore[attr-defined]
    return table, ResultEvidence.from_json(meta["evidence"])


def test_counts_behind_each_cell_match_the_raw_data(city: tuple[Enclave, ScenarioPolicy, Path]) -> None:
    table, evidence = _run(
        city, "SELECT district, education, COUNT(*) AS n FROM residents GROUP BY district, education"
    )
    raw = duckdb.sql(
        f"SELECT district, education, COUNT(*) AS n FROM '{city[2] / 'residents.parquet'}' GROUP BY 1, 2"
    ).fetchall()
    truth = {(d, e): n for d, e, n in raw}
    for row, count in zip(table.to_pylist(), evidence.cell_counts["n"], strict=True):  # type: ignore[attr-defined]
        assert count == truth[(row["district"], row["education"])] == row["n"]


def test_small_cells_fail_and_large_ones_pass(city: tuple[Enclave, ScenarioPolicy, Path]) -> None:
    fine_table, fine = _run(city, "SELECT district, COUNT(*) AS n FROM residents GROUP BY district")
    assert run_checks(fine_table, fine).outcome("SDC-MIN-CELL").outcome == "pass"  # type: ignore[arg-type]
    narrow_table, narrow = _run(
        city, "SELECT district, education, gender, employed, COUNT(*) AS n FROM residents GROUP BY 1, 2, 3, 4"
    )
    assert run_checks(narrow_table, narrow).outcome("SDC-MIN-CELL").outcome == "fail"  # type: ignore[arg-type]


def test_magnitudes_carry_top_contributors_for_dominance(city: tuple[Enclave, ScenarioPolicy, Path]) -> None:
    table, evidence = _run(
        city, "SELECT industry, district, SUM(registered_capital) AS capital FROM enterprises GROUP BY 1, 2"
    )
    for top, total in zip(
        evidence.top_contributions["capital"], evidence.cell_totals["capital"], strict=True
    ):
        assert top == sorted(top, reverse=True) and sum(top) <= total + 1e-6
    report = run_checks(table, evidence)  # type: ignore[arg-type]
    assert report.outcome("SDC-DOMINANCE-NK").outcome == "fail", "a few very large firms dominate some cells"


def _release(city: tuple[Enclave, ScenarioPolicy, Path], sql: str, release_id: str) -> ReleaseDescriptor:
    enclave, policy, _ = city
    checked = check_query(sql, policy)
    outcome = run_query(enclave, QueryJob(sql=sql, actor="developer:alice", scenario="s", policy=policy))
    table, meta = enclave.quarantine.load(outcome.job_id)  # type: ignore[attr-defined]
    return describe_release(
        checked.statement,
        checked.tables,
        table,
        meta["evidence"],
        release_id=release_id,
        scenario="s",
        operator="op",
    )


def test_differencing_catches_total_minus_a_small_group_from_real_jobs(
    city: tuple[Enclave, ScenarioPolicy, Path],
) -> None:
    raw = duckdb.sql(
        f"SELECT education, COUNT(*) FROM '{city[2] / 'residents.parquet'}' WHERE district = '郊县' "
        "AND gender = 'F' GROUP BY 1 ORDER BY 2 LIMIT 1"
    ).fetchall()[0]
    index = ReleaseIndex()
    women = "SELECT education, COUNT(*) AS n FROM residents WHERE gender = 'F'"
    index.add(_release(city, f"{women} GROUP BY education", "r1"))
    narrower = _release(city, f"{women} AND district <> '郊县' GROUP BY education", "r2")
    assert not narrower.opaque
    findings = index.check(narrower, min_cell=max(10, raw[1] + 1))
    assert any(f.other_release_ids == ("r1",) and f.difference == raw[1] for f in findings), findings


def test_queries_that_cannot_be_described_are_opaque(city: tuple[Enclave, ScenarioPolicy, Path]) -> None:
    bucketed = _release(
        city,
        "SELECT CASE WHEN household_size > 3 THEN 'large' ELSE 'small' END AS size, COUNT(*) AS n "
        "FROM residents GROUP BY 1",
        "r3",
    )
    assert bucketed.opaque
