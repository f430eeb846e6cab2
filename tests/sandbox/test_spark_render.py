"""The Spark renderer and the engine configuration, without starting Spark.

What the policy allows but Spark would answer differently is refused with an ``S-*`` rule and
a reason; the DuckDB backend's SQL is untouched by any of it; the Spark text calls only
allow-listed functions; a deployment's ``backend.json`` is validated and read at open.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sandbox import dp
from sandbox._render import Renderer
from sandbox._spark_sql import SPARK_FUNCTIONS, SPARK_RULES, SparkRenderer, check_rendered, functions_in
from sandbox.backend import CONFIG_FILE, SPARK_SETTINGS, BackendConfig, load_config, save_config
from sandbox.enclave import Enclave
from sandbox.errors import BackendError, PolicyViolation, UnsupportedOnBackend
from sandbox.jobs import QueryJob, run_query
from sandbox.policy import ScenarioPolicy, check_query
from tests.sandbox.test_policy import DATASETS

pytestmark = pytest.mark.spark

POLICY = ScenarioPolicy(DATASETS, allow_dp=True)


@pytest.mark.parametrize(
    ("sql", "rule"),
    [
        ("SELECT lower(district) AS d, COUNT(*) AS n FROM residents GROUP BY d", "S-FUNCTION"),
        ("SELECT upper(district) AS d, COUNT(*) AS n FROM residents GROUP BY d", "S-FUNCTION"),
        ("SELECT COUNT(*) AS n FROM residents WHERE district ILIKE 'x%'", "S-FUNCTION"),
        (
            "SELECT district, floor(AVG(registered_capital)) AS f FROM enterprises GROUP BY district",
            "S-FUNCTION",
        ),
        (
            "SELECT district, AVG(registered_capital) / (2e0 - 1e0) AS r FROM enterprises GROUP BY district",
            "S-DIVISION",
        ),
        (
            "SELECT district, AVG(registered_capital) / 0 AS r FROM enterprises GROUP BY district",
            "S-DIVISION",
        ),
        ("SELECT COUNT(*) AS n FROM residents WHERE TRY_CAST(district AS INTEGER) IS NULL", "S-CAST"),
        ("SELECT CAST(AVG(household_size) AS VARCHAR) AS t FROM residents", "S-CAST"),
        ("SELECT TRY_CAST(birth_date AS VARCHAR) AS t, COUNT(*) AS n FROM residents GROUP BY 1", "S-CAST"),
        ("SELECT district || birth_date AS t, COUNT(*) AS n FROM residents GROUP BY 1", "S-CAST"),
        ("SELECT substring(district, 0, 2) AS t, COUNT(*) AS n FROM residents GROUP BY 1", "S-ARGUMENT"),
        (
            "SELECT extract(decade FROM birth_date) AS t, COUNT(*) AS n FROM residents GROUP BY 1",
            "S-ARGUMENT",
        ),
        ("SELECT date_trunc('hour', birth_date) AS t, COUNT(*) AS n FROM residents GROUP BY 1", "S-ARGUMENT"),
        (
            "SELECT date_diff('week', birth_date, DATE '2020-01-01') AS t, COUNT(*) "
            "FROM residents GROUP BY 1",
            "S-ARGUMENT",
        ),
        ("SELECT ROUND(AVG(household_size), -1) AS r FROM residents", "S-ARGUMENT"),
    ],
)
def test_what_spark_would_answer_differently_is_refused_with_a_reason(sql: str, rule: str) -> None:
    checked = check_query(sql, POLICY)
    assert checked.render()  # the policy allows it, and DuckDB runs it as ever
    with pytest.raises(UnsupportedOnBackend) as refused:
        SparkRenderer.for_statement(checked.statement, POLICY).query(checked)
    assert refused.value.rule == rule and isinstance(refused.value, PolicyViolation)
    assert str(refused.value).startswith(f"[{rule}] ") and "(Spark backend)" in refused.value.reason
    assert refused.value.fragment


def test_spark_rules_are_registered_once_each() -> None:
    ids = [rule.id for rule in SPARK_RULES]
    assert len(ids) == len(set(ids)) and all(r.id.startswith("S-") and r.description for r in SPARK_RULES)
    assert all(name.isupper() and why for name, why in SPARK_FUNCTIONS.items())


def test_duckdb_keeps_its_native_hash_and_portable_rendering_is_explicit() -> None:
    checked = check_query(
        "SELECT month, COUNT(*) AS n, SUM(base_salary) AS paid FROM social_insurance GROUP BY month", POLICY
    )
    for max_rows in (1, 3):
        config = dp.DpConfig("residents", "resident_id", 1.0, max_rows=max_rows, max_groups=2)
        native = dp.plan(checked, config, POLICY, seed=5).sql
        assert dp.plan(checked, config, POLICY, Renderer(), seed=5).sql == native
        assert "hash(__dp_unit, __dp_g0, 5)" in native and "md5" not in native and "NULLS" not in native
        portable = dp.plan(
            checked, config, POLICY, Renderer.for_statement(checked.statement, POLICY, portable=True), seed=5
        )
        assert "md5(" in portable.sql and "hash(" not in portable.sql
        assert "NULLS LAST" in portable.sql or "__dp_g0__null" in portable.sql
        spark = dp.plan(
            checked, config, POLICY, SparkRenderer.for_statement(checked.statement, POLICY), seed=5
        )
        check_rendered(spark.sql, checked.tables)
        assert "struct_pack" not in spark.sql and "date_format(" in spark.sql


def test_ties_are_broken_by_every_output_where_order_or_limit_matter() -> None:
    checked = check_query(
        "SELECT district, COUNT(*) AS n FROM residents GROUP BY district ORDER BY n DESC LIMIT 3", POLICY
    )
    spark = SparkRenderer.for_statement(checked.statement, POLICY).query(checked)
    assert spark.endswith("ORDER BY n DESC, 1 NULLS LAST, 2 NULLS LAST LIMIT 3")
    assert checked.render().endswith("ORDER BY n DESC LIMIT 3"), "DuckDB's own rendering is unchanged"


def test_functions_are_found_in_the_text_as_spark_reads_it() -> None:
    sql = "SELECT COUNT(*) AS `count(x)`, SUM(CAST(a AS DECIMAL(38, 0))) FROM t WHERE a IN (1) AND b = 'f(x)'"
    assert functions_in(sql) == ["COUNT", "SUM", "CAST"]
    with pytest.raises(ValueError, match="REFLECT"):
        check_rendered("SELECT reflect('java.lang.System', 'exit', '0') AS x FROM t", ["t"])
    with pytest.raises(ValueError, match="hints"):
        check_rendered("SELECT /*+ COALESCE(1) */ COUNT(*) AS n FROM t", ["t"])


def test_engine_configuration_is_validated() -> None:
    for bad in (
        {"backend": "presto"},
        {"spark_master": ""},
        {"spark_datasets": ["Not A Name"]},
        {"spark_conf": {"spark.sql.ansi.enabled": "false"}},
        {"spark_conf": {"not.spark": "x"}},
        {"spark_conf": {"spark.executor.memory": 4}},
        {"unknown": 1},
        {"spark_datasets": "residents"},
    ):
        with pytest.raises(BackendError):
            BackendConfig.from_json(bad)
    assert set(SPARK_SETTINGS) >= {"spark.sql.ansi.enabled", "spark.sql.runSQLOnFiles"}
    config = BackendConfig.from_json({"spark_datasets": ["province_records"], "spark_conf": {"spark.a": "b"}})
    assert (config.engine_for({"residents"}), config.engine_for({"residents", "province_records"})) == (
        "duckdb",
        "spark",
    )
    assert BackendConfig("spark").engine_for(set()) == "spark"


def test_the_working_directory_chooses_the_engine(tmp_path: Path) -> None:
    assert load_config(tmp_path) == BackendConfig()
    wanted = BackendConfig(
        "duckdb", "local[4]", frozenset({"province_records"}), {"spark.executor.memory": "8g"}
    )
    save_config(tmp_path / "work", wanted)
    assert load_config(tmp_path / "work") == wanted
    with Enclave.open(tmp_path / "work", workers=1) as enclave:
        assert enclave.backend_config == wanted and enclave.engine_for({"residents"}).name == "duckdb"
    (tmp_path / "work" / CONFIG_FILE).write_text("{not json")
    with pytest.raises(BackendError, match="JSON"):
        Enclave.open(tmp_path / "work")
    (tmp_path / "work" / CONFIG_FILE).write_text(json.dumps({"backend": "spark"}))
    assert load_config(tmp_path / "work").backend == "spark"


def test_a_spark_deployment_without_java_fails_its_jobs_with_the_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.delenv("JAVA_HOME", raising=False)
    with Enclave.open(tmp_path / "work", backend=BackendConfig("spark"), workers=1) as enclave:
        policy = ScenarioPolicy({"residents": DATASETS["residents"]})
        outcome = run_query(
            enclave, QueryJob("SELECT COUNT(*) AS n FROM residents", "developer:a", "s", policy)
        )
    assert outcome.status == "failed" and ("Java" in outcome.reason or "pyspark" in outcome.reason)
