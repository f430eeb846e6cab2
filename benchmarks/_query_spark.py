"""The query benchmark's Spark column: the same bounded DP rewrites on Apache Spark in local mode.

One machine is not Spark's use case. Spark earns its keep when data outgrows one machine
and its executors spread over many; on one machine it pays for a JVM, task scheduling,
Parquet scans and shuffles that DuckDB's single process never needs. This column measures
what a Spark deployment costs on the benchmark's machine, not what Spark does on a cluster.

For each query, the Spark backend runs the portable bounded rewrite (rows ranked by md5, see
:mod:`sandbox._render`) on a Spark driver in local mode, in a worker process as a Spark
deployment runs it; the same rewrite on DuckDB must give the identical answer, so Spark
cannot win by being wrong. Rounds pair it with the DuckDB backend's own bounded rewrite
(native ``hash()``), the floor Veilbox's DuckDB path is held to. Timings start after a
warm-up run, which also exports the datasets to Parquet.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from functools import partial
from time import perf_counter

import pyarrow as pa

from benchmarks._query_engines import Floors
from benchmarks._query_set import EngineFailed, Prepared
from benchmarks._report import Record, check, measured, paired, progress, skipped
from sandbox import dp
from sandbox._render import Renderer
from sandbox._spark import SparkBackend
from sandbox._spark_sql import SparkRenderer
from sandbox.backend import BackendConfig
from sandbox.enclave import Enclave
from sandbox.errors import BackendError, JobError
from sandbox.limits import Limits
from sandbox.policy import ScenarioPolicy, check_query

SPARK = "bounded Spark (local)"
MASTER = "local[*]"
_NOTE = (
    "the portable bounded rewrite (md5-ranked rows, the Spark backend's) on a Spark driver in local mode "
    f"({MASTER}) in its own worker process, reading the datasets as Parquet; its answer must equal the "
    "same rewrite's on DuckDB. One machine is not Spark's use case: Spark pays for a JVM, task scheduling "
    "and shuffles that pay off only across many machines, so this column is what a Spark deployment "
    "costs here, not what Spark does on a cluster. Ratio: ÷ bounded DuckDB (its native-hash rewrite)."
)


def spark_unavailable() -> str | None:
    """Why the Spark column cannot run here, or None."""
    try:
        SparkBackend.check_runtime()
    except BackendError as exc:
        return str(exc)
    return None


class SparkColumn:
    """A Spark driver over one size's enclave, and each query's Spark and DuckDB-portable rewrites."""

    def __init__(
        self,
        enclave: Enclave,
        policy: ScenarioPolicy,
        queries: list[Prepared],
        floors: Floors,
        limits: Limits,
    ) -> None:
        self.backend = SparkBackend(
            enclave.paths.enclave,
            BackendConfig("spark", MASTER),
            limits,
            lambda name: enclave.catalog.get(name).content_hash,
        )
        self.enclave, self.floors = enclave, floors
        self.sql: dict[str, str] = {}
        self.exact: dict[str, list[dict[str, object]]] = {}
        for prepared in queries:
            checked = check_query(prepared.query.text(), policy)
            config = prepared.plan.config
            spark = dp.plan(
                checked, config, policy, SparkRenderer.for_statement(checked.statement, policy), seed=7
            )
            portable = Renderer.for_statement(checked.statement, policy, portable=True)
            duck = dp.plan(checked, config, policy, portable, seed=7)
            self.sql[prepared.query.name] = spark.sql
            self.exact[prepared.query.name] = _rows(floors.run(duck.sql)[1])

    def run(self, prepared: Prepared) -> float:
        """Seconds for Spark to answer ``prepared``'s bounded rewrite, checked against DuckDB's."""
        datasets, generation = self.enclave.attachments()
        start = perf_counter()
        try:
            table = self.backend.run(self.sql[prepared.query.name], datasets, generation)
        except JobError as exc:
            raise EngineFailed(str(exc)) from None
        seconds = perf_counter() - start
        same = _rows(table) == self.exact[prepared.query.name]
        check(same, f"{prepared.query.name}: Spark's bounded answer differs from DuckDB's portable one")
        return seconds

    def close(self) -> None:
        self.backend.close()


def _rows(table: pa.Table) -> list[dict[str, object]]:
    return sorted(table.to_pylist(), key=repr)


def spark_records(
    column: Callable[[], SparkColumn] | None,
    queries: list[Prepared],
    bounded: Callable[[Prepared], float],
    residents: int,
    rounds: int,
    gap: str | None,
) -> list[Record]:
    """A record per query: Spark local against bounded DuckDB over ``rounds`` paired rounds."""
    if column is None or gap is not None:
        reason = gap or "this mode runs no Spark round at this size (make bench-full runs them at 1M and 10M)"
        return [skipped(p.query.name, residents, SPARK, f"not run: {reason}.") for p in queries]
    spark = column()
    records = []
    try:
        for number, prepared in enumerate(queries):
            try:
                spark.run(prepared)  # warm-up: exports the datasets, loads the plan's classes
                result = paired(partial(spark.run, prepared), partial(bounded, prepared), rounds)
            except EngineFailed as exc:
                records.append(skipped(prepared.query.name, residents, SPARK, f"failed: {exc}."))
                continue
            ratio = statistics.median(result.ratios)
            note = f"Spark local is {ratio:.1f}× bounded DuckDB on this machine."
            records.append(
                measured(
                    prepared.query.name,
                    residents,
                    SPARK,
                    result.a,
                    ratio=ratio,
                    note=f"{_NOTE} {note}" if number == 0 else note,
                )
            )
            progress(f"query: Spark local, {prepared.query.name}, {residents:,} residents done")
    finally:
        spark.close()
    return records
