"""DP noise benchmark: values per second of ``deid.dp.add_noise`` against a per-value loop.

``add_noise`` adds OpenDP's exact discrete Laplace noise to a whole column in one call. The
baseline is what a caller without it would write: the same mechanism (OpenDP's
``make_laplace`` on a single i64, same scale, same privacy map) called once per value from
a Python loop. The two alternate round by round (``benchmarks._report.paired``). At large
sizes the loop is timed on a slice of the values each round and extrapolated linearly, since
timing it on every value would take minutes while its cost per value does not change.

Every run's output is checked: the noise (noisy − true) must average near zero and its
variance must match the discrete Laplace variance of the declared scale, so a path that
adds no noise, or noise of the wrong size, fails the run.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from time import perf_counter
from typing import Any, cast

import numpy as np
import opendp.prelude as dp

from benchmarks._report import Options, Record, check, measured, paired, progress
from deid.dp import add_noise, scale_for

SENSITIVITY = 1
EPSILON = 0.5
_MAX_COUNT = 5_000
_EXACT_SIZE = 10_000
"""From this many values on, the variance must fall within the tighter bounds."""
_MEAN_ERRORS = 6.0
"""How many standard errors the mean noise may stray from 0: a correct sampler strays further
fewer than once in 10⁸ runs, so a failure means the noise is wrong, not unlucky."""

VECTORIZED = "deid.dp.add_noise (one OpenDP call)"
LOOP = "OpenDP per value, Python loop"


@dataclass(frozen=True)
class _Size:
    values: int
    rounds: int
    sample: int | None  # values the loop is timed on per round; None: every value


# Round counts are even: the pair order flips every round, so each side runs first equally often.
_SIZES = {
    "smoke": (_Size(1_000, 2, None),),
    "quick": (_Size(10_000, 2, None), _Size(100_000, 2, 2_000), _Size(1_000_000, 2, 2_000)),
    "full": (
        _Size(10_000, 10, None),
        _Size(100_000, 8, 10_000),
        _Size(1_000_000, 4, 10_000),
        _Size(10_000_000, 2, 10_000),
    ),
}


def run(options: Options) -> list[Record]:
    """The noise benchmark at every size ``options.mode`` calls for."""
    scale = scale_for(SENSITIVITY, EPSILON)
    loop = _Loop(scale)
    add_noise([0] * 16, SENSITIVITY, EPSILON)  # builds and caches add_noise's measurement, untimed
    records: list[Record] = []
    for size in _SIZES[options.mode]:
        records += _measure(options, size, scale, loop)
    return records


def discrete_laplace_variance(scale: float) -> float:
    """The variance of discrete Laplace noise of ``scale``: 2·e^(−1/s) / (1 − e^(−1/s))²."""
    t = math.exp(-1.0 / scale)
    return 2.0 * t / (1.0 - t) ** 2


def check_noise(true: Sequence[int], noisy: Sequence[int], scale: float, what: str) -> None:
    """Fail unless ``noisy`` is ``true`` plus zero-mean noise whose variance fits ``scale``.

    The variance must lie within 0.7–1.4× the declared one from 10,000 values on, and
    within 0.5–2× below that: even at 1,000 values the sample variance of a correct
    sampler misses these bounds far less often than once in 10⁶ runs, while noise of
    twice or half the scale (variance about 4× or ¼×) always misses them.
    """
    check(len(noisy) == len(true), f"{what}: {len(noisy)} noisy values for {len(true)} true ones")
    check(len(true) >= 2, f"{what}: too few values to judge the noise")
    noise = np.asarray(noisy, dtype=np.int64) - np.asarray(true, dtype=np.int64)
    expected = discrete_laplace_variance(scale)
    mean, variance = float(noise.mean()), float(noise.var())
    limit = _MEAN_ERRORS * math.sqrt(expected / len(noise))
    check(abs(mean) <= limit, f"{what}: the noise averages {mean:.4f}, beyond ±{limit:.4f}")
    low, high = (0.7, 1.4) if len(noise) >= _EXACT_SIZE else (0.5, 2.0)
    check(
        low * expected <= variance <= high * expected,
        f"{what}: noise variance {variance:.3f} is outside {low}–{high}× the {expected:.3f} "
        f"of discrete Laplace noise at scale {scale:g}",
    )


class _Loop:
    """The baseline: OpenDP's discrete Laplace on one i64, called once per value."""

    def __init__(self, scale: float) -> None:
        dp.enable_features("contrib")
        # OpenDP's typing is partial: its measurements are Any at this boundary, as in deid.dp.
        self._measurement: Any = cast(
            Any, dp.m.make_laplace(dp.atom_domain(T="i64"), dp.absolute_distance(T="i64"), scale=scale)
        )
        spent = float(self._measurement.map(SENSITIVITY))
        # Equal privacy on both sides, or the comparison would be between different releases.
        check(spent <= EPSILON * (1 + 1e-9), f"the per-value baseline costs ε={spent}, not {EPSILON}")

    def noise(self, values: Sequence[int]) -> tuple[float, list[int]]:
        """Seconds to noise ``values`` one call at a time, and the noisy values."""
        measurement = self._measurement
        start = perf_counter()
        noisy = [measurement(v) for v in values]
        return perf_counter() - start, noisy


