"""The disclosure rules benchmark: ``run_checks`` on result tables of realistic size.

A table is a group-by result over as many of district, education, gender, age band and
year as its size needs, with a count column and a sum of incomes whose per-cell evidence
(contributors, largest contributions, total) is recorded as the enclave records it. Nearly
every cell is safe; a few are planted to fail: cells with 3–9 contributors (SDC-MIN-CELL, on
the count and on the sum's underlying count) and one cell whose two largest incomes hold
95 % of its total (SDC-DOMINANCE-NK and SDC-P-PERCENT). Every timed call's report must name
exactly those cells and pass every other rule.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass
from time import perf_counter

import pyarrow as pa

from benchmarks._report import Record, check, measured, progress
from outbound_review import RULES, CheckParameters, CheckReport, ResultEvidence, run_checks

COUNT, TOTAL = "residents", "income_total"
ENGINE = f"run_checks ({len(RULES)} rules)"
_DIMENSIONS: tuple[tuple[str, tuple[str | int, ...]], ...] = (
    ("district", tuple(f"D{i:02d}" for i in range(12))),
    ("education", ("primary", "secondary", "vocational", "bachelor", "postgraduate")),
    ("gender", ("F", "M")),
    ("age_band", ("18-24", "25-34", "35-44", "45-54", "55-64", "65-74", "75-84", "85+")),
    ("year", tuple(range(2015, 2026))),
)
_SMALL_EVERY = 50  # one planted small cell per this many rows, at least one


Cell = tuple[int, str]


@dataclass(frozen=True)
class RulesCase:
    """A result table, its evidence, and the cells each rule must fail (every other rule passes)."""

    table: pa.Table
    evidence: ResultEvidence
    expected: dict[str, frozenset[Cell]]


def rules_case(rows: int, seed: int) -> RulesCase:
    """A ``rows``-row result with a few planted failing cells, drawn from ``seed``."""
    rng = random.Random(f"{seed}/rules/{rows}")
    dims = _dimensions_for(rows)
    keys = sorted(rng.sample(list(itertools.product(*(values for _, values in dims))), rows))
    planted = rng.sample(range(rows), rows // _SMALL_EVERY + 2)
    dominant, small = planted[0], set(planted[1:])
    counts, totals, tops = [], [], []
    for row in range(rows):
        n = rng.randint(3, 9) if row in small else rng.randint(10, 400)
        mean = rng.uniform(30_000, 90_000)
        total = round(n * mean, 2)
        if row == dominant:
            first, second = 0.8 * total, 0.15 * total
        else:
            # Safe by a wide margin: the two largest hold at most 60 % of any total.
            first = min(0.3 * total, mean * rng.uniform(2, 4))
            second = first * rng.uniform(0.5, 0.95)
        counts.append(n)
        totals.append(total)
        tops.append([round(first, 2), round(second, 2), round(second * rng.uniform(0.5, 0.95), 2)])
    columns = {name: [key[i] for key in keys] for i, (name, _) in enumerate(dims)}
    table = pa.table({**columns, COUNT: pa.array(counts, pa.int64()), TOTAL: pa.array(totals, pa.float64())})
    evidence = ResultEvidence(
        count_columns=(COUNT,),
        magnitude_columns=(TOTAL,),
        dimension_columns=tuple(name for name, _ in dims),
        cell_counts={TOTAL: counts},
        top_contributions={TOTAL: tops},
        cell_totals={TOTAL: totals},
    )
    expected = {
        "SDC-MIN-CELL": frozenset((row, column) for row in small for column in (COUNT, TOTAL)),
        "SDC-DOMINANCE-NK": frozenset({(dominant, TOTAL)}),
        "SDC-P-PERCENT": frozenset({(dominant, TOTAL)}),
    }
    return RulesCase(table, evidence, expected)


def _dimensions_for(rows: int) -> tuple[tuple[str, tuple[str | int, ...]], ...]:
    """The fewest leading dimensions with enough combinations for ``rows`` distinct groups."""
    combinations = 1
    for used, (_, values) in enumerate(_DIMENSIONS, start=1):
        combinations *= len(values)
        if combinations >= rows:
            return _DIMENSIONS[:used]
    raise ValueError(f"no more than {combinations:,} distinct groups, not {rows:,}")


def check_rules(report: CheckReport, case: RulesCase) -> None:
    """Fail unless every rule ran and exactly the planted cells failed, everything else passing."""
    check(
        [o.rule for o in report.outcomes] == [rule.id for rule in RULES],
        "run_checks did not run every rule, in order",
    )
    for outcome in report.outcomes:
        cells = case.expected.get(outcome.rule)
        if cells is None:
            check(outcome.outcome == "pass", f"{outcome.rule}: {outcome.outcome} on a safe result")
        else:
            failed = sorted(outcome.cells)
            check(
                outcome.outcome == "fail" and frozenset(failed) == cells,
                f"{outcome.rule}: {outcome.outcome} on cells {failed}, planted {sorted(cells)}",
            )
    check(report.worst == "fail", f"the planted cells leave the report's worst at {report.worst}")


def rules_records(seed: int, sizes: tuple[tuple[int, int], ...]) -> list[Record]:
    """A record per (rows, calls): the time of one ``run_checks`` over a result of that many rows."""
    records = []
    params = CheckParameters()
    for rows, calls in sizes:
        case = rules_case(rows, seed)
        progress(f"disclosure rules: {rows:,}-row result, {calls} calls")
        seconds = []
        for _ in range(calls):
            start = perf_counter()
            report = run_checks(case.table, case.evidence, params)
            seconds.append(perf_counter() - start)
            check_rules(report, case)
        small = len(case.expected["SDC-MIN-CELL"]) // 2
        dims = " × ".join(case.evidence.dimension_columns)
        note = (
            f"run_checks with the default parameters (min cell 10, (2, 0.9) dominance, 10 % p-percent) "
            f"on a {rows:,}-row result grouped by {dims}, each row a count and an income sum with its "
            f"recorded evidence; size and ops/s count rows. {small} row(s) are planted with 3–9 "
            "contributors and one with two incomes holding 95 % of its total; every call's report "
            "must fail exactly those cells and pass every other rule. Independent of the release "
            "history."
        )
        records.append(measured("disclosure rules", rows, ENGINE, seconds, ops=rows, note=note))
    return records
