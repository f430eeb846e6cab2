"""A seeded history of released aggregates for the differencing benchmark, and its probes.

Releases are drawn over the populations of ``benchmarks._disclosure_population``, whose
joint counts give every cell exactly. A release is a scope (scenario and operator), a filter
(value sets on categorical columns, intervals on ordered ones) and a grouping. About four in
ten are derived from an earlier one of the same scope and data (a value dropped or added, a
bound moved, a grouping column added or removed, a filter added), as analysts refine their
questions; the rest are drawn afresh. Both nest and overlap often, so the index has real
work to do.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace

from benchmarks._disclosure_population import ISLET, Column, Population
from outbound_review.differencing import Interval, Predicate, ReleaseDescriptor, ValueSet

PROBE_SCENARIO, PROBE_OPERATOR = "sc00", "op0"
PLANTED = "planted-total"
SCENARIOS, OPERATORS = 24, 8
DERIVED_SHARE = 0.4
OPAQUE_SHARE = 0.25  # of enterprise releases: programs whose population cannot be described


@dataclass(frozen=True)
class Shape:
    """A release before its counts: who, over what, which filter and grouping."""

    population: Population
    scenario: str
    operator: str
    filter: dict[str, Predicate]
    grouping: tuple[str, ...]
    opaque: bool = False

    def release(self, release_id: str) -> ReleaseDescriptor:
        """The release's descriptor, its cells counted exactly from the population."""
        cells = self.population.cells(self.filter, self.grouping)
        return ReleaseDescriptor.create(
            release_id,
            self.scenario,
            self.operator,
            self.population.datasets,
            cells,
            filter={} if self.opaque else self.filter,
            grouping=self.grouping,
            opaque=self.opaque,
        )


class History:
    """Releases drawn one after another from a seeded generator; derived ones refine earlier ones.

    With ``parents`` the generator derives only from those and remembers nothing it draws:
    that is how fresh releases are made, the same ones whatever the history has grown to.
    """

    def __init__(
        self, seed: int, stream: str, pops: tuple[Population, ...], parents: list[Shape] | None = None
    ) -> None:
        self._rng = random.Random(f"{seed}/{stream}")
        self._pops, self._stream = pops, stream
        self._frozen = parents is not None
        self.shapes: list[Shape] = list(parents or [])
        self._serial = 0

    def take(self, n: int) -> list[ReleaseDescriptor]:
        """The next ``n`` releases."""
        return [self._next() for _ in range(n)]

    def _next(self) -> ReleaseDescriptor:
        rng = self._rng
        if self.shapes and rng.random() < DERIVED_SHARE:
            shape = _derive(rng, rng.choice(self.shapes))
        else:
            shape = _fresh(rng, self._pops)
        if not self._frozen:
            self.shapes.append(shape)
        self._serial += 1
        return shape.release(f"{self._stream}-{self._serial:06d}")


def _fresh(rng: random.Random, pops: tuple[Population, ...]) -> Shape:
    pop = rng.choices(pops, weights=[p.weight for p in pops])[0]
    scenario_number = rng.randrange(SCENARIOS)
    # Most scenarios are one operator's; now and then a second operator works in it too.
    owner = scenario_number % OPERATORS if rng.random() < 0.9 else rng.randrange(OPERATORS)
    names = [c.name for c in pop.columns]
    grouping = tuple(
        rng.sample([c.name for c in pop.columns if not c.ordered], rng.choices((0, 1, 2), (2, 5, 3))[0])
    )
    free = [n for n in names if n not in grouping]
    filter = {n: _predicate(rng, pop.column(n)) for n in rng.sample(free, min(len(free), rng.randrange(3)))}
    opaque = "enterprises" in pop.datasets and rng.random() < OPAQUE_SHARE
    return Shape(pop, f"sc{scenario_number:02d}", f"op{owner}", filter, grouping, opaque)


