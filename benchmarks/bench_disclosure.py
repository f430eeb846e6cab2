"""Disclosure-control benchmarks: the differencing check per release as earlier releases grow,
and the automatic disclosure rules per result.

Differencing: one ``ReleaseIndex`` is grown through the mode's sizes with a seeded history
of group-by counts (``benchmarks._disclosure_history`` over the populations of
``benchmarks._disclosure_population``). At each size the same fresh releases are checked
against it, one ``check`` call timed at a time, and never recorded, so every size times the
same work on a larger history. Untimed at every size, a planted pair proves the index still
answers: a release of everyone outside a three-person district must be caught subtracting
from the planted total, and a release no earlier one can difference with must draw no finding.

Disclosure rules: ``run_checks`` on results of a few sizes (``benchmarks._disclosure_rules``),
which does not depend on the history.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from time import perf_counter

from benchmarks._disclosure_history import (
    DERIVED_SHARE,
    OPAQUE_SHARE,
    OPERATORS,
    PLANTED,
    SCENARIOS,
    History,
    probes,
)
from benchmarks._disclosure_population import ISLET, MIN_CELL, islet_cells, populations
from benchmarks._disclosure_rules import rules_records
from benchmarks._report import Options, Record, check, measured, progress
from outbound_review.differencing import DifferencingFinding, GroupKey, ReleaseDescriptor, ReleaseIndex

ENGINE = "ReleaseIndex.check"
_MIN_CHECKS = 20
_TARGET_SIZE, _TARGET_BASE, _TARGET_GROWTH = 10_000, 1_000, 10.0


@dataclass(frozen=True)
class _Mode:
    sizes: tuple[int, ...]  # earlier releases; one index grown through them in order
    fresh: int  # fresh releases checked at every size
    budget_s: float  # timing at one size stops after this long, once _MIN_CHECKS have run
    rules: tuple[tuple[int, int], ...]  # (result rows, calls) for the disclosure rules


_MODES = {
    "smoke": _Mode((10, 50), 20, 10.0, ((50, 5),)),
    "quick": _Mode((100, 1_000, 10_000), 200, 35.0, ((50, 200), (500, 40))),
    "full": _Mode((100, 1_000, 10_000, 30_000), 200, 120.0, ((50, 400), (500, 100), (5_000, 20))),
}


def run(options: Options) -> list[Record]:
    """The differencing and disclosure-rule benchmarks at the sizes ``options.mode`` calls for."""
    mode = _MODES[options.mode]
    return _differencing_records(options.seed, mode) + rules_records(options.seed, mode.rules)


def check_attack(findings: Sequence[DifferencingFinding], expected: Mapping[GroupKey, int]) -> None:
    """Fail unless ``findings`` catch the attack on the planted release in exactly ``expected``'s
    cells, each with the number of people it isolates."""
    caught = {
        f.group_key: f.difference
        for f in findings
        if f.kind == "nested" and f.other_release_ids == (PLANTED,)
    }
    check(
        caught == dict(expected),
        f"the release of everyone outside {ISLET} should difference with {PLANTED} in cells "
        f"{dict(expected)}; the check found {caught}",
    )


def check_safe(findings: Sequence[DifferencingFinding]) -> None:
    """Fail if a release no earlier release can difference with drew a finding."""
    check(not findings, f"a safe release drew {len(findings)} finding(s): {findings[:3]}")


@dataclass
class _Timed:
    size: int
    seconds: list[float]
    findings: int


def _differencing_records(seed: int, mode: _Mode) -> list[Record]:
    pops = populations(seed)
    planted, attack, safe = probes(pops)
    expected = islet_cells(pops)
    history = History(seed, "earlier", pops)
    index = ReleaseIndex()
    index.add(planted)
    _grow(index, history, mode.sizes[0])
    # Fresh releases refine only releases present at every size, so each size checks the same ones.
    fresh = History(seed, "fresh", pops, parents=history.shapes).take(mode.fresh)
    records: list[Record] = []
    previous: _Timed | None = None
    for size in mode.sizes:
        _grow(index, history, size)
        check_attack(index.check(attack, MIN_CELL), expected)
        check_safe(index.check(safe, MIN_CELL))
        timed = _time_checks(index, fresh, mode.budget_s)
        records.append(_record(timed, previous, len(fresh), mode.budget_s, expected))
        previous = timed
    return records


def _grow(index: ReleaseIndex, history: History, size: int) -> None:
    start, first = perf_counter(), len(index)
    if size <= first:
        return
    for release in history.take(size - len(index)):
        index.add(release)
    elapsed = perf_counter() - start
    progress(f"differencing: {size:,} earlier releases ({size - first:,} drawn and added in {elapsed:.1f} s)")


def _time_checks(index: ReleaseIndex, fresh: list[ReleaseDescriptor], budget_s: float) -> _Timed:
    seconds: list[float] = []
    findings = 0
    for release in fresh:
        start = perf_counter()
        found = index.check(release, MIN_CELL)
        seconds.append(perf_counter() - start)
        findings += len(found)
        if len(seconds) >= _MIN_CHECKS and sum(seconds) > budget_s:
            break
    progress(f"differencing: {len(seconds)} checks at {len(index):,}, {sum(seconds):.1f} s")
    return _Timed(len(index), seconds, findings)


def _growth(timed: _Timed, previous: _Timed) -> float:
    """Median per-check time over the fresh releases timed at both sizes, this ÷ previous."""
    both = min(len(timed.seconds), len(previous.seconds))
    return statistics.median(timed.seconds[:both]) / statistics.median(previous.seconds[:both])


def _record(
    timed: _Timed, previous: _Timed | None, fresh: int, budget_s: float, expected: Mapping[GroupKey, int]
) -> Record:
    size, seconds = timed.size, timed.seconds
    mean_ms, worst_ms = statistics.mean(seconds) * 1000, max(seconds) * 1000
    ran = (
        f"{len(seconds)} fresh releases"
        if len(seconds) == fresh
        else f"the first {len(seconds)} of {fresh} fresh releases (timing stops after {budget_s:g} s)"
    )
    parts = [
        f"ReleaseIndex.check(new, min_cell={MIN_CELL}) for {ran}, one call timed at a time, against an "
        f"index of {size:,} earlier releases: seeded group-by counts over residents, social insurance, "
        f"their join and enterprises in {SCENARIOS} scenarios of {OPERATORS} operators, {DERIVED_SHARE:.0%} "
        f"refining an earlier release of the same operator, {OPAQUE_SHARE:.0%} of enterprise releases "
        "opaque. The fresh releases are the same at every size (new draws and refinements of the first "
        "size's releases) and are never recorded.",
        f"Mean {mean_ms:.2f} ms, slowest {worst_ms:.1f} ms; releases/s is 1 ÷ the median. "
        f"{timed.findings:,} findings over these checks: by construction only releases over residents "
        f"(home of the three-person {ISLET}) and opaque enterprise releases can draw any.",
    ]
    target = None
    if previous is not None:
        growth = _growth(timed, previous)
        parts.append(
            f"Growth: ×{growth:.1f} the median at {previous.size:,} for {size / previous.size:g}× the "
            "releases (medians over the fresh releases timed at both sizes)."
        )
        if size == _TARGET_SIZE and previous.size == _TARGET_BASE:
            met = growth <= _TARGET_GROWTH
            target = (
                "sub-linear in earlier releases: per-check time at 10k ≤ 10× that at 1k",
                lambda _: met,
            )
    isolated = sum(expected.values())
    parts.append(
        f"Checked at this size, untimed: everyone outside {ISLET} by education is caught subtracting "
        f"from the planted total by education ({isolated} people in {len(expected)} cells), and two "
        "social-insurance schemes by district, which nothing can difference with, draw no finding."
    )
    return measured("differencing check", size, ENGINE, seconds, ops=1, target=target, note=" ".join(parts))
