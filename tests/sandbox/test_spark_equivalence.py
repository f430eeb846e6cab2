"""DuckDB and Spark give the same answers: every legitimate query, every rewrite template, twice.

Over the roughened city and the probes (NULLs, negatives, out-of-range values, ties, Unicode,
empty groups; see conftest), each query runs on DuckDB as its backend renders it and on Spark
as the Spark backend renders it: counts equal, sums within 1e-9 relative (floating-point
sums depend on the order rows are added in), the same Arrow types. DP rewrites are rendered
portably on both engines with one seed: their exact aggregates must be equal and bounding
must keep the very same rows. Every Spark run is repeated, to catch nondeterminism. Every
Spark text the suite runs calls only functions on the allow-list, and every allow-list
entry is exercised.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pytest

from sandbox import dp, evidence
from sandbox._render import Renderer
from sandbox._spark_sql import SPARK_FUNCTIONS, check_rendered, functions_in
from sandbox.backend import Backend
from sandbox.dp import DpConfig, DpPlan
from sandbox.enclave import Enclave
from sandbox.errors import JobError, UnsupportedOnBackend
from sandbox.jobs import execute_checked
from sandbox.policy import CheckedQuery, ScenarioPolicy, check_query
from tests.sandbox.test_dp import DP
from tests.sandbox.test_policy import ACCEPTED

pytestmark = pytest.mark.spark

SEED = 20_260_101
RENDERED: list[str] = []
"""Every Spark SQL text this module ran."""

# Per-row expressions over the probes, grouped so each distinct input gives its own row.
PROBES = [
    "SELECT x, ROUND(x) AS r0, ROUND(x, 1) AS r1, ROUND(x, 2) AS r2, ROUND(x, 3) AS r3, ABS(x) AS a, "
    "x / 3 AS third, x * 1.5 AS more, GREATEST(x, 0) AS pos, LEAST(x, 1e3) AS capped, NULLIF(x, 0) AS nz, "
    "COUNT(*) AS n FROM probes GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11",
    "SELECT d, year(d) AS y, month(d) AS mo, day(d) AS dd, quarter(d) AS q, "
    "extract(isodow FROM d) AS isodow, extract(week FROM d) AS w, extract(isoyear FROM d) AS iy, "
    "extract(day FROM d) AS ed, date_trunc('week', d) AS wk, date_trunc('quarter', d) AS qt, "
    "date_trunc('year', d) AS yt, date_trunc('day', d) AS dt, COUNT(*) AS n FROM probes "
    "GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13",
    "SELECT d, d2, date_diff('day', d, d2) AS days, date_diff('month', d, d2) AS months, "
    "date_diff('quarter', d, d2) AS quarters, date_diff('year', d, d2) AS years, "
    "d >= '2000-01-01' AS recent, d = DATE '2024-02-29' AS leap, COUNT(*) AS n "
    "FROM probes GROUP BY 1, 2, 3, 4, 5, 6, 7, 8",
    "SELECT s, length(s) AS len, s LIKE '%\\%' AS backslash, s LIKE 'x_y' AS one, s LIKE '_' AS single, "
    "s LIKE '%区' AS ward, substring(s, 1, 2) AS head, substring(s, 2) AS tail, "
    "concat(s, '|', i) AS joined, s || '!' AS loud, concat(s, NULL) AS same, COUNT(*) AS n "
    "FROM probes GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11",
    "SELECT i, CAST(i AS VARCHAR) AS t, CAST(i AS DOUBLE) AS f, TRY_CAST(i AS SMALLINT) AS small, "
    "CAST(b AS VARCHAR) AS bt, COALESCE(s, 'none') AS sn, IF(b, 'y', 'n') AS yn, "
    "CASE WHEN i > 0 THEN 'pos' WHEN i < 0 THEN 'neg' END AS sign, i IN (1, 2, 3) AS few, "
    "i BETWEEN -5 AND 5 AS near, s IS NULL AS missing, b IS NOT DISTINCT FROM TRUE AS yes, "
    "COUNT(*) AS n FROM probes GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12",
    "SELECT b, COUNT(*) AS n, COUNT(i) AS with_i, COUNT(DISTINCT s) AS texts, "
    "COUNT(DISTINCT id) AS people, SUM(m) AS total, AVG(m) AS mean, SUM(k) AS ks, AVG(k) AS mean_k, "
    "COUNT(*) FILTER (WHERE i > 0) AS positive FROM probes GROUP BY b",
    "SELECT s, COUNT(*) AS n FROM probes GROUP BY s ORDER BY n DESC LIMIT 3",
    "SELECT s, SUM(k) AS ks FROM probes WHERE i > 1000 GROUP BY s",
    "SELECT CASE WHEN d < DATE '1950-01-01' THEN 'old' ELSE 'new' END AS era, AVG(m) AS mean FROM probes "
    "WHERE s <> 'ΣΑΣ' AND x > -1e6 GROUP BY era HAVING COUNT(*) > 2",
]
# The policy's legitimate queries that Spark would answer differently, and the rule refusing each.
REFUSED_ON_SPARK = {
    "SELECT lower(industry) AS industry_key, COUNT(*) FROM enterprises WHERE industry LIKE '%services' "
    "GROUP BY industry_key": "S-FUNCTION",
    "SELECT CASE WHEN CAST(household_size AS DOUBLE) * 1.5 > 6 THEN 'crowded' ELSE 'roomy' END AS space, "
    "COUNT(*)\nFROM residents WHERE birth_date >= '1980-01-01' AND TRY_CAST(district AS INTEGER) IS NULL "
    "GROUP BY space": "S-CAST",
}
# The DP test sets' queries (sandbox/test_dp*.py and the benchmark's), and a few over probes.
DP_QUERIES = [
    "SELECT COUNT(DISTINCT resident_id) AS insured FROM social_insurance",
    "SELECT month, COUNT(*) AS n, SUM(base_salary) AS paid FROM social_insurance GROUP BY month",
    "SELECT r.district, COUNT(*) AS n, AVG(s.base_salary) AS avg_salary FROM residents AS r "
    "JOIN social_insurance AS s ON r.resident_id = s.resident_id GROUP BY r.district",
    "SELECT education, COUNT(*) AS n, SUM(household_size) AS persons FROM residents "
    "WHERE employed AND gender = 'F' GROUP BY education",
    "SELECT s, b, COUNT(*) AS n, SUM(m) AS total FROM probes GROUP BY s, b",
    "SELECT x, d, COUNT(*) AS n, AVG(k) AS mean FROM probes GROUP BY x, d",
]
CONFIGS = [
    DpConfig(DP.unit_dataset, DP.unit_column, 1.0, max_rows=1, max_groups=1),
    DpConfig(DP.unit_dataset, DP.unit_column, 1.0, max_rows=3, max_groups=2),
]


def _run(enclave: Enclave, engine: Backend, sql: str, checked: CheckedQuery) -> pa.Table:
    if engine.name == "spark":
        check_rendered(sql, checked.tables)
        RENDERED.append(sql)
    return execute_checked(enclave, sql, checked.tables, engine=engine)


def _close(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    return bool(type(a) is type(b) and a == b)


def _match(left: list[tuple[Any, ...]], right: list[tuple[Any, ...]], ordered: bool) -> bool:
    """Whether the rows agree, in order or as multisets, each value within tolerance."""
    if len(left) != len(right):
        return False
    if ordered:
        return all(_close(a, b) for a, b in zip(left, right, strict=True))
    rest = list(right)
    for row in left:
        found = next((j for j, other in enumerate(rest) if _close(row, other)), None)
        if found is None:
            return False
        rest.pop(found)
    return True


def _same(spark: pa.Table, duck: pa.Table, label: str, *, ordered: bool = False) -> None:
    assert spark.schema.names == duck.schema.names, label
    assert spark.schema.types == duck.schema.types, f"{label}: {spark.schema} vs {duck.schema}"
    rows = [[tuple(r.values()) for r in t.to_pylist()] for t in (spark, duck)]
    assert _match(rows[0], rows[1], ordered), f"{label}:\n{rows[0][:5]}\n{rows[1][:5]}"


def _ordered(checked: CheckedQuery) -> bool:
    return bool(checked.statement.args.get("order") or checked.statement.args.get("limit"))


@pytest.fixture(scope="module")
def engines(spark_enclave: Enclave) -> Iterator[tuple[Backend, Backend]]:
    yield spark_enclave.duckdb, spark_enclave.spark


def test_legitimate_queries_answer_alike_or_are_refused_with_a_reason(
    spark_enclave: Enclave, spark_policy: ScenarioPolicy, engines: tuple[Backend, Backend]
) -> None:
    duckdb, spark = engines
    refused = {}
    for sql in [*ACCEPTED, *PROBES]:
        checked = check_query(sql, spark_policy)
        try:
            spark_sql = spark.render(checked, spark_policy)
        except UnsupportedOnBackend as exc:
            refused[sql] = exc.rule
            continue
        duck = _run(spark_enclave, duckdb, duckdb.render(checked, spark_policy), checked)
        portable = Renderer.for_statement(checked.statement, spark_policy, portable=True).query(checked)
        tied = _run(spark_enclave, duckdb, portable, checked)
        if not checked.statement.args.get("limit"):
            _same(tied, duck, f"portable DuckDB changed the answer of {sql}")
        for attempt in range(2):
            answer = _run(spark_enclave, spark, spark_sql, checked)
            _same(answer, tied, f"run {attempt} of {sql}", ordered=_ordered(checked))
    assert refused == REFUSED_ON_SPARK


def _kept_rows(plan: DpPlan) -> str:
    """The plan's SQL, ending in the rows bounding kept instead of their aggregates (test only)."""
    body = plan.sql[: plan.sql.rindex(") SELECT ") + 1]
    if "__dp_least" in plan.sql:  # one row per unit: its least struct, hashes included
        return body + " SELECT __dp_row.__dp_gh AS gh, __dp_row.__dp_rh AS rh FROM __dp_least"
    measures = [source for _, kind, source in plan.outputs if kind in ("sum", "avg")]
    columns = ", ".join(["__dp_unit", *plan.groups, *(str(m).replace("__dp_s", "__dp_m") for m in measures)])
    rank = f" WHERE __dp_rrank <= {plan.config.max_rows}" if "__dp_rrank" in plan.sql else ""
    return body + f" SELECT {columns} FROM __dp_kept{rank}"


