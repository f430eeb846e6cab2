"""Disclosure-control benchmarks: the differencing check per release as earlier releases grow,
and the automatic disclosure rules per result.

Differencing: at each of the mode's sizes a ``ReleaseIndex`` records the first releases of
one seeded history of group-by counts (``benchmarks._disclosure_history`` over the
populations of ``benchmarks._disclosure_population``). The same fresh releases are checked
at every size, one ``check`` call timed at a time, and never recorded, so every size times
the same work on a larger history. Growth is paired: each fresh release is checked on this
size's index and on the previous size's in turn, the order alternating, and the growth is
the median of those per-release ratios, so a machine slowing down between sizes does not
read as growth. Untimed at every size, a planted pair proves the index still answers: a
release of everyone outside a three-person district must be caught subtracting from the
planted total, and a release no earlier one can difference with must draw no finding.

Disclosure rules: ``run_checks`` on results of a few sizes (``benchmarks._disclosure_rules``),
which does not depend on the history.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
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
from benchmarks._report import Options, Record, check, measured, median_interval, progress
from outbound_review.differencing import DifferencingFinding, GroupKey, ReleaseDescriptor, ReleaseIndex

ENGINE = "ReleaseIndex.check"
_MIN_CHECKS = 20
_TARGET_SIZE, _TARGET_BASE = 10_000, 1_000
_TARGET = "sub-linear in earlier releases: per-check time at 10k ≤ 10× that at 1k"


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
    """One size's check times, and where a smaller index was timed in turn, its size and times."""

    size: int
    seconds: list[float]
    findings: int
    previous: tuple[int, list[float]] | None = None


def _differencing_records(seed: int, mode: _Mode) -> list[Record]:
    pops = populations(seed)
    planted, attack, safe = probes(pops)
    expected = islet_cells(pops)
    history = History(seed, "earlier", pops)
    earlier = history.take(mode.sizes[0] - 1)
    # Fresh releases refine only releases present at every size, so each size checks the same ones.
    fresh = History(seed, "fresh", pops, parents=history.shapes).take(mode.fresh)
    earlier += history.take(mode.sizes[-1] - mode.sizes[0])
    records: list[Record] = []
    previous: tuple[int, ReleaseIndex] | None = None
    for size in mode.sizes:
        index = _built([planted, *earlier[: size - 1]])
        check_attack(index.check(attack, MIN_CELL), expected)
        check_safe(index.check(safe, MIN_CELL))
        timed = _time_checks(index, fresh, mode.budget_s, previous)
        records.append(_record(timed, len(fresh), mode.budget_s, expected))
        previous = size, index
    return records


def _built(releases: list[ReleaseDescriptor]) -> ReleaseIndex:
    """An index of ``releases``, recorded in order; each size gets its own, so two can be timed in turn."""
    start = perf_counter()
    index = ReleaseIndex()
    for release in releases:
        index.add(release)
    elapsed = perf_counter() - start
    progress(f"differencing: an index of {len(index):,} earlier releases built in {elapsed:.1f} s")
    return index


def _time_checks(
    index: ReleaseIndex,
    fresh: list[ReleaseDescriptor],
    budget_s: float,
    previous: tuple[int, ReleaseIndex] | None,
) -> _Timed:
    """Each fresh release checked on ``index`` and, the order alternating, on the previous size's."""
    seconds: list[float] = []
    before: list[float] = []
    findings = 0
    for n, release in enumerate(fresh):
        if previous is not None and n % 2 == 0:
            before.append(_check(previous[1], release)[0])
        took, found = _check(index, release)
        if previous is not None and n % 2:
            before.append(_check(previous[1], release)[0])
        seconds.append(took)
        findings += len(found)
        if len(seconds) >= _MIN_CHECKS and sum(seconds) + sum(before) > budget_s:
            break
    progress(f"differencing: {len(seconds)} checks at {len(index):,}, {sum(seconds):.1f} s")
    return _Timed(len(index), seconds, findings, None if previous is None else (previous[0], before))


def _check(index: ReleaseIndex, release: ReleaseDescriptor) -> tuple[float, list[DifferencingFinding]]:
    start = perf_counter()
    found = index.check(release, MIN_CELL)
    return perf_counter() - start, found


def _record(timed: _Timed, fresh: int, budget_s: float, expected: Mapping[GroupKey, int]) -> Record:
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
    growth: float | None = None
    verdict: bool | None = None
    judged = False
    if timed.previous is not None:
        base, before = timed.previous
        growth, words, verdict = _growth(timed.seconds, before, size / base)
        parts.append(
            f"Each check ran in turn with the same release's check on an index of the first "
            f"{base:,} of these releases, the order alternating. {words}"
        )
        judged = size == _TARGET_SIZE and base == _TARGET_BASE
        if judged and verdict is None:
            parts.append(f"Target undecided: the interval lies on both sides of ×{size / base:g}.")
    isolated = sum(expected.values())
    parts.append(
        f"Checked at this size, untimed: everyone outside {ISLET} by education is caught subtracting "
        f"from the planted total by education ({isolated} people in {len(expected)} cells), and two "
        "social-insurance schemes by district, which nothing can difference with, draw no finding."
    )
    record = measured("differencing check", size, ENGINE, seconds, ops=1, ratio=growth, note=" ".join(parts))
    return replace(record, target=_TARGET, met=verdict) if judged else record


def _growth(seconds: list[float], previous: list[float], factor: float) -> tuple[float, str, bool | None]:
    """The median per-release growth, what to say of it, and whether it is within ``factor``:
    decided only when the median's whole interval lies on one side of it."""
    ratios = sorted(x / y for x, y in zip(seconds, previous, strict=True))
    (low, high), confidence = median_interval(len(ratios))
    growth = statistics.median(ratios)
    met = True if ratios[high] <= factor else False if ratios[low] > factor else None
    words = (
        f"Growth: ×{growth:.1f} for {factor:g}× the releases, the median over the releases of this "
        f"check's time ÷ that one's (its {confidence:.0%} interval ×{ratios[low]:.1f} to "
        f"×{ratios[high]:.1f})."
    )
    return growth, words, met
