"""The indexed differencing check finds exactly what trying every pair of releases finds.

``_Reference`` below is the check as it was before the index kept sorted sums: every earlier
release containing the new one paired with every release disjoint from it, every pair of
releases inside it tried. Random histories (nested and disjoint filters, value sets and
intervals, values that do not compare, overlapping groupings, several scopes, opaque
releases) must give the same findings in the same order, as must the benchmark's history.
"""

from __future__ import annotations

import bisect
import itertools
import tempfile
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from benchmarks._disclosure_history import History, probes
from benchmarks._disclosure_population import MIN_CELL, islet_cells, populations
from benchmarks.bench_disclosure import check_attack, check_safe
from outbound_review._difference_index import disjoint, implies, inside_sums, unique
from outbound_review.differencing import (
    RULE_ID,
    DifferencingFinding,
    GroupKey,
    Interval,
    Predicate,
    ReleaseDescriptor,
    ReleaseIndex,
    Value,
    ValueSet,
    _shortfalls,
)

# The reference: the check that tries every pair, kept verbatim apart from names; a finding is
# worded by the module's own _shortfalls and releases are deduplicated by its unique, so only the
# search is compared.

Scope = tuple[str, str]


def _ref_inside_sums(outer: ReleaseDescriptor, inner: ReleaseDescriptor) -> dict[GroupKey, int]:
    grouped = set(outer.grouping)
    filtered = [(c, q) for c, q in outer.filter if c not in grouped]
    inner_filter = dict(inner.filter)
    if any(
        c not in inner.grouping and not (c in inner_filter and implies(inner_filter[c], q))
        for c, q in filtered
    ):
        return {}
    sums: dict[GroupKey, int] = {}
    for key, count in inner.cells:
        preds = inner.cell_predicates(key)
        pinned = [preds.get(c) for c in outer.grouping]
        if not all(isinstance(p, ValueSet) and not p.negated and len(p.values) == 1 for p in pinned):
            continue
        okey = tuple(next(iter(p.values)) for p in pinned if isinstance(p, ValueSet))
        if okey in outer.counts and all(c in preds and implies(preds[c], q) for c, q in filtered):
            sums[okey] = sums.get(okey, 0) + count
    return sums


def _ref_populations_disjoint(a: ReleaseDescriptor, b: ReleaseDescriptor) -> bool:
    other = dict(b.filter)
    return any(c in other and disjoint(p, other[c]) for c, p in a.filter)


def _ref_counts_close(a: ReleaseDescriptor, b: ReleaseDescriptor, min_cell: int) -> bool:
    ordered = sorted(b.counts.values())
    for x in a.counts.values():
        lo = bisect.bisect_right(ordered, x - min_cell)
        hi = bisect.bisect_left(ordered, x + min_cell)
        if any(y != x for y in ordered[lo:hi]):
            return True
    return False


def _ref_scopes(r: ReleaseDescriptor) -> tuple[Scope, Scope]:
    return ("scenario", r.scenario), ("operator", r.operator)


