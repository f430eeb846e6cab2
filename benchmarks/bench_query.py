"""Query path benchmarks: Veilbox's DP queries against raw DuckDB, through HTTP, and SmartNoise SQL.

For each size of synthetic city (residents; social insurance holds about six monthly rows
per resident), the data is generated and ingested once (``benchmarks._query_data``) and
every query of the set (``benchmarks._query_set``) runs on every engine in each round, the
engines' order rotating from round to round:

- raw DuckDB, the plain query, and DuckDB on Veilbox's bounded rewrite, before noise
  (``benchmarks._query_engines``): the floors;
- Veilbox in-process (the job path and the review gate, no HTTP);
- Veilbox through ``veilbox serve`` over HTTP (``benchmarks._query_http``);
- SmartNoise SQL on its SQLite reader (``benchmarks._query_smartnoise``), in the first rounds;
- in the full mode (or with ``--spark``), the bounded rewrite on Apache Spark in local mode
  (``benchmarks._query_spark``) — one machine is not Spark's use case, and the notes say so.

Each ratio is the median of per-round ratios between two engines of the same round
(``benchmarks._query_report`` makes the records). Every answer is checked against the bounded
floor's exact answer, so none can win by being wrong. At the first size, the cheapest query
is also repeated alone (the fixed cost per query) and concurrent API clients measure throughput.
"""

from __future__ import annotations

import contextlib
import itertools
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import httpx2

from benchmarks._query_data import WORKERS, limits_for, prepare
from benchmarks._query_engines import InProcess
from benchmarks._query_http import Platform
from benchmarks._query_report import (
    BOUNDED,
    HTTP,
    IN_PROCESS,
    RAW,
    SMARTNOISE,
    Runs,
    fixed_overhead_record,
    query_records,
    throughput_record,
)
from benchmarks._query_set import EngineFailed, Exact, Prepared, cells_of, check_noisy, check_raw, exact_of
from benchmarks._query_set import prepare as prepare_queries
from benchmarks._query_smartnoise import SmartNoise, unavailable
from benchmarks._query_spark import SparkColumn, spark_records, spark_unavailable
from benchmarks._report import Options, Record, check, paired, progress


@dataclass(frozen=True)
class _Size:
    residents: int
    rounds: int
    smartnoise_rounds: int
    spark_rounds: int = 0


@dataclass(frozen=True)
class _Mode:
    sizes: tuple[_Size, ...]
    jobs: int  # API jobs per level of concurrency, at the first size
    clients: tuple[int, ...] = (1, 4, 16)  # the levels of concurrency


_MODES = {
    # Every level runs at least the query set once; the smoke run only shows that each path works.
    "smoke": _Mode((_Size(2_000, 2, 0),), jobs=6, clients=(1, 3, 6)),
    "quick": _Mode((_Size(100_000, 8, 3), _Size(1_000_000, 3, 2)), jobs=16),
    # SmartNoise's in-memory SQLite copy is not attempted for 10M residents and their ~57M
    # monthly rows on one machine, so the 10M size compares the DuckDB engines only.
    # Spark (local mode) joins at 1M and 10M: see benchmarks._query_spark for what it measures.
    # Enough rounds at every size for the median's interval to stop short of the extremes, so
    # a target near the line can be judged rather than left undecided.
    "full": _Mode(
        (
            _Size(100_000, 12, 8),
            _Size(1_000_000, 16, 8, spark_rounds=3),
            _Size(10_000_000, 8, 0, spark_rounds=2),
        ),
        jobs=48,
    ),
}


def run(options: Options) -> list[Record]:
    """Every query path benchmark, at the sizes ``options.mode`` calls for."""
    mode = _MODES[options.mode]
    records: list[Record] = []
    for number, size in enumerate(mode.sizes):
        records += _measure_size(options, size, mode.jobs if number == 0 else 0, mode.clients)
    return records


