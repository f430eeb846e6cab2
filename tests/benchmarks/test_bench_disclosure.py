"""The disclosure benchmark runs in smoke mode, and its answer checks refuse wrong answers."""

from __future__ import annotations

import statistics
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from benchmarks import bench_disclosure
from benchmarks._disclosure_history import PLANTED, History, probes
from benchmarks._disclosure_population import ISLET, MIN_CELL, islet_cells, populations
from benchmarks._disclosure_rules import COUNT, ENGINE, TOTAL, check_rules, rules_case
from benchmarks._report import Options
from benchmarks.bench_disclosure import check_attack, check_safe
from outbound_review import CheckParameters, run_checks
from outbound_review.differencing import ReleaseIndex

SEED = 20260101


def test_smoke_run_records_both_benchmarks(tmp_path: Path) -> None:
    records = bench_disclosure.run(Options(mode="smoke", seed=SEED, scratch=tmp_path))
    differencing = [r for r in records if r.name == "differencing check"]
    rules = [r for r in records if r.name == "disclosure rules"]
    assert len(records) == len(differencing) + len(rules)
    assert [r.size for r in differencing] == [10, 50]
    assert [r.size for r in rules] == [50]
    for record in records:
        assert record.runs >= 1 and record.median_ms > 0 and record.p95_ms >= record.median_ms
        assert record.ops_per_s and record.ops_per_s > 0
        assert record.note and record.target is None and record.met is None
    assert all(r.engine == bench_disclosure.ENGINE for r in differencing)
    assert rules[0].engine == ENGINE
    assert "Growth" not in (differencing[0].note or "") and differencing[0].ratio is None
    assert "Growth: ×" in (differencing[1].note or "") and "in turn" in (differencing[1].note or "")
    assert differencing[1].ratio is not None and differencing[1].ratio > 0
    assert "caught subtracting" in (differencing[1].note or "")


@pytest.mark.parametrize(
    ("growths", "met"),
    [([9.0] * 15 + [30.0] * 5, True), ([11.0] * 15 + [1.0] * 5, False), ([9.0] * 10 + [11.0] * 10, None)],
)
def test_growth_is_judged_on_the_interval_of_its_per_release_median(
    growths: list[float], met: bool | None
) -> None:
    previous = [0.001 * (i + 1) for i in range(len(growths))]
    seconds = [g * p for g, p in zip(growths, previous, strict=True)]
    growth, words, verdict = bench_disclosure._growth(seconds, previous, 10.0)
    assert verdict is met
    assert growth == pytest.approx(statistics.median(growths))
    assert words.startswith(f"Growth: ×{growth:.1f} for 10× the releases")


def test_every_joint_cell_is_empty_or_large_except_the_islet() -> None:
    pops = populations(SEED)
    for pop in pops:
        counts = pop.counts
        if pop.columns[0].values[-1] == ISLET:
            counts = counts[:-1]
        assert not np.any((counts > 0) & (counts < MIN_CELL))
    assert sum(islet_cells(pops).values()) == 3


def _index(size: int, with_planted: bool = True) -> ReleaseIndex:
    pops = populations(SEED)
    index = ReleaseIndex()
    if with_planted:
        index.add(probes(pops)[0])
    for release in History(SEED, "earlier", pops).take(size):
        index.add(release)
    return index


def test_the_probes_hold_on_a_grown_history() -> None:
    pops = populations(SEED)
    _, attack, safe = probes(pops)
    index = _index(300)
    check_attack(index.check(attack, MIN_CELL), islet_cells(pops))
    check_safe(index.check(safe, MIN_CELL))


def test_a_missed_or_wrong_differencing_finding_is_caught() -> None:
    pops = populations(SEED)
    _, attack, safe = probes(pops)
    expected = islet_cells(pops)
    found = _index(300).check(attack, MIN_CELL)
    without_planted = _index(300, with_planted=False).check(attack, MIN_CELL)
    with pytest.raises(AssertionError, match="should difference"):
        check_attack(without_planted, expected)
    with pytest.raises(AssertionError, match="should difference"):
        check_attack(found, {key: n + 1 for key, n in expected.items()})
    one_cell = next(iter(expected))
    partial = [f for f in found if f.group_key != one_cell or f.other_release_ids != (PLANTED,)]
    with pytest.raises(AssertionError, match="should difference"):
        check_attack(partial, expected)
    with pytest.raises(AssertionError, match="safe release"):
        check_safe(found)
    assert _index(300).check(safe, MIN_CELL) == []


def test_the_rules_check_accepts_the_planted_failures() -> None:
    case = rules_case(200, SEED)
    check_rules(run_checks(case.table, case.evidence, CheckParameters()), case)
    assert len(case.expected["SDC-MIN-CELL"]) == 2 * (200 // 50 + 1)


def test_the_rules_check_refuses_a_report_that_misses_a_cell() -> None:
    case = rules_case(200, SEED)
    row, _ = min(case.expected["SDC-MIN-CELL"])
    counts = case.table.column(COUNT).to_pylist()
    counts[row] = MIN_CELL
    grown = case.table.set_column(case.table.column_names.index(COUNT), COUNT, pa.array(counts, pa.int64()))
    report = run_checks(grown, case.evidence, CheckParameters())
    with pytest.raises(AssertionError, match="SDC-MIN-CELL"):
        check_rules(report, case)
    lenient = run_checks(case.table, case.evidence, CheckParameters(min_cell=3))
    with pytest.raises(AssertionError, match="SDC-MIN-CELL"):
        check_rules(lenient, case)
    unplanted = replace(case, expected={**case.expected, "SDC-DOMINANCE-NK": frozenset({(0, TOTAL)})})
    with pytest.raises(AssertionError, match="SDC-DOMINANCE-NK"):
        check_rules(run_checks(case.table, case.evidence, CheckParameters()), unplanted)