class _Reference:
    def __init__(self) -> None:
        self._releases: dict[str, ReleaseDescriptor] = {}
        self._nesting: defaultdict[
            tuple[Scope, frozenset[str]], defaultdict[frozenset[str], list[ReleaseDescriptor]]
        ] = defaultdict(lambda: defaultdict(list))
        self._by_dataset: defaultdict[tuple[Scope, str], list[ReleaseDescriptor]] = defaultdict(list)
        self._opaque_by_dataset: defaultdict[tuple[Scope, str], list[ReleaseDescriptor]] = defaultdict(list)

    def add(self, release: ReleaseDescriptor) -> None:
        self._releases[release.release_id] = release
        for scope in _ref_scopes(release):
            for ds in release.datasets:
                self._by_dataset[scope, ds].append(release)
                if release.opaque:
                    self._opaque_by_dataset[scope, ds].append(release)
            if not release.opaque:
                self._nesting[scope, release.datasets][release.columns].append(release)

    def _nestable(
        self, r: ReleaseDescriptor, new: ReleaseDescriptor, *, inside: bool | None
    ) -> list[ReleaseDescriptor]:
        groups = [
            rels
            for scope in _ref_scopes(new)
            for cols, rels in self._nesting.get((scope, r.datasets), {}).items()
            if inside is None or (cols >= r.columns if inside else cols <= r.columns)
        ]
        return [e for e in unique(groups, new) if e.release_id != r.release_id]

    def check(self, new: ReleaseDescriptor, min_cell: int) -> list[DifferencingFinding]:
        if new.opaque:
            return self._check_opaque(new, self._same_datasets(new, self._by_dataset), min_cell)
        findings = self._check_opaque(new, self._same_datasets(new, self._opaque_by_dataset), min_cell)
        disjoint = [b for b in self._nestable(new, new, inside=None) if _ref_populations_disjoint(new, b)]
        for outer in self._nestable(new, new, inside=False):
            sums = _ref_inside_sums(outer, new)
            if sums:
                findings += _shortfalls(outer, new, [(new, sums)], min_cell)
                partners = [
                    (b, _ref_inside_sums(outer, b))
                    for b in disjoint
                    if b.release_id != outer.release_id and b.columns >= outer.columns
                ]
                findings += _ref_combined(outer, new, [(new, sums)], partners, min_cell)
        inners = [(b, _ref_inside_sums(new, b)) for b in self._nestable(new, new, inside=True)]
        inners = [(b, s) for b, s in inners if s]
        for b, sums in inners:
            findings += _shortfalls(new, new, [(b, sums)], min_cell)
        findings += _ref_combined(new, new, inners, inners, min_cell)
        return findings

    def _same_datasets(
        self, new: ReleaseDescriptor, table: dict[tuple[Scope, str], list[ReleaseDescriptor]]
    ) -> list[ReleaseDescriptor]:
        return list(unique((table.get((s, ds), []) for s in _ref_scopes(new) for ds in new.datasets), new))

    @staticmethod
    def _check_opaque(
        new: ReleaseDescriptor, others: Iterable[ReleaseDescriptor], min_cell: int
    ) -> list[DifferencingFinding]:
        findings = []
        for other in others:
            if (
                (new.opaque and other.narrow)
                or (other.opaque and new.narrow)
                or _ref_counts_close(new, other, min_cell)
            ):
                findings.append(
                    DifferencingFinding(
                        "opaque",
                        (other.release_id,),
                        None,
                        None,
                        f"{RULE_ID}: {new.release_id} and {other.release_id} share datasets and one "
                        "has a population that cannot be compared; review whether they difference",
                    )
                )
        return findings


def _ref_combined(
    outer: ReleaseDescriptor,
    new: ReleaseDescriptor,
    firsts: list[tuple[ReleaseDescriptor, dict[GroupKey, int]]],
    seconds: list[tuple[ReleaseDescriptor, dict[GroupKey, int]]],
    min_cell: int,
) -> list[DifferencingFinding]:
    findings = []
    for (b1, s1), (b2, s2) in itertools.product(firsts, seconds):
        if b1.release_id >= b2.release_id and firsts is seconds:
            continue
        if s2 and b1.release_id != b2.release_id and _ref_populations_disjoint(b1, b2):
            findings += _shortfalls(outer, new, [(b1, s1), (b2, s2)], min_cell)
    return findings


# Random histories over a small population counted exactly, so nested releases and sums of
# disjoint ones leave a handful of people often; now and then counts are disturbed too.

COLUMNS: dict[str, tuple[Value, ...]] = {
    "district": ("N", "S", "E", "W"),
    "edu": (1, 2, 3, True),  # True equals 1 as a dict key, yet is another value to show
    "age": (18, 30, 45, 60),
    "code": ("a", "b", 7),  # a text and a number: intervals over them do not always compare
}
ORDERED = ("age", "code")
JOINT = list(itertools.product(*COLUMNS.values()))
NAMES = list(COLUMNS)
POSITIONS = list(itertools.product(*(range(len(values)) for values in COLUMNS.values())))
"""Each joint row as the positions of its values, so that a filter is tried on each value once."""


def _holds(v: Value, q: Predicate) -> bool:
    return implies(ValueSet(frozenset([v])), q)


# Predicates that nest in and exclude one another, so most histories have releases inside
# others and releases disjoint from others; random ones besides.
POOLS: dict[str, tuple[Predicate, ...]] = {
    "district": (
        ValueSet(frozenset({"N"})),
        ValueSet(frozenset({"N"}), negated=True),
        ValueSet(frozenset({"S", "E", "W"})),
        ValueSet(frozenset({"N", "S"})),
        ValueSet(frozenset({"E", "W"})),
        ValueSet(frozenset({"E"})),
        ValueSet(frozenset({"N", "S"}), negated=True),
    ),
    "edu": (
        ValueSet(frozenset({1})),
        ValueSet(frozenset({2, 3})),
        ValueSet(frozenset({1, 2})),
        ValueSet(frozenset({3})),
        ValueSet(frozenset({3}), negated=True),
        ValueSet(frozenset({True, 2})),
    ),
    "age": (
        Interval(None, 30, high_closed=False),
        Interval(30, None),
        Interval(30, 45),
        Interval(45, None, low_closed=False),
        Interval(18, 60),
        ValueSet(frozenset({18, 30})),
        ValueSet(frozenset({60}), negated=True),
    ),
    "code": (
        Interval("a", "b"),
        Interval(None, 7),
        Interval(7, None),
        ValueSet(frozenset({"a", 7})),
        ValueSet(frozenset({"b"})),
    ),
}