def test_dp_rewrites_keep_the_same_rows_and_aggregate_them_alike(
    spark_enclave: Enclave, spark_policy: ScenarioPolicy, engines: tuple[Backend, Backend]
) -> None:
    duckdb, spark = engines
    templates = set()
    for sql in DP_QUERIES:
        for config in CONFIGS:
            checked = check_query(sql, spark_policy)
            portable = Renderer.for_statement(checked.statement, spark_policy, portable=True)
            duck_plan = dp.plan(checked, config, spark_policy, portable, seed=SEED)
            spark_plan = dp.plan(
                checked, config, spark_policy, spark.renderer(checked.statement, spark_policy), seed=SEED
            )
            templates.add(
                "least"
                if "__dp_least" in spark_plan.sql
                else "rank"
                if "OVER" in spark_plan.sql
                else "unique"
            )
            label = f"{sql} with {config.max_rows} rows, {config.max_groups} groups"
            exact = _run(spark_enclave, duckdb, duck_plan.sql, checked)
            assert exact.num_rows > 0, label
            for attempt in range(2):
                _same(_run(spark_enclave, spark, spark_plan.sql, checked), exact, f"run {attempt}: {label}")
            if "__dp_unit IS NOT NULL) SELECT" not in spark_plan.sql:  # a unique unit keeps every row
                kept = _run(spark_enclave, duckdb, _kept_rows(duck_plan), checked)
                _same(_run(spark_enclave, spark, _kept_rows(spark_plan), checked), kept, f"kept: {label}")
            sums = [c for c in exact.column_names if c.startswith("__dp_s")]
            assert all(
                isinstance(v, Decimal) for c in sums for v in exact.column(c).to_pylist() if v is not None
            )
    assert templates == {"unique", "least", "rank"}


