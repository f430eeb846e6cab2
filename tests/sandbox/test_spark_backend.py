"""Jobs on the Spark backend: the same checks, limits, quarantine and ledger as on DuckDB.

A Spark deployment runs its query jobs on a Spark driver in a worker process: plain and DP
jobs are quarantined with their engine named in the ledger, refusals happen before any data
is touched, a job past its time is stopped and the driver survives, SQL that did not come
from the renderer is refused by the worker itself, the policy's attack suite is refused the
same way, and datasets reach Spark as Parquet exports named by their content hash.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings

from sandbox import usage
from sandbox.derived import store_match
from sandbox.dp import DpConfig
from sandbox.enclave import Enclave
from sandbox.errors import JobError, JobTimeout
from sandbox.jobs import QueryJob, run_query
from sandbox.policy import ScenarioPolicy
from sandbox.psi import Match
from tests.sandbox.test_policy import ATTACKS, POLICY, _attacks

pytestmark = pytest.mark.spark

SCENARIO = "spark-governance"
SLOW = (
    "SELECT COUNT(*) AS n FROM social_insurance a JOIN social_insurance b ON a.month = b.month "
    "JOIN social_insurance c ON b.month = c.month JOIN social_insurance d ON c.month = d.month"
)


def _job(policy: ScenarioPolicy, sql: str, dp: DpConfig | None = None) -> QueryJob:
    return QueryJob(sql=sql, actor="developer:alice", scenario=SCENARIO, policy=policy, dp=dp)


def test_a_query_job_runs_on_spark_into_quarantine_and_the_ledger_says_so(
    spark_enclave: Enclave, spark_policy: ScenarioPolicy
) -> None:
    sql = "SELECT district, COUNT(*) AS n, AVG(household_size) AS size FROM residents GROUP BY district"
    outcome = run_query(spark_enclave, _job(spark_policy, sql))
    assert outcome.status == "quarantined", outcome.reason
    table, meta = spark_enclave.quarantine.load(outcome.job_id)
    assert "AVG(household_size) AS `size`" in meta["engine_sql"] and meta["rendered_sql"].startswith("SELECT")
    assert meta["evidence"]["kind"] == "aggregate", "the disclosure evidence was measured on Spark too"
    assert sum(table.column("n").to_pylist()) == spark_enclave.catalog.get("residents").row_count
    trail = [e for e in spark_enclave.ledger.iter_entries() if e.subject == outcome.job_id]
    assert [e.action for e in trail] == ["job.started", "job.quarantined"]
    assert all(e.details["engine"] == "spark" for e in trail)


def test_a_dp_job_runs_bounded_on_spark_and_is_charged(
    spark_enclave: Enclave, spark_policy: ScenarioPolicy
) -> None:
    spark_enclave.budget.set_budget(SCENARIO, "residents", epsilon=3.0, delta=1e-5, actor="authority:bureau")
    config = DpConfig("residents", "resident_id", epsilon=0.5, max_rows=2, max_groups=1)
    sql = "SELECT month, COUNT(*) AS n, SUM(base_salary) AS paid FROM social_insurance GROUP BY month"
    outcome = run_query(spark_enclave, _job(spark_policy, sql, config))
    assert outcome.status == "quarantined", outcome.reason
    _, meta = spark_enclave.quarantine.load(outcome.job_id)
    assert meta["guarantee"]["epsilon"] == 0.5 and meta["guarantee"]["max_rows"] == 2
    assert spark_enclave.budget.remaining(SCENARIO, "residents").epsilon == pytest.approx(2.5)
    # Spark cannot lower-case as DuckDB does: refused before the budget is touched.
    refused = run_query(
        spark_enclave,
        _job(spark_policy, "SELECT lower(district) AS d, COUNT(*) AS n FROM residents GROUP BY 1", config),
    )
    assert (refused.status, refused.rule) == ("refused", "S-FUNCTION")
    assert "Spark backend" in refused.reason
    assert spark_enclave.budget.remaining(SCENARIO, "residents").epsilon == pytest.approx(2.5)


def test_a_job_past_its_time_is_stopped_and_the_driver_carries_on(spark_enclave: Enclave) -> None:
    datasets, generation = spark_enclave.attachments()
    with pytest.raises(JobTimeout):
        spark_enclave.spark.run(SLOW, datasets, generation, timeout_s=1.5)
    again = spark_enclave.spark.run("SELECT COUNT(*) AS n FROM residents", datasets, generation)
    assert again.to_pylist() == [{"n": spark_enclave.catalog.get("residents").row_count}]


@pytest.mark.parametrize(
    ("sql", "reason"),
    [
        ("SELECT reflect('java.lang.System', 'getenv', 'HOME') AS h", "REFLECT"),
        ("SELECT java_method('java.lang.Runtime', 'getRuntime') AS r", "JAVA_METHOD"),
        ("SELECT COUNT(*) AS n FROM parquet.`/etc/passwd`", "bare name"),
        ("SELECT COUNT(*) AS n FROM global_temp.residents", "bare name"),
        ("SELECT TRANSFORM(district) USING 'cat' AS (d) FROM residents", "TRANSFORM"),
        ("SELECT /*+ REPARTITION(1000) */ COUNT(*) AS n FROM residents", "hints"),
        ("SET spark.sql.ansi.enabled=false", "one SELECT"),
        ("CREATE TABLE stash AS SELECT * FROM residents", "one SELECT"),
        ("ADD JAR /tmp/evil.jar", "one SELECT"),
        ("SELECT COUNT(*) AS n FROM vault", "not a dataset"),
        ("SELECT COUNT(*) AS n FROM residents; SELECT 1", "one SELECT"),
    ],
)
def test_sql_not_rendered_by_the_enclave_is_refused_by_the_spark_worker(
    spark_enclave: Enclave, sql: str, reason: str
) -> None:
    datasets, generation = spark_enclave.attachments()
    with pytest.raises(JobError, match="refused the SQL") as refused:
        spark_enclave.spark.run(sql, datasets, generation)
    assert reason in str(refused.value)


def test_engine_errors_do_not_echo_data(spark_enclave: Enclave) -> None:
    datasets, generation = spark_enclave.attachments()
    with pytest.raises(JobError) as failed:
        spark_enclave.spark.run("SELECT CAST('psn_0123456789abcdef' AS INT) AS v", datasets, generation)
    assert "psn_0123456789abcdef" not in str(failed.value) and "CAST_INVALID_INPUT" in str(failed.value)


@pytest.mark.parametrize(("rule", "sql"), ATTACKS, ids=[f"{r}-{i}" for i, (r, _) in enumerate(ATTACKS)])
def test_each_policy_attack_is_refused_on_spark_before_it_runs(
    spark_enclave: Enclave, rule: str, sql: str
) -> None:
    with usage.measure() as used:
        outcome = run_query(spark_enclave, _job(POLICY, sql))
    assert (outcome.status, outcome.rule) == ("refused", rule), outcome.reason
    assert (used.tables, used.cpu_s) == (set(), 0.0), "nothing reached an engine"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sql=_attacks())
def test_wrapped_attacks_are_refused_on_spark(spark_enclave: Enclave, sql: str) -> None:
    assert run_query(spark_enclave, _job(POLICY, sql)).status == "refused"


def test_datasets_reach_spark_as_parquet_named_by_their_content_hash(spark_enclave: Enclave) -> None:
    datasets, generation = spark_enclave.attachments()
    count = "SELECT COUNT(*) AS n FROM residents"
    spark_enclave.spark.run(count, datasets, f"{generation}:export-1")
    exports = spark_enclave.paths.enclave / "spark"
    (made,) = exports.glob("residents-*.parquet")
    assert spark_enclave.catalog.get("residents").content_hash[:24] in made.name
    stale = exports / "residents-0000.parquet"
    stale.write_bytes(b"an export of an older registration")
    made.unlink()
    spark_enclave.spark.run(count, datasets, f"{generation}:export-2")
    assert made.exists() and not stale.exists(), "a missing export is made again, a stale one removed"
    stamp = made.stat().st_mtime_ns
    spark_enclave.spark.run(count, datasets, f"{generation}:export-3")
    assert made.stat().st_mtime_ns == stamp, "an export is made once per registration"


def test_a_job_reading_a_dataset_sealed_for_one_operator_stays_on_duckdb(spark_enclave: Enclave) -> None:
    firms = (
        spark_enclave.spark.run("SELECT uscc FROM enterprises", *spark_enclave.attachments())
        .column("uscc")
        .to_pylist()[:20]
    )  # the test reads pseudonyms directly, as the PSI step would
    match = Match("psi_spark", "enterprise", tuple(sorted(str(f) for f in firms if f)), 20, 30, 0)
    store_match(
        spark_enclave, match, name="spark_match", column="uscc", level=2, scenario="scn_bank",
        operator="org_bank", actor="developer:bank",
    )  # fmt: skip
    assert spark_enclave.engine_for({"enterprises"}).name == "spark"
    assert spark_enclave.engine_for({"enterprises", "spark_match"}).name == "duckdb"
    policy = ScenarioPolicy({n: spark_enclave.catalog.get(n) for n in ("enterprises", "spark_match")})
    sql = (
        "SELECT e.industry, COUNT(*) AS firms FROM enterprises e JOIN spark_match m ON e.uscc = m.uscc "
        "GROUP BY 1"
    )
    outcome = run_query(spark_enclave, _job(policy, sql))
    assert outcome.status == "quarantined", outcome.reason
    table, meta = spark_enclave.quarantine.load(outcome.job_id)
    assert "engine_sql" not in meta and sum(table.column("firms").to_pylist()) == len(match.pseudonyms)
    assert not list((spark_enclave.paths.enclave / "spark").glob("spark_match*")), "never exported"
    with pytest.raises(JobError, match="DuckDB only"):
        spark_enclave.spark.run(
            "SELECT COUNT(*) AS n FROM spark_match", [], "g", tables={"spark_match": table}
        )
