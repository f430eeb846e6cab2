"""The in-process engines of the query benchmark: the two DuckDB floors and Veilbox without HTTP.

- **raw floor**: the plain checked query on the enclave's dataset files;
- **bounded floor**: the exact SQL Veilbox's DP rewrite produces (per-unit contribution
  bounding, clamping, fixed-point sums), before noise — the honest floor for a DP query;
- **Veilbox in-process**: ``sandbox.jobs.run_query`` (policy check, DP rewrite, budget
  charge, execution in an isolated worker, noise, quarantine, ledger entries) and then the
  review gate's ``admit`` (the disclosure checks), as the job runner does.

Both floors run in this process on a DuckDB connection set up by the worker's own code
(``sandbox._worker``): read-only, datasets attached, the same thread count and memory limit.
So a ratio to a floor measures Veilbox's overhead, not a different engine configuration.
"""

from __future__ import annotations

import os
from pathlib import Path
from time import perf_counter
from typing import Any

import duckdb
import pyarrow as pa

from benchmarks._query_data import ACTOR, EPSILON, MIN_CELL, WORKERS, dp_config, policy
from benchmarks._query_set import Cells, EngineFailed, Noise, Prepared, cells_of, declared_noise
from benchmarks._query_workers import peak_mib, reset_peaks, worker_pids
from benchmarks._report import check
from outbound_review import CheckParameters, Gate, SourceDataset, Submission
from sandbox._worker import _Engine
from sandbox.enclave import Enclave
from sandbox.jobs import QueryJob, run_query
from sandbox.limits import Limits
from sandbox.policy import CheckedQuery, ScenarioPolicy

SCENARIO = "bench-in-process"
OPERATOR = "bench:operator"
# Room for every round of every query: ε per query, δ per query without public group keys.
_BUDGET_EPSILON = 100_000.0
_BUDGET_DELTA = 0.5


class Floors:
    """Raw DuckDB on the enclave's dataset files, configured as an enclave worker is."""

    def __init__(self, enclave: Enclave, limits: Limits) -> None:
        attached, _ = enclave.attachments()
        self._datasets = [[name, str(path)] for name, path in attached]
        self._engine = _Engine(str(enclave.paths.base), limits.memory_mb, limits.threads)

    def run(self, sql: str) -> tuple[float, pa.Table]:
        """Seconds to run ``sql`` and fetch its result as Arrow, and the result."""
        cursor = self._engine.cursor(self._datasets, "floors")
        try:
            start = perf_counter()
            table = cursor.sql(sql).to_arrow_table()
            return perf_counter() - start, table
        except duckdb.Error as exc:  # past the worker's memory limit, as the worker would be
            raise EngineFailed(f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}") from None
        finally:
            cursor.close()


class InProcess:
    """Veilbox's query path without HTTP: run_query, then the review gate's admission."""

    def __init__(self, workdir: Path, limits: Limits) -> None:
        self.enclave = Enclave.open(workdir, workers=WORKERS, limits=limits)
        self.policy: ScenarioPolicy = policy(self.enclave)
        self.config = dp_config()
        self.gate = Gate(workdir / "bench-review", self.enclave.ledger, self.enclave.data_keys)
        self.enclave.budget.set_budget(
            SCENARIO, self.config.unit_dataset, _BUDGET_EPSILON, _BUDGET_DELTA, actor=ACTOR
        )
        self.floors = Floors(self.enclave, self.enclave.pool.limits)
        self.peaks: dict[str, list[float]] = {}

    def run(self, prepared: Prepared, tag: str) -> tuple[float, Cells, Noise]:
        """Seconds from submission to a checked result queued for review, the answer and its noise."""
        sql = prepared.query.text(tag)
        workers = worker_pids(os.getpid())
        reset_peaks(workers)
        start = perf_counter()
        outcome = run_query(self.enclave, QueryJob(sql, ACTOR, SCENARIO, self.policy, dp=self.config))
        if outcome.status == "failed":  # a worker limit (time, memory) stopped it
            raise EngineFailed(outcome.reason)
        check(
            outcome.status == "quarantined" and not outcome.reason,
            f"in-process {prepared.query.name}: {outcome.status} {outcome.reason}",
        )
        table, metadata = self.enclave.quarantine.load(outcome.job_id)
        assert outcome.checked is not None  # a quarantined SQL job passed its check
        self.gate.admit(self._submission(outcome.job_id, outcome.checked, metadata), table, metadata)
        elapsed = perf_counter() - start
        peak = peak_mib(workers)
        if peak is not None:
            self.peaks.setdefault(prepared.query.name, []).append(peak)
        return elapsed, cells_of(table.to_pylist(), prepared.kinds, tag), guarantee_noise(metadata, prepared)

    def _submission(self, job_id: str, checked: CheckedQuery, metadata: dict[str, Any]) -> Submission:
        """What the job runner tells the gate about a result, built the way it builds it."""
        sources = tuple(
            SourceDataset(d.name, d.level, d.content_hash, d.row_count)
            for d in (self.enclave.catalog.get(name) for name in sorted(metadata["tables"]))
        )
        return Submission(
            job_id=job_id,
            submitter=ACTOR,
            operator=OPERATOR,
            scenario=SCENARIO,
            purpose="query path benchmark",
            sources=sources,
            parameters=CheckParameters(min_cell=MIN_CELL),
            expected_epsilon=self.config.epsilon,
            expected_bounds=declared_bounds(checked, self.policy),
        )

    def close(self) -> None:
        self.gate.close()
        self.enclave.close()


def declared_bounds(checked: CheckedQuery, policy: ScenarioPolicy) -> dict[str, list[float]]:
    """The catalog's bounds of each SUM or AVG output, which a DP guarantee must declare.

    The job runner reads them from the job's own policy check, so this does too.
    """
    bounds = {}
    for output in checked.outputs:
        if output.function in ("sum", "avg") and len(output.sources) == 1:
            ((table, column),) = output.sources
            declared = policy.datasets[table].column(column)
            if declared.lower is not None and declared.upper is not None:
                bounds[output.name] = [declared.lower, declared.upper]
    return bounds


def guarantee_noise(metadata: dict[str, Any], prepared: Prepared) -> Noise:
    """The noise a quarantined Veilbox result declares; its ε must be the benchmark's."""
    guarantee = metadata["guarantee"]
    check(guarantee["epsilon"] == EPSILON, f"{prepared.query.name}: the result was noised at another ε")
    return declared_noise(guarantee, prepared.plan)
