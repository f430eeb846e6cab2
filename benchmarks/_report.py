"""What every benchmark module shares: run options, records, paired timing and checks."""

from __future__ import annotations

import math
import statistics
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

CONFIDENCE = 0.9
"""A target is judged met or missed only if the median's interval at this confidence lies
wholly on one side of it; otherwise the machine's spread leaves it undecided."""


@dataclass(frozen=True)
class Options:
    """One run of the suite: how large (``smoke``, ``quick`` or ``full``), the seed, where scratch goes."""

    mode: str
    seed: int
    scratch: Path
    spark: bool = False
    """Add the query benchmark's Spark column in any mode (the full mode always has it)."""


@dataclass(frozen=True)
class Record:
    """One measured line of the results: times in milliseconds per operation."""

    name: str
    size: int
    engine: str
    median_ms: float
    p95_ms: float
    runs: int
    ratio: float | None = None
    ops_per_s: float | None = None
    target: str | None = None
    met: bool | None = None
    note: str | None = None


@dataclass(frozen=True)
class Paired:
    """Seconds measured for A and B in alternating rounds; ``ratios`` are A ÷ B per round."""

    a: list[float]
    b: list[float]

    @property
    def ratios(self) -> list[float]:
        """A ÷ B for each round, in the order the rounds ran."""
        return [x / y for x, y in zip(self.a, self.b, strict=True)]

    @property
    def ratio(self) -> float:
        """The median of the per-round ratios: robust to a round the machine was busy in."""
        return statistics.median(self.ratios)


def paired(a: Callable[[], float], b: Callable[[], float], rounds: int, warmup: int = 0) -> Paired:
    """Run A and B alternately; each call does one round of work and returns the seconds it measured.

    The order flips every round (AB, BA, AB …) so neither side always runs right after the
    other has warmed a cache or left the disk busy. Warmup rounds run both and are dropped.
    """
    for _ in range(warmup):
        a()
        b()
    xs: list[float] = []
    ys: list[float] = []
    for i in range(rounds):
        if i % 2:
            y, x = b(), a()
        else:
            x, y = a(), b()
        xs.append(x)
        ys.append(y)
    return Paired(xs, ys)


def median_interval(n: int) -> tuple[tuple[int, int], float]:
    """Positions (in sorted order) of a distribution-free interval for the median of ``n``
    values, the narrowest with confidence ≥ ``CONFIDENCE`` — or, when ``n`` is too small for
    that, the whole range — and its confidence.

    >>> median_interval(12)
    ((2, 9), 0.961...)
    >>> median_interval(3)
    ((0, 2), 0.75)
    """
    best = (0, n - 1), 1 - 2 * 0.5**n
    for k in range(1, n // 2):
        # The median lies outside [x(k), x(n−1−k)] only if k or fewer values fall on one side.
        confidence = 1 - 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2**n
        if confidence < CONFIDENCE:
            break
        best = (k, n - 1 - k), confidence
    return best


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile: always a value that was actually observed."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def measured(
    name: str,
    size: int,
    engine: str,
    seconds: Sequence[float],
    *,
    ops: int | None = None,
    ratio: float | None = None,
    target: tuple[str, Callable[[Record], bool]] | None = None,
    note: str | None = None,
) -> Record:
    """A record from per-run seconds; ``ops`` operations per run give ops_per_s, ``target`` its check."""
    median = statistics.median(seconds)
    record = Record(
        name=name,
        size=size,
        engine=engine,
        median_ms=median * 1000,
        p95_ms=percentile(seconds, 95) * 1000,
        runs=len(seconds),
        ratio=ratio,
        ops_per_s=ops / median if ops is not None else None,
        note=note,
    )
    if target is None:
        return record
    text, check = target
    return replace(record, target=text, met=check(record))


def skipped(name: str, size: int, engine: str, note: str) -> Record:
    """A record for a measurement that could not be made, saying why in its note."""
    return Record(name=name, size=size, engine=engine, median_ms=0.0, p95_ms=0.0, runs=0, note=note)


def check(ok: bool, message: str) -> None:
    """Fail the run when a benchmark's answer is wrong; unlike ``assert`` it survives ``python -O``."""
    if not ok:
        raise AssertionError(message)


def progress(message: str) -> None:
    """Tell whoever runs the suite what is happening; results go to files, this goes to stderr."""
    print(message, file=sys.stderr, flush=True)
