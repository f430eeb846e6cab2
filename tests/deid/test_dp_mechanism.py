"""The noise itself: calibrated to its declared guarantee, exact integers, never per-value floats."""

from __future__ import annotations

import math
from collections import Counter

import pytest

from deid.dp import add_noise, partition_threshold, scale_for, to_fixed
from deid.errors import DeidError

DRAWS = 40_000


def test_empirical_privacy_loss_of_a_count_stays_within_epsilon() -> None:
    # Neighbouring datasets: the count with and without one person (sensitivity 1).
    epsilon = 0.5
    with_person = Counter(add_noise([100] * DRAWS, 1, epsilon))
    without = Counter(add_noise([99] * DRAWS, 1, epsilon))
    worst = 0.0
    for outcome in set(with_person) & set(without):
        # Only bins of ≥ 2,000 draws: there the log-ratio's sampling error (σ ≈ 0.03) is far
        # below the 0.15 allowed, so a wrong scale fails and a right one never does by chance.
        if with_person[outcome] >= 2000 and without[outcome] >= 2000:
            worst = max(worst, abs(math.log(with_person[outcome] / without[outcome])))
    assert worst <= epsilon + 0.15, f"observed privacy loss {worst:.3f} for ε={epsilon}"


def test_noise_scale_matches_the_declared_guarantee() -> None:
    sensitivity, epsilon = 4, 0.8
    scale = scale_for(sensitivity, epsilon)
    noise = [v - 1000 for v in add_noise([1000] * DRAWS, sensitivity, epsilon)]
    q = math.exp(-1 / scale)
    expected_variance = 2 * q / (1 - q) ** 2  # discrete Laplace
    observed = sum(n * n for n in noise) / len(noise)
    assert abs(observed / expected_variance - 1) < 0.1
    assert abs(sum(noise) / len(noise)) < 0.1 * scale


def test_noise_is_integer_and_drawn_fresh_per_value() -> None:
    values = add_noise([5] * 1000, 1, 1.0)
    assert all(isinstance(v, int) for v in values)
    assert len(set(values)) > 3


def test_sums_are_exact_in_fixed_point_whatever_the_order() -> None:
    # Float sums depend on order; the fixed-point integer sum the engine noises does not.
    values = [49_999.9999, 0.0001, 1e-4, 33_333.3333] * 250
    forward = sum(to_fixed(v) for v in values)
    backward = sum(to_fixed(v) for v in reversed(values))
    assert forward == backward
    assert isinstance(forward, int)


def test_threshold_bounds_the_chance_of_releasing_a_lonely_group() -> None:
    epsilon, delta, max_groups = 1.0, 1e-3, 2
    tau = partition_threshold(max_groups, epsilon, delta)
    released = sum(1 for v in add_noise([1] * DRAWS, max_groups, epsilon) if v >= tau)
    assert released / DRAWS <= delta / max_groups + 3 * math.sqrt(delta / DRAWS)


@pytest.mark.parametrize(
    ("call", "problem"),
    [
        (lambda: scale_for(1, 0), "positive finite"),
        (lambda: scale_for(1, float("nan")), "positive finite"),
        (lambda: scale_for(0, 1.0), "sensitivity"),
        (lambda: partition_threshold(1, 1.0, 0.0), "0 < δ < 1"),
        (lambda: add_noise([1], 1, -1.0), "positive finite"),
    ],
)
def test_bad_parameters_are_refused(call: object, problem: str) -> None:
    with pytest.raises(DeidError, match=problem):
        call()  # type: ignore[operator]