def _smartnoise_gap(options: Options, size: _Size) -> str | None:
    if options.mode == "smoke":
        return "smoke mode must not need the bench extra"
    if size.smartnoise_rounds == 0:
        return (
            "this mode runs no SmartNoise round at this size: its in-memory SQLite copy of the city "
            "is not attempted beyond 1M residents"
        )
    return unavailable()


class _Engines:
    """Every engine of one size, each able to time a query and check its answer."""

    def __init__(self, in_process: InProcess, platform: Platform, smartnoise: SmartNoise | None) -> None:
        self.in_process, self.platform, self.smartnoise = in_process, platform, smartnoise
        self.floors = in_process.floors
        self.queries = prepare_queries(in_process.policy, in_process.config)
        self.exact: dict[str, Exact] = {}
        self.unchecked: dict[str, str] = {}
        seconds = {}
        for prepared in self.queries:
            try:
                seconds[prepared.query.name], table = self.floors.run(prepared.plan.sql)
            except EngineFailed as exc:
                self.unchecked[prepared.query.name] = (
                    f"the bounded floor, which checks every answer, failed: {exc}"
                )
                continue
            self.exact[prepared.query.name] = exact_of(table.to_pylist(), prepared.plan)
            self.raw(prepared)
        self.cheapest = min(self.queries, key=lambda p: seconds.get(p.query.name, float("inf")))

    def raw(self, prepared: Prepared) -> float:
        seconds, table = self.floors.run(prepared.query.text())
        check_raw(
            prepared.query, cells_of(table.to_pylist(), prepared.kinds), self.exact[prepared.query.name]
        )
        return seconds

    def bounded(self, prepared: Prepared) -> float:
        seconds, table = self.floors.run(prepared.plan.sql)
        same = exact_of(table.to_pylist(), prepared.plan) == self.exact[prepared.query.name]
        check(same, f"{prepared.query.name}: the bounded floor's answer changed between runs")
        return seconds

    def veilbox(self, prepared: Prepared, tag: str) -> float:
        seconds, cells, noise = self.in_process.run(prepared, tag)
        check_noisy(IN_PROCESS, prepared.query, cells, self.exact[prepared.query.name], noise)
        return seconds

    def http(self, client: httpx2.Client, scenario: str, prepared: Prepared, tag: str) -> float:
        seconds, job_id = self.platform.timed(client, scenario, prepared, tag)
        self.check_http(job_id, prepared, tag)
        return seconds

    def check_http(self, job_id: str, prepared: Prepared, tag: str) -> None:
        cells, noise = self.platform.answer(job_id, prepared, tag)
        check_noisy(HTTP, prepared.query, cells, self.exact[prepared.query.name], noise)

    def smartnoise_run(self, prepared: Prepared) -> float:
        assert self.smartnoise is not None
        seconds, cells, noise = self.smartnoise.run(prepared)
        check_noisy(SMARTNOISE, prepared.query, cells, self.exact[prepared.query.name], noise)
        return seconds


def _measure_size(options: Options, size: _Size, jobs: int, clients: tuple[int, ...]) -> list[Record]:
    """Every engine on every query at one size; at the first (``jobs`` > 0) also API throughput."""
    scratch = options.scratch / f"query-{size.residents}"
    city = prepare(scratch, size.residents, options.seed)
    gap = _smartnoise_gap(options, size)
    with contextlib.ExitStack() as stack:
        in_process = InProcess(city.workdir, limits_for(size.residents))
        stack.callback(in_process.close)
        platform = Platform(city.workdir, scratch / "server.log", limits_for(size.residents))
        stack.callback(platform.close)
        smartnoise = None
        if gap is None:
            datasets, _ = in_process.enclave.attachments()
            smartnoise = SmartNoise(dict(datasets))
            stack.callback(smartnoise.close)
        engines = _Engines(in_process, platform, smartnoise)
        runs = _rounds(engines, size)
        peaks = {IN_PROCESS: in_process.peaks, HTTP: platform.peaks}
        records = query_records(runs, engines.queries, size.residents, peaks, gap, explain=jobs > 0)
        records += _spark(options, size, in_process, engines)
        if jobs:
            records.append(_fixed_overhead(engines, size))
            records += _throughput(engines, size.residents, jobs, clients)
    shutil.rmtree(scratch)
    return records