class _Sides:
    """Both sides of one size: each call is one round, checked, returning the seconds to count."""

    def __init__(self, values: list[int], size: _Size, scale: float, loop: _Loop, seed: str) -> None:
        self.values, self.size, self.scale, self.loop = values, size, scale, loop
        self._rng = random.Random(seed)

    def vectorized(self) -> float:
        """One round of add_noise over every value; seconds, the noise checked afterwards."""
        start = perf_counter()
        noisy = add_noise(self.values, SENSITIVITY, EPSILON)
        elapsed = perf_counter() - start
        check_noise(self.values, noisy, self.scale, VECTORIZED)
        return elapsed

    def per_value(self) -> float:
        """One round of the loop; seconds for every value, measured or extrapolated from a slice."""
        sample = self.size.sample
        if sample is None:
            seconds, noisy = self.loop.noise(self.values)
            check_noise(self.values, noisy, self.scale, LOOP)
            return seconds
        # A different slice each round, so no round's cost depends on one lucky run of values.
        start = self._rng.randrange(len(self.values) - sample + 1)
        part = self.values[start : start + sample]
        seconds, noisy = self.loop.noise(part)
        check_noise(part, noisy, self.scale, LOOP)
        return seconds * len(self.values) / sample


def _measure(options: Options, size: _Size, scale: float, loop: _Loop) -> list[Record]:
    n = size.values
    rng = np.random.default_rng([options.seed, n])
    values: list[int] = rng.integers(0, _MAX_COUNT, n).tolist()
    sides = _Sides(values, size, scale, loop, f"{options.seed}/noise/{n}")
    progress(f"noise: {n:,} values, {size.rounds} paired rounds")
    result = paired(sides.vectorized, sides.per_value, size.rounds)
    variance = discrete_laplace_variance(scale)
    how = (
        f"{n:,} counts (0–{_MAX_COUNT - 1:,}), L1 sensitivity {SENSITIVITY}, ε {EPSILON:g}: discrete "
        f"Laplace at scale {scale:g} (variance {variance:.2f})"
    )
    bounds = "0.7–1.4×" if n >= _EXACT_SIZE else "0.5–2×"
    vectorized_note = (
        f"add_noise on {how}, one OpenDP call per run; converting the Python list to OpenDP's vector "
        f"and back is included. Each run's noise is checked: mean within {_MEAN_ERRORS:g} standard "
        f"errors of 0, variance {bounds} the declared one. Ratio: time ÷ the per-value loop's "
        f"(extrapolated where its note says), the median over {size.rounds} alternating rounds."
    )
    if size.sample is None:
        timed = "timed on every value, its noise checked the same way"
    else:
        timed = (
            f"timed on a random slice of {size.sample:,} values per round (its noise checked the same "
            f"way, variance within 0.5–2× at that size) and extrapolated linearly to {n:,} values "
            f"(seconds × {n // size.sample:,})"
        )
    loop_note = (
        "baseline: OpenDP make_laplace on one i64 at the same scale and privacy cost, called once per "
        f"value in a Python list comprehension; {timed}."
    )
    return [
        measured("DP noise", n, VECTORIZED, result.a, ops=n, ratio=result.ratio, note=vectorized_note),
        measured("DP noise", n, LOOP, result.b, ops=n, note=loop_note),
    ]