def _predicate(rng: random.Random, column: Column) -> Predicate:
    values = column.values
    if column.ordered:
        low, high = sorted(rng.sample(range(len(values)), 2))
        side = rng.random()
        if side < 0.25:
            return Interval(low=values[low])
        if side < 0.4:
            return Interval(high=values[high], high_closed=rng.random() < 0.5)
        return Interval(values[low], values[high])
    if rng.random() < 0.3:
        return ValueSet(frozenset(rng.sample(values, rng.randint(1, 2))), negated=True)
    return ValueSet(frozenset(rng.sample(values, rng.randint(1, len(values) - 1))))


def _derive(rng: random.Random, parent: Shape) -> Shape:
    """A refinement of ``parent``: the kinds of follow-up question that nest with it."""
    pop, filter, grouping = parent.population, dict(parent.filter), parent.grouping
    move = rng.randrange(4)
    if move == 0 and filter:
        name = rng.choice(sorted(filter))
        filter[name] = _nudge(rng, pop.column(name), filter[name])
    elif move == 1:
        spare = [
            c.name for c in pop.columns if not c.ordered and c.name not in grouping and c.name not in filter
        ]
        if spare and len(grouping) < 3:
            grouping = (*grouping, rng.choice(spare))
    elif move == 2 and grouping:
        dropped = rng.choice(grouping)
        grouping = tuple(g for g in grouping if g != dropped)
    else:
        spare = [c.name for c in pop.columns if c.name not in grouping and c.name not in filter]
        if spare:
            name = rng.choice(spare)
            filter[name] = _predicate(rng, pop.column(name))
    scenario = parent.scenario if rng.random() < 0.8 else f"sc{rng.randrange(SCENARIOS):02d}"
    return replace(parent, scenario=scenario, filter=filter, grouping=grouping)


def _nudge(rng: random.Random, column: Column, predicate: Predicate) -> Predicate:
    """The predicate with one value more or less, or one bound moved by a step or three."""
    values = column.values
    if isinstance(predicate, ValueSet):
        inside = sorted(predicate.values, key=str)
        outside = [v for v in values if v not in predicate.values]
        if len(inside) > 1 and (not outside or rng.random() < 0.5):
            return replace(predicate, values=predicate.values - {rng.choice(inside)})
        if outside:
            return replace(predicate, values=predicate.values | {rng.choice(outside)})
        return predicate
    step = rng.choice((-3, -1, 1, 3))
    if predicate.low is not None and (predicate.high is None or rng.random() < 0.5):
        at = min(max(values.index(predicate.low) + step, 0), len(values) - 1)
        return replace(predicate, low=values[at])
    if predicate.high is not None:
        at = min(max(values.index(predicate.high) + step, 0), len(values) - 1)
        return replace(predicate, high=values[at])
    return predicate


def probes(pops: tuple[Population, ...]) -> tuple[ReleaseDescriptor, ReleaseDescriptor, ReleaseDescriptor]:
    """The planted earlier release, a fresh release that differences with it, and a safe one.

    The planted one counts all residents by education; the attack counts those outside
    Islet by education, so each education cell with an Islet inhabitant differs by 1. The
    safe one counts social-insurance members of two schemes by district: every population
    it nests with is a union of joint cells of 0 or ≥ ``MIN_CELL`` people, and no opaque
    release reads social insurance, so no earlier release can difference with it.
    """
    residents, insured = pops[0], pops[1]
    scope = PROBE_SCENARIO, PROBE_OPERATOR
    planted = Shape(residents, *scope, {}, ("education",)).release(PLANTED)
    outside: dict[str, Predicate] = {"district": ValueSet(frozenset({ISLET}), negated=True)}
    attack = Shape(residents, *scope, outside, ("education",)).release("probe-attack")
    schemes: dict[str, Predicate] = {"scheme": ValueSet(frozenset({"employee", "flexible"}))}
    safe = Shape(insured, *scope, schemes, ("district",)).release("probe-safe")
    return planted, attack, safe