@st.composite
def predicates(draw: st.DrawFn, column: str) -> Predicate:
    if draw(st.integers(0, 3)) > 0:
        return draw(st.sampled_from(POOLS[column]))
    values = COLUMNS[column]
    if column in ORDERED and draw(st.booleans()):
        bounds = st.sampled_from((None, *values))
        return Interval(draw(bounds), draw(bounds), draw(st.booleans()), draw(st.booleans()))
    chosen = draw(st.sets(st.sampled_from(values), min_size=1, max_size=len(values)))
    return ValueSet(frozenset(chosen), negated=draw(st.integers(0, 3)) == 0)


def _other_side(column: str, q: Predicate) -> Predicate:
    """Values outside ``q`` (a complement, disjoint from it), or ``q`` itself when there are none."""
    if isinstance(q, ValueSet):
        rest = frozenset(COLUMNS[column]) - q.values
        return ValueSet(q.values) if q.negated else (ValueSet(rest) if rest else q)
    if q.low is not None:
        return Interval(None, q.low, high_closed=not q.low_closed)
    if q.high is not None:
        return Interval(q.high, None, low_closed=not q.high_closed)
    return q


@st.composite
def shapes(draw: st.DrawFn, parent: ReleaseDescriptor | None) -> tuple[dict[str, Predicate], tuple[str, ...]]:
    """A filter and grouping: fresh, or a parent's with one thing changed (the other side of a
    filter, a value dropped, a grouping or filter column added or dropped) or none, as analysts
    refine their questions."""
    names = sorted(COLUMNS)
    if parent is None or draw(st.integers(0, 2)) == 0:
        # Mostly one grouping column and one filter column, and seldom the one that does not compare.
        common = st.sampled_from(("district", "district", "edu", "edu", "age", "code"))
        width = st.sampled_from((0, 1, 1, 2))
        grouping = tuple(draw(st.lists(common, unique=True, min_size=(n := draw(width)), max_size=n)))
        free = [n for n in names if n not in grouping or draw(st.integers(0, 5)) == 0]
        filtered = draw(st.lists(st.sampled_from(free), unique=True, max_size=min(len(free), draw(width))))
        return {c: draw(predicates(c)) for c in filtered}, grouping
    filter, grouping = dict(parent.filter), parent.grouping
    move = draw(st.sampled_from((0, 1, 1, 2, 3, 3, 3, 4, 5, 5, 5, 6)))
    if move == 0 and grouping:
        grouping = tuple(c for c in grouping if c != draw(st.sampled_from(grouping)))
    elif move == 1 and len(grouping) < 3:
        # Often a column the filter constrains: then only some of the cells lie inside the parent.
        spare = [n for n in names if n not in grouping]
        pick = [n for n in spare if n in filter] if draw(st.booleans()) else spare
        grouping = (*grouping, draw(st.sampled_from(pick or spare)))
    elif move == 2 and filter:
        filter.pop(draw(st.sampled_from(sorted(filter))))
    elif move == 3 and filter:
        column = draw(st.sampled_from(sorted(filter)))
        filter[column] = _other_side(column, filter[column])
    elif move == 4 and filter:
        column = draw(st.sampled_from(sorted(filter)))
        q = filter[column]
        if isinstance(q, ValueSet) and len(q.values) > 1:
            filter[column] = ValueSet(
                q.values - {draw(st.sampled_from(sorted(q.values, key=repr)))}, q.negated
            )
    elif move != 6:  # 6: the same question again, perhaps in another scope
        column = draw(st.sampled_from(names))
        filter[column] = draw(predicates(column))
    return filter, grouping


KEEP = st.integers(0, 7)
"""A cell is kept unless this draws 0; drawn for every cell, so built once."""
DISTURBANCE = st.integers(-2, 2)


