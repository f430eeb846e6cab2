"""Query jobs end to end inside the enclave: refused, failed or quarantined — never returned."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox import usage
from sandbox.catalog import Tag
from sandbox.city import CITY_COLUMNS, DISTRICTS
from sandbox.enclave import Enclave
from sandbox.errors import JobError, PolicyViolation
from sandbox.jobs import CONFINEMENT_RULE, PythonJob, QueryJob, execute_checked, run_python, run_query
from sandbox.limits import Limits
from sandbox.mock import MARKER, mock_tables, run_mock
from sandbox.policy import ScenarioPolicy
from sandbox.synth import generate_city
from tests.support import ingest_city


@pytest.fixture(scope="module")
def enclave(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Enclave]:
    root = tmp_path_factory.mktemp("jobs")
    generate_city(3000, 11, root / "city")
    with Enclave.open(root / "work", limits=Limits(timeout_s=5, memory_mb=256), workers=1) as opened:
        ingest_city(opened, root / "city", ("residents", "social_insurance"))
        yield opened


@pytest.fixture(scope="module")
def policy(enclave: Enclave) -> ScenarioPolicy:
    return ScenarioPolicy({name: enclave.catalog.get(name) for name in ("residents", "social_insurance")})


def _job(sql: str, policy: ScenarioPolicy) -> QueryJob:
    return QueryJob(sql=sql, actor="developer:alice", scenario="governance", policy=policy)


def test_an_aggregate_is_quarantined_not_returned(enclave: Enclave, policy: ScenarioPolicy) -> None:
    outcome = run_query(
        enclave, _job("SELECT district, COUNT(*) AS n FROM residents GROUP BY district", policy)
    )
    assert outcome.status == "quarantined"
    assert outcome.result is not None and outcome.result.columns == ("district", "n")
    assert not hasattr(outcome, "table")
    table, meta = enclave.quarantine.load(outcome.job_id)
    assert sum(table.column("n").to_pylist()) == 3000
    assert set(table.column("district").to_pylist()) <= set(DISTRICTS)
    assert meta["sha256"] == outcome.result.sha256
    entry = enclave.ledger.entry(outcome.ledger_index)  # type: ignore[arg-type]
    assert (entry.action, entry.details["result_sha256"]) == ("job.quarantined", outcome.result.sha256)


def test_a_join_on_pseudonyms_runs(enclave: Enclave, policy: ScenarioPolicy) -> None:
    sql = (
        "SELECT r.education, AVG(s.base_salary) AS avg_salary, COUNT(DISTINCT r.resident_id) AS people "
        "FROM residents r JOIN social_insurance s ON r.resident_id = s.resident_id GROUP BY r.education"
    )
    outcome = run_query(enclave, _job(sql, policy))
    assert outcome.status == "quarantined", outcome.reason
    table, _ = enclave.quarantine.load(outcome.job_id)
    assert table.num_rows >= 1 and all(p > 0 for p in table.column("people").to_pylist())


def test_what_a_job_reads_and_its_workers_spend_is_noted_for_metering(
    enclave: Enclave, policy: ScenarioPolicy
) -> None:
    sql = (
        "SELECT r.education, COUNT(DISTINCT r.resident_id) AS people "
        "FROM residents r JOIN social_insurance s ON r.resident_id = s.resident_id GROUP BY r.education"
    )
    with usage.measure() as used:
        assert run_query(enclave, _job(sql, policy)).status == "quarantined"
    assert used.tables == {"residents", "social_insurance"} and used.cpu_s > 0
    with usage.measure() as refused:
        assert run_query(enclave, _job("SELECT resident_id FROM residents", policy)).status == "refused"
    assert (refused.tables, refused.cpu_s) == (set(), 0.0)  # refused before any data was touched


def test_a_refusal_names_its_rule_and_is_recorded(enclave: Enclave, policy: ScenarioPolicy) -> None:
    outcome = run_query(enclave, _job("SELECT resident_id FROM residents", policy))
    assert outcome.status == "refused" and outcome.rule is not None and outcome.rule.startswith("P-")
    entry = enclave.ledger.entry(outcome.ledger_index)  # type: ignore[arg-type]
    assert (entry.action, entry.details["rule"]) == ("job.refused", outcome.rule)
    with pytest.raises(Exception, match="no quarantined result"):
        enclave.quarantine.load(outcome.job_id)


def test_a_failing_job_is_recorded_and_the_pool_survives(enclave: Enclave, policy: ScenarioPolicy) -> None:
    # Distinct counts over a many-to-many join cannot be factorized away: billions of rows.
    heavy = (
        "SELECT a.district, COUNT(DISTINCT c.resident_id) AS n FROM residents a "
        "JOIN residents b ON a.district = b.district JOIN residents c ON b.district = c.district "
        "GROUP BY a.district"
    )
    outcome = run_query(enclave, _job(heavy, policy))
    assert outcome.status == "failed"
    assert "limit" in outcome.reason
    assert enclave.ledger.entry(outcome.ledger_index).action == "job.failed"  # type: ignore[arg-type]
    again = run_query(enclave, _job("SELECT COUNT(*) AS n FROM residents", policy))
    assert again.status == "quarantined"


def test_scenario_tables_only(enclave: Enclave) -> None:
    narrow = ScenarioPolicy({"residents": enclave.catalog.get("residents")})
    outcome = run_query(enclave, _job("SELECT COUNT(*) AS n FROM social_insurance", narrow))
    assert outcome.status == "refused"


def test_the_engine_holds_the_scenario_scope_and_nothing_more(enclave: Enclave) -> None:
    # SQL that slipped past the policy still finds only the scenario's datasets attached.
    residents = frozenset({"residents"})
    count = "SELECT COUNT(*) AS n FROM residents"
    assert execute_checked(enclave, count, residents, residents).num_rows == 1
    with pytest.raises(JobError, match="social_insurance does not exist"):
        execute_checked(enclave, "SELECT COUNT(*) AS n FROM social_insurance", residents, residents)
    with pytest.raises(JobError, match="social_insurance does not exist"):
        execute_checked(enclave, "SELECT COUNT(*) AS n FROM social_insurance", residents)
    both = frozenset({"residents", "social_insurance"})
    warm = execute_checked(enclave, "SELECT COUNT(*) AS n FROM social_insurance", residents | both, both)
    assert warm.column("n")[0].as_py() > 0
    with pytest.raises(JobError, match=r"reads \['social_insurance'\], outside its scenario"):
        execute_checked(enclave, count, both, residents)


def test_mock_data_comes_from_declarations_only(enclave: Enclave, policy: ScenarioPolicy) -> None:
    tables = mock_tables(policy.datasets, rows=500, seed=3)
    residents = tables["residents"]
    assert residents.column_names == [c.name for c in CITY_COLUMNS["residents"]]
    assert set(residents.column("district").to_pylist()) <= set(DISTRICTS)
    sizes = residents.column("household_size").to_pylist()
    assert min(sizes) >= 1 and max(sizes) <= 10
    real_ids = set(enclave.vault.members("person"))
    assert not {v for v in residents.column("resident_id").to_pylist()} & {p for p, _ in real_ids}
    assert mock_tables(policy.datasets, rows=500, seed=3)["residents"].equals(residents)


def test_mock_runs_are_checked_and_marked(policy: ScenarioPolicy) -> None:
    result = run_mock("SELECT education, COUNT(*) AS n FROM residents GROUP BY education", policy, rows=400)
    assert result.marker == MARKER
    assert sum(result.table.column("n").to_pylist()) == 400
    joined = run_mock(
        "SELECT COUNT(*) AS n FROM residents r JOIN social_insurance s ON r.resident_id = s.resident_id",
        policy,
    )
    assert joined.table.column("n").to_pylist()[0] > 0, "mock identifiers join within a domain"
    with pytest.raises(PolicyViolation):
        run_mock("SELECT resident_id FROM residents", policy)
    hidden = ScenarioPolicy({"residents": policy.datasets["residents"]})
    assert hidden.datasets["residents"].column("name").tag is Tag.HIDDEN


@pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed here")
def test_a_python_job_runs_confined_on_checked_inputs(enclave: Enclave, policy: ScenarioPolicy) -> None:
    code = (
        "import pyarrow.compute as pc\n"
        "employed = pc.sum(inputs['by_status'].filter(inputs['by_status']['employed'])['n']).as_py()\n"
        "result = {'employment_rate': employed / pc.sum(inputs['by_status']['n']).as_py()}\n"
    )
    job = PythonJob(
        code=code,
        inputs={"by_status": "SELECT employed, COUNT(*) AS n FROM residents GROUP BY employed"},
        actor="developer:alice",
        scenario="governance",
        policy=policy,
    )
    outcome = run_python(enclave, job)
    assert outcome.status == "quarantined", outcome.reason
    table, meta = enclave.quarantine.load(outcome.job_id)
    rate = json.loads(table.column("value")[0].as_py())["employment_rate"]
    assert 0 < rate < 1 and meta["kind"] == "json" and meta["code"] == code


def test_python_job_inputs_are_policy_checked(enclave: Enclave, policy: ScenarioPolicy) -> None:
    job = PythonJob(
        "result = 1", {"raw": "SELECT resident_id FROM residents"}, "developer:alice", "g", policy
    )
    outcome = run_python(enclave, job)
    assert outcome.status == "refused" and outcome.rule == "P-IDENT-OUTPUT"
    assert "input 'raw'" in outcome.reason


def test_python_jobs_are_refused_without_confinement(
    enclave: Enclave, policy: ScenarioPolicy, tmp_path: Path
) -> None:
    job = PythonJob(
        "result = 1", {"n": "SELECT COUNT(*) AS n FROM residents"}, "developer:alice", "g", policy
    )
    outcome = run_python(enclave, job, bwrap=str(tmp_path / "missing-bwrap"))
    assert (outcome.status, outcome.rule) == ("refused", CONFINEMENT_RULE)
    assert enclave.ledger.entry(outcome.ledger_index).details["rule"] == CONFINEMENT_RULE  # type: ignore[arg-type]
