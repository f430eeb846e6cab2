"""Differential-privacy mechanisms: exact integer noise from OpenDP, thresholds, guarantees.

Everything noised here is an integer — counts, and sums in fixed point — and the noise is
OpenDP's discrete Laplace, sampled exactly, one vectorized call per released column. No
floating-point noise is ever added to a floating-point value, so the attacks on naive
float Laplace (Mironov, 2012) do not apply. Privacy parameters come from the caller; this
module decides nothing about how much budget a query may use.

>>> scale_for(sensitivity=3, epsilon=0.5)
6.0
>>> partition_threshold(max_groups=1, epsilon=1.0, delta=1e-6) >= 14
True
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import opendp.prelude as dp

from deid.errors import DeidError

dp.enable_features("contrib")

FIXED_POINT = 1000
"""Sums are computed on values rounded to 1/1000 of a unit, as 64-bit integers."""


@dataclass(frozen=True)
class Guarantee:
    """What a released result promises, kept with it for review and audit."""

    mechanism: str
    epsilon: float
    delta: float
    privacy_unit: str
    max_rows: int
    max_groups: int
    bounds: dict[str, tuple[float, float]] = field(default_factory=dict)
    scales: dict[str, float] = field(default_factory=dict)
    threshold: int | None = None
    public_keys: bool = False
    suppressed_groups: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "mechanism": self.mechanism,
            "epsilon": self.epsilon,
            "delta": self.delta,
            "privacy_unit": self.privacy_unit,
            "max_rows": self.max_rows,
            "max_groups": self.max_groups,
            "bounds": {k: list(v) for k, v in self.bounds.items()},
            "scales": self.scales,
            "threshold": self.threshold,
            "public_keys": self.public_keys,
            "suppressed_groups": self.suppressed_groups,
        }


def scale_for(sensitivity: int, epsilon: float) -> float:
    """The discrete Laplace scale that makes an L1-``sensitivity`` release ε-DP."""
    _check_epsilon(epsilon)
    if sensitivity < 1:
        raise DeidError(f"sensitivity must be a positive integer, not {sensitivity}")
    return sensitivity / epsilon


def add_noise(values: Sequence[int], sensitivity: int, epsilon: float) -> list[int]:
    """``values`` plus discrete Laplace noise, in one OpenDP call, for L1 ``sensitivity`` and ``epsilon``.

    OpenDP's own privacy map is asked what the measurement costs, so a wrong scale
    cannot slip through: it must not exceed ``epsilon``.
    """
    if not values:
        return []
    scale = scale_for(sensitivity, epsilon)
    measurement = _measurement(scale)
    spent = measurement.map(sensitivity)
    if spent > epsilon * (1 + 1e-9):
        raise DeidError(f"the noise would cost ε={spent}, more than the ε={epsilon} allotted")
    return list(measurement([int(v) for v in values]))


def partition_threshold(max_groups: int, epsilon: float, delta: float) -> int:
    """τ for releasing groups whose keys are not public.

    A group is released only if its noisy count of distinct privacy units (discrete
    Laplace, scale max_groups/ε) reaches τ. A unit touches at most ``max_groups`` groups;
    each group that exists only because of that unit is released with probability below
    δ/max_groups, since P(Z ≥ k) < exp(−k/scale) for discrete Laplace noise Z. So the
    whole release is (ε, δ)-DP.
    """
    _check_epsilon(epsilon)
    if not 0 < delta < 1:
        raise DeidError(f"releasing groups with non-public keys needs 0 < δ < 1, not {delta}")
    scale = scale_for(max_groups, epsilon)
    return 1 + math.ceil(scale * math.log(max_groups / delta))


def to_fixed(value: float) -> int:
    """A value in the fixed-point units sums are noised in."""
    return round(value * FIXED_POINT)


@lru_cache(maxsize=256)
def _measurement(scale: float) -> Any:
    domain = dp.vector_domain(dp.atom_domain(T="i64"))
    return dp.m.make_laplace(domain, dp.l1_distance(T="i64"), scale=scale)


def _check_epsilon(epsilon: float) -> None:
    if not (isinstance(epsilon, int | float) and math.isfinite(epsilon) and epsilon > 0):
        raise DeidError(f"ε must be a positive finite number, not {epsilon!r}")