@st.composite
def releases(
    draw: st.DrawFn, release_id: str, earlier: list[ReleaseDescriptor], people: list[int]
) -> ReleaseDescriptor:
    # Often one of the first few releases, so that many releases are siblings under one parent.
    parents = earlier[:3] if draw(st.booleans()) else earlier
    parent = draw(st.sampled_from(parents)) if parents and draw(st.integers(0, 3)) > 0 else None
    filter, grouping = draw(shapes(parent))
    tests = [(NAMES.index(c), [_holds(v, q) for v in COLUMNS[c]]) for c, q in filter.items()]
    picks = [NAMES.index(c) for c in grouping]
    counts: dict[GroupKey, int] = {}
    for row, at, n in zip(JOINT, POSITIONS, people, strict=True):
        if all(holds[at[i]] for i, holds in tests):
            key = tuple(row[i] for i in picks)
            counts[key] = counts.get(key, 0) + n
    disturbed = draw(st.integers(0, 4)) == 0
    # Cells dropped now and then, as suppression does; counts disturbed in some releases.
    counts = {
        k: max(0, n + (draw(DISTURBANCE) if disturbed else 0)) for k, n in counts.items() if draw(KEEP) > 0
    }
    return ReleaseDescriptor.create(
        release_id,
        draw(st.sampled_from(("s1", "s1", "s2"))),
        draw(st.sampled_from(("o1", "o1", "o2"))),
        draw(st.sampled_from((("p",), ("p",), ("p",), ("p", "q")))),
        counts,
        filter=filter,
        grouping=grouping,
        opaque=draw(st.integers(0, 19)) == 0,
    )


@st.composite
def histories(draw: st.DrawFn) -> tuple[list[ReleaseDescriptor], list[ReleaseDescriptor]]:
    """Earlier releases, then releases to check, with ids in no particular order (pairs
    are named lower id first) and now and then a new release reusing a recorded id."""
    people = draw(st.lists(st.sampled_from((0, 0, 0, 1, 2)), min_size=len(JOINT), max_size=len(JOINT)))
    size = draw(st.integers(3, 24))
    ids = draw(st.permutations([f"r{i:02d}" for i in range(size + 5)]))
    earlier: list[ReleaseDescriptor] = []
    for rid in ids[:size]:
        earlier.append(draw(releases(rid, earlier, people)))
    fresh = []
    for rid in ids[size:]:
        reused = earlier and draw(st.integers(0, 5)) == 0
        fresh.append(draw(releases(draw(st.sampled_from(ids[:size])) if reused else rid, earlier, people)))
    return earlier, fresh


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories(), st.lists(st.integers(-1, 30), min_size=1, max_size=3))
def test_same_findings_as_trying_every_pair(
    history: tuple[list[ReleaseDescriptor], list[ReleaseDescriptor]], min_cells: list[int]
) -> None:
    earlier, fresh = history
    index, reference = ReleaseIndex(), _Reference()
    # Checked after every release recorded: the sums must follow groupings that appear late.
    for step, release in enumerate(earlier):
        index.add(release)
        reference.add(release)
        probe = fresh[step % len(fresh)]
        assert index.check(probe, min_cells[0]) == reference.check(probe, min_cells[0])
    for new in fresh:
        for min_cell in min_cells:
            assert index.check(new, min_cell) == reference.check(new, min_cell)


@settings(max_examples=30, deadline=None)
@given(histories(), st.integers(1, 30))
def test_a_reloaded_index_finds_the_same(
    history: tuple[list[ReleaseDescriptor], list[ReleaseDescriptor]], min_cell: int
) -> None:
    earlier, fresh = history
    index = ReleaseIndex()
    for release in earlier:
        index.add(release)
    with tempfile.TemporaryDirectory() as folder:
        index.save(Path(folder) / "releases.jsonl")
        loaded = ReleaseIndex.load(Path(folder) / "releases.jsonl")
    for new in fresh:
        assert loaded.check(new, min_cell) == index.check(new, min_cell)


@settings(max_examples=60, deadline=None)
@given(histories())
def test_cell_sums_match_the_cell_by_cell_definition(
    history: tuple[list[ReleaseDescriptor], list[ReleaseDescriptor]],
) -> None:
    earlier, fresh = history
    for outer, inner in itertools.product(earlier + fresh, repeat=2):
        assert list(inside_sums(outer, inner).items()) == list(_ref_inside_sums(outer, inner).items())


def test_the_benchmark_history_against_the_reference() -> None:
    seed = 20260101
    pops = populations(seed)
    planted, attack, safe = probes(pops)
    history = History(seed, "earlier", pops)
    index, reference = ReleaseIndex(), _Reference()
    for release in [planted, *history.take(400)]:
        index.add(release)
        reference.add(release)
    check_attack(index.check(attack, MIN_CELL), islet_cells(pops))
    check_safe(index.check(safe, MIN_CELL))
    fresh = History(seed, "fresh", pops, parents=history.shapes).take(60)
    found = 0
    for new in [attack, safe, *fresh]:
        for min_cell in (MIN_CELL, 25):
            expected = reference.check(new, min_cell)
            assert index.check(new, min_cell) == expected
            found += len(expected)
    assert found > 0