def test_disclosure_evidence_is_measured_alike(
    spark_enclave: Enclave, spark_policy: ScenarioPolicy, engines: tuple[Backend, Backend]
) -> None:
    duckdb, spark = engines
    measured = 0
    # One rewrite for every query: half the policy's set covers its shapes (tables, joins,
    # filters, CTEs); the probes' aggregates bring NULLs, negatives and ties.
    for sql in [*ACCEPTED[::2], PROBES[5]]:
        if sql in REFUSED_ON_SPARK:
            continue
        checked = check_query(sql, spark_policy)
        duck_sql = evidence.evidence_sql(checked, spark_policy, Renderer())
        spark_sql = evidence.evidence_sql(
            checked, spark_policy, spark.renderer(checked.statement, spark_policy)
        )
        assert (duck_sql is None) == (spark_sql is None), sql
        if duck_sql is None or spark_sql is None:
            continue
        result = _run(spark_enclave, duckdb, checked.render(), checked)
        try:
            expected = evidence.align(checked, result, _run(spark_enclave, duckdb, duck_sql, checked))
        except JobError:  # a shape the evidence rewrite cannot bind: Spark cannot either
            with pytest.raises(JobError):
                _run(spark_enclave, spark, spark_sql, checked)
            continue
        found = evidence.align(checked, result, _run(spark_enclave, spark, spark_sql, checked))
        assert _close(found, expected), sql
        measured += 1
    assert measured >= 8


def test_the_portable_hash_is_the_same_text_on_both_engines(
    spark_enclave: Enclave, spark_policy: ScenarioPolicy, engines: tuple[Backend, Backend]
) -> None:
    duckdb, spark = engines
    checked = check_query(
        "SELECT s, x, d, b, i, COUNT(*) AS n FROM probes GROUP BY 1, 2, 3, 4, 5", spark_policy
    )
    parts = [("s", "text"), ("x", "float"), ("d", "date"), ("b", "bool"), ("i", "int")]
    tables = []
    for engine, renderer in (
        (duckdb, Renderer.for_statement(checked.statement, spark_policy, portable=True)),
        (spark, spark.renderer(checked.statement, spark_policy)),
    ):
        hashes = ", ".join(renderer.seeded_hash(parts[:k], SEED) + f" AS h{k}" for k in range(1, 6))
        tables.append(_run(spark_enclave, engine, f"SELECT s, x, d, b, i, {hashes} FROM probes", checked))
    _same(tables[1], tables[0], "portable hashes")
    assert tables[0].num_rows > 300 and tables[0].column("h5").null_count == 0


def test_every_spark_query_stays_within_the_allow_list_and_uses_all_of_it() -> None:
    assert RENDERED, "the tests above ran Spark queries"
    used = set()
    for sql in RENDERED:
        names = set(functions_in(sql))
        assert names <= set(SPARK_FUNCTIONS), names - set(SPARK_FUNCTIONS)
        used |= names
    assert set(SPARK_FUNCTIONS) - used == set(), "every allowed function is proved equal by a test above"