def _spark(options: Options, size: _Size, in_process: InProcess, engines: _Engines) -> list[Record]:
    """The Spark column at this size, if the mode (or ``--spark``) asks for it."""
    rounds = size.spark_rounds or (2 if options.spark else 0)
    if not rounds:
        return []
    answered = [p for p in engines.queries if p.query.name in engines.exact]

    def column() -> SparkColumn:
        limits = limits_for(size.residents)
        return SparkColumn(in_process.enclave, in_process.policy, answered, engines.floors, limits)

    return spark_records(column, answered, engines.bounded, size.residents, rounds, spark_unavailable())


def _rounds(engines: _Engines, size: _Size) -> Runs:
    """Seconds per engine and query; each round runs every engine on every query, order rotating.

    An engine that fails a query within its limits (a worker's time or memory) is not asked
    again; its record says why.
    """
    _warm_up(engines)
    runs = Runs()
    for name, reason in engines.unchecked.items():
        for engine in (RAW, BOUNDED, IN_PROCESS, HTTP, SMARTNOISE):
            runs.fail(engine, name, reason)
    for number in range(size.rounds):
        scenario = engines.platform.scenario()
        with engines.platform.client() as client:
            for prepared in engines.queries:
                name = prepared.query.name
                sides: list[tuple[str, Callable[[], float]]] = [
                    (RAW, partial(engines.raw, prepared)),
                    (BOUNDED, partial(engines.bounded, prepared)),
                    (IN_PROCESS, partial(engines.veilbox, prepared, f"_r{number}")),
                    (HTTP, partial(engines.http, client, scenario, prepared, f"_r{number}")),
                ]
                if engines.smartnoise and number < size.smartnoise_rounds and prepared.query.smartnoise:
                    sides.append((SMARTNOISE, partial(engines.smartnoise_run, prepared)))
                shift = number % len(sides)
                for engine, side in sides[shift:] + sides[:shift]:
                    if (engine, name) in runs.failed:
                        continue
                    try:
                        runs.add(engine, name, side())
                    except EngineFailed as exc:
                        progress(f"query: {engine} failed {name}: {exc}")
                        runs.fail(engine, name, str(exc))
        progress(f"query: {size.residents:,} residents, round {number + 1} of {size.rounds} done")
    return runs


def _warm_up(engines: _Engines) -> None:
    """One job per Veilbox engine, so no round pays for starting the workers' engines."""
    engines.veilbox(engines.cheapest, "_warm")
    scenario = engines.platform.scenario()
    with engines.platform.client() as client:
        engines.http(client, scenario, engines.cheapest, "_warm")
    engines.in_process.peaks.clear()
    engines.platform.peaks.clear()


def _fixed_overhead(engines: _Engines, size: _Size) -> Record:
    """The cheapest query alone, in-process against bounded DuckDB: the per-query cost with warm workers.

    In the mixed rounds consecutive jobs read different tables, and a worker reopens its
    engine whenever the set of tables it has attached changes; here it never does.
    """
    prepared, serial = engines.cheapest, itertools.count()
    result = paired(
        lambda: engines.veilbox(prepared, f"_f{next(serial)}"),
        lambda: engines.bounded(prepared),
        size.rounds,
        warmup=WORKERS,
    )
    return fixed_overhead_record(prepared, size.residents, result.a, result.b)


def _throughput(engines: _Engines, residents: int, jobs: int, clients: tuple[int, ...]) -> list[Record]:
    """Jobs per second through the API with each number of concurrent ``clients`` sharing ``jobs`` jobs."""
    records = []
    for count in clients:
        progress(f"query: API throughput, {jobs} jobs from {count} concurrent client(s)")
        result, done = engines.platform.throughput(count, jobs, engines.queries)
        for job_id, prepared, tag in done:
            engines.check_http(job_id, prepared, tag)
        records.append(throughput_record(residents, count, result.latencies, result.wall_s))
    return records
