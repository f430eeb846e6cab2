"""The DP noise benchmark runs in smoke mode, and its noise check refuses noise of the wrong size."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from benchmarks import bench_noise
from benchmarks._report import Options
from benchmarks.bench_noise import EPSILON, SENSITIVITY, check_noise, discrete_laplace_variance
from deid.dp import add_noise, scale_for

SCALE = scale_for(SENSITIVITY, EPSILON)
VALUES = [137 + i % 50 for i in range(20_000)]


def test_smoke_run_times_both_sides_with_a_ratio(tmp_path: Path) -> None:
    records = bench_noise.run(Options(mode="smoke", seed=11, scratch=tmp_path))
    assert [r.engine for r in records] == [bench_noise.VECTORIZED, bench_noise.LOOP]
    for record in records:
        assert (record.name, record.size, record.runs) == ("DP noise", 1_000, 2)
        assert record.median_ms > 0 and record.p95_ms >= record.median_ms
        assert record.ops_per_s == pytest.approx(1_000 / (record.median_ms / 1000))
        assert record.note and record.target is None and record.met is None
    vectorized, loop = records
    assert vectorized.ratio is not None and vectorized.ratio > 0
    assert "Ratio" in (vectorized.note or "") and loop.ratio is None
    assert "every value" in (loop.note or "")


def test_variance_matches_the_discrete_laplace_distribution() -> None:
    t = math.exp(-1 / SCALE)
    # P(Z = k) = (1 − t) / (1 + t) · t^|k|; summed far enough that the tail is negligible.
    direct = sum(k * k * (1 - t) / (1 + t) * t ** abs(k) for k in range(-400, 401))
    assert discrete_laplace_variance(SCALE) == pytest.approx(direct, rel=1e-9)


def test_add_noise_passes_the_check() -> None:
    check_noise(VALUES, add_noise(VALUES, SENSITIVITY, EPSILON), SCALE, "add_noise")
    check_noise(VALUES[:1_000], add_noise(VALUES[:1_000], SENSITIVITY, EPSILON), SCALE, "add_noise")


@pytest.mark.parametrize("epsilon", [EPSILON / 2, EPSILON * 2])
@pytest.mark.parametrize("n", [1_000, 20_000])
def test_noise_of_the_wrong_scale_is_refused(epsilon: float, n: int) -> None:
    values = VALUES[:n]
    noisy = add_noise(values, SENSITIVITY, epsilon)
    with pytest.raises(AssertionError, match="variance"):
        check_noise(values, noisy, SCALE, "wrong scale")


def test_missing_or_biased_noise_is_refused() -> None:
    with pytest.raises(AssertionError, match="variance"):
        check_noise(VALUES, VALUES, SCALE, "no noise")
    shifted = [v + 1 for v in add_noise(VALUES, SENSITIVITY, EPSILON)]
    with pytest.raises(AssertionError, match="averages"):
        check_noise(VALUES, shifted, SCALE, "biased")
    with pytest.raises(AssertionError, match="noisy values"):
        check_noise(VALUES, VALUES[:-1], SCALE, "short")
