"""The synthetic populations behind the differencing benchmark's releases, as joint counts.

Each dataset (or joined pair) is held as a joint table of counts, one axis per column; a
release's cells are summed from it, so every count is exact and releases over the same data
agree with one another as real ones would.

Every joint cell holds either nobody or at least ``MIN_CELL`` people, so any population a
release, or a difference of releases, can describe holds 0 or ≥ ``MIN_CELL`` people: honest
releases never difference. The one exception is planted: the residents' district
``Islet`` has three inhabitants, so "everyone" minus "everyone outside Islet" isolates them.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from outbound_review.differencing import GroupKey, Predicate, ValueSet

MIN_CELL = 10
ISLET = "Islet"

_DISTRICTS = tuple(f"D{i:02d}" for i in range(12))
_GENDERS = ("F", "M")
_EDUCATION = ("primary", "secondary", "vocational", "bachelor", "postgraduate")
_SCHEMES = ("employee", "flexible", "rural", "retired")
_INDUSTRIES = ("farming", "manufacturing", "construction", "retail", "logistics", "it", "finance", "care")
_SIZES = ("micro", "small", "medium", "large")
_EMPTY_SHARE = 0.15


@dataclass(frozen=True)
class Column:
    """A column of a population: its values, and whether they are ordered (filtered by intervals)."""

    name: str
    values: tuple[str | int, ...]
    ordered: bool = False


@dataclass(frozen=True)
class Population:
    """A dataset (or join) as joint counts over its columns."""

    datasets: frozenset[str]
    columns: tuple[Column, ...]
    counts: np.ndarray
    weight: float  # the share of releases over it

    @cached_property
    def axis(self) -> dict[str, int]:
        """Each column's axis in ``counts``."""
        return {c.name: i for i, c in enumerate(self.columns)}

    def column(self, name: str) -> Column:
        """The column called ``name``."""
        return self.columns[self.axis[name]]

    def cells(self, filter: dict[str, Predicate], grouping: tuple[str, ...]) -> dict[GroupKey, int]:
        """The exact non-empty cells of ``filter`` grouped by ``grouping``, as a GROUP BY returns them."""
        picks = []
        for column in self.columns:
            predicate = filter.get(column.name)
            picks.append(
                np.arange(len(column.values)) if predicate is None else _positions(column, predicate)
            )
        selected = self.counts[np.ix_(*picks)]
        axes = [self.axis[name] for name in grouping]
        summed = selected.sum(axis=tuple(i for i in range(len(self.columns)) if i not in axes))
        # sum keeps the grouping axes in column order; put them in the grouping's order.
        summed = np.transpose(summed, np.argsort(np.argsort(axes))) if axes else summed
        cells: dict[GroupKey, int] = {}
        for where in zip(*np.nonzero(summed), strict=True) if axes else [()]:
            count = int(summed[where])
            if count:
                key = tuple(self.columns[a].values[picks[a][i]] for a, i in zip(axes, where, strict=True))
                cells[key] = count
        return cells


def _positions(column: Column, predicate: Predicate) -> np.ndarray:
    return np.array([i for i, v in enumerate(column.values) if _holds(v, predicate)], dtype=np.intp)


def _holds(value: str | int, predicate: Predicate) -> bool:
    if isinstance(predicate, ValueSet):
        return (value in predicate.values) != predicate.negated
    low, high = predicate.low, predicate.high
    above = low is None or value > low or (value == low and predicate.low_closed)  # type: ignore[operator]
    below = high is None or value < high or (value == high and predicate.high_closed)  # type: ignore[operator]
    return bool(above and below)


def populations(seed: int) -> tuple[Population, ...]:
    """The datasets releases are drawn over; residents hold the planted Islet."""
    rng = np.random.default_rng([seed, 7])
    district = Column("district", _DISTRICTS)
    gender, education = Column("gender", _GENDERS), Column("education", _EDUCATION)
    age, scheme = Column("age", tuple(range(18, 90)), ordered=True), Column("scheme", _SCHEMES)

    def joint(columns: tuple[Column, ...]) -> np.ndarray:
        shape = tuple(len(c.values) for c in columns)
        counts = rng.integers(MIN_CELL, 120, shape)
        counts[rng.random(shape) < _EMPTY_SHARE] = 0
        return counts

    resident_columns = (Column("district", (*_DISTRICTS, ISLET)), gender, education, age)
    residents = joint(resident_columns)
    islet = resident_columns[0].values.index(ISLET)
    residents[islet] = 0
    for g, e, a in ((0, 0, 40 - 18), (1, 1, 55 - 18), (0, 3, 67 - 18)):
        residents[islet, g, e, a] = 1
    insured_columns = (district, gender, scheme, Column("year", tuple(range(2015, 2026)), ordered=True))
    joined_columns = (district, gender, education, age, scheme)
    firm_columns = (
        district,
        Column("industry", _INDUSTRIES),
        Column("size", _SIZES),
        Column("founded", tuple(range(1990, 2026)), ordered=True),
    )
    return (
        Population(frozenset({"residents"}), resident_columns, residents, 0.35),
        Population(frozenset({"social_insurance"}), insured_columns, joint(insured_columns), 0.25),
        Population(frozenset({"residents", "social_insurance"}), joined_columns, joint(joined_columns), 0.2),
        Population(frozenset({"enterprises"}), firm_columns, joint(firm_columns), 0.2),
    )


def islet_cells(pops: tuple[Population, ...]) -> dict[GroupKey, int]:
    """How many Islet residents each education cell holds: the differences the attack must reveal."""
    return pops[0].cells({"district": ValueSet(frozenset({ISLET}))}, ("education",))
