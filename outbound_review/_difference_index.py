"""How the differencing control finds releases that nest, and the index of recorded releases.

Predicates. A release's filter is a conjunction of per-column :class:`ValueSet` and
:class:`Interval` predicates; :func:`implies` and :func:`disjoint` decide, conservatively,
whether one predicate lies inside another or excludes it. :func:`inside_sums` gives, for each
cell of one release, the total of another's cells provably inside it.

Buckets. Recorded releases are bucketed by scope (scenario or operator), dataset set, and the
set of columns their cells constrain, in the order recorded; a check visits only buckets whose
column set is a superset or subset of the new release's. Every release also keeps its place
(bucket rank and position) in each of its scopes, so releases found some other way can be put
back in the order a walk over the buckets would have met them.

Sorted sums. For a cell ``a`` of a release ``O`` grouped by ``G`` that contains the new
release ``N``, a release ``B`` disjoint from ``N`` isolates people with both when
``O(a) − N(a) − B(a)`` lies between 1 and ``min_cell − 1``. Whenever ``O``'s filter constrains
no column ``B`` groups, ``B(a)`` is ``B``'s cells summed by their values on ``G`` (whether or not
``B`` lies inside ``O``: one that does not is a false candidate the exact test drops). Those sums
depend neither on ``O`` nor on ``N`` nor on ``min_cell``, so they are computed once, when ``B`` is
recorded, for every grouping recorded over its datasets, and kept sorted per (scope, datasets,
grouping, cell): a check asks for the window of sums that leaves 1 … ``min_cell − 1`` people and
meets only the releases in it. When ``O``'s filter does constrain a column ``B`` groups, only some
of ``B``'s cells lie inside and the sums say nothing; such ``B`` (grouped, disjoint from ``N``) are
tested directly, once per shape of ``O``.

Memory grows linearly with the releases. For each recorded grouping of its datasets that its
cells pin, a release adds one entry per distinct cell of its cells summed onto that grouping to
the sorted sums of each of its two scopes, and keeps those sums itself (as the position of the
first cell of each and the total), which spares building them again at check time. The sorted
lists themselves, one per (scope, datasets, grouping, cell), are bounded by the data's cells,
not by the history. A grouping seen for the first time sums every release already recorded over
those datasets once. Nothing derived is persisted: recording the releases again
(``ReleaseIndex.load``, the gate's refresh from the review database) rebuilds it.
"""

from __future__ import annotations

import bisect
import datetime as dt
import itertools
import operator
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from outbound_review.differencing import ReleaseDescriptor

Value = str | int | float | bool | dt.date | None
GroupKey = tuple[Value, ...]
Scope = tuple[str, str]
Columns = tuple[str, ...]
# Bucket rank and position in the bucket, in a release's scenario scope then its operator scope.
_Place = tuple[tuple[int, int], tuple[int, int]]
_Reorder = Callable[[GroupKey], GroupKey] | None  # None: the key is in order already
# A release's cells summed by their values on some columns, without building the keys again:
# for each distinct value, the position of the first cell with it, and the sum.
_Sums = tuple[tuple[int, ...], tuple[int, ...]]


@dataclass(frozen=True)
class ValueSet:
    """The values a column may take (``=``, ``IN``), or with ``negated`` the ones it may not
    (``<>``, ``NOT IN``; SQL nulls never satisfy a negated set)."""

    values: frozenset[Value]
    negated: bool = False


@dataclass(frozen=True)
class Interval:
    """Values of an ordered column between ``low`` and ``high``; ``None`` leaves a side open."""

    low: Value = None
    high: Value = None
    low_closed: bool = True
    high_closed: bool = True


Predicate = ValueSet | Interval


def _bound_inside(
    v: Value, closed: bool, limit: Value, limit_closed: bool, beyond: Callable[..., bool]
) -> bool:
    """Whether the bound ``v`` lies on the inner side of ``limit`` (``beyond`` says which side)."""
    if limit is None:
        return True
    if v is None:
        return False
    return bool(beyond(v, limit)) or (v == limit and (limit_closed or not closed))


def _in_interval(v: Value, q: Interval) -> bool:
    return v is not None and (
        _bound_inside(v, True, q.low, q.low_closed, operator.gt)
        and _bound_inside(v, True, q.high, q.high_closed, operator.lt)
    )


def _satisfies(v: Value, q: Predicate) -> bool:
    if isinstance(q, Interval):
        return _in_interval(v, q)
    if v is None:
        return not q.negated and None in q.values
    return (v in q.values) != q.negated


def _below(p: Interval, q: Interval) -> bool:
    """Whether every value of ``p`` lies below every value of ``q``."""
    if p.high is None or q.low is None:
        return False
    return bool(operator.lt(p.high, q.low)) or (p.high == q.low and not (p.high_closed and q.low_closed))


def implies(p: Predicate, q: Predicate) -> bool:
    """Whether every value satisfying ``p`` satisfies ``q``; False whenever that is not provable."""
    try:
        if isinstance(p, ValueSet) and not p.negated:
            return all(_satisfies(v, q) for v in p.values)
        if isinstance(p, ValueSet):
            return isinstance(q, ValueSet) and q.negated and q.values <= p.values
        if isinstance(q, Interval):
            return _bound_inside(p.low, p.low_closed, q.low, q.low_closed, operator.gt) and _bound_inside(
                p.high, p.high_closed, q.high, q.high_closed, operator.lt
            )
        return q.negated and not any(_in_interval(v, p) for v in q.values)
    except TypeError:
        return False


def disjoint(p: Predicate, q: Predicate) -> bool:
    """Whether no value satisfies both; False whenever that is not provable."""
    try:
        if isinstance(p, ValueSet) and not p.negated:
            return not any(_satisfies(v, q) for v in p.values)
        if isinstance(q, ValueSet) and not q.negated:
            return disjoint(q, p)
        if isinstance(p, Interval) and isinstance(q, Interval):
            return _below(p, q) or _below(q, p)
        return False
    except TypeError:
        return False


def inside_sums(outer: ReleaseDescriptor, inner: ReleaseDescriptor) -> dict[GroupKey, int]:
    """For each cell of ``outer``, the total of ``inner``'s cells provably inside it (cells
    with none inside are absent)."""
    return present(inside_shape(outer.grouping, outer._residual, inner), outer.counts)


def present(sums: dict[GroupKey, int], counts: Mapping[GroupKey, int]) -> dict[GroupKey, int]:
    """``sums`` restricted to the cells ``counts`` has, in the same order."""
    return {k: v for k, v in sums.items() if k in counts}


def inside_shape(
    grouping: tuple[str, ...], residual: tuple[tuple[str, Predicate], ...], inner: ReleaseDescriptor
) -> dict[GroupKey, int]:
    """:func:`inside_sums` for any release grouped by ``grouping`` and filtered by ``residual``
    on its other columns, whichever cells it has: releases of one shape share it."""
    # An inner cell sits inside one outer cell only if it pins every outer grouping column;
    # the filter and grouping are the same for all its cells, so that holds for all or none.
    key_of = inner._key_of(grouping)
    if key_of is None:
        return {}
    tests: list[tuple[int, Predicate]] = []
    for c, q in residual:
        at = inner._pins.get(c, (-1, None))[0]
        if at >= 0:
            tests.append((at, q))
        # Columns inner filters but does not group are the same for all its cells: test them once.
        elif not (c in inner._filter_map and implies(inner._filter_map[c], q)):
            return {}
    cells: Sequence[tuple[GroupKey, int]] = inner.cells
    for i, q in tests:
        cells = _passing(cells, i, q)
    return summed(cells, key_of)


def _passing(cells: Sequence[tuple[GroupKey, int]], i: int, q: Predicate) -> list[tuple[GroupKey, int]]:
    """The cells whose value at ``i`` satisfies ``q``."""
    # Values that compare equal (1, 1.0, True) satisfy a predicate alike, so each distinct value
    # is decided once; a NaN is only itself, and the set holds the cells' own objects.
    allowed = {v for v in {key[i] for key, _ in cells} if holds(v, q)}
    return [cell for cell in cells if cell[0][i] in allowed]


def summed(
    cells: Iterable[tuple[GroupKey, int]], key_of: Callable[[GroupKey], GroupKey]
) -> dict[GroupKey, int]:
    """The counts of ``cells`` summed by ``key_of`` their key, keys in the order first met."""
    sums: dict[GroupKey, int] = {}
    for key, count in cells:
        k = key_of(key)
        sums[k] = sums.get(k, 0) + count
    return sums


def holds(v: Value, q: Predicate) -> bool:
    """Whether ``v`` satisfies ``q``; False when that cannot be decided (values that do not compare)."""
    try:
        return _satisfies(v, q)
    except TypeError:
        return False


def populations_disjoint(a: ReleaseDescriptor, b: ReleaseDescriptor) -> bool:
    """Whether the filters of ``a`` and ``b`` exclude each other on a column both filter."""
    other = b._filter_map
    return any(c in other and disjoint(p, other[c]) for c, p in a.filter)


def counts_close(a: ReleaseDescriptor, b: ReleaseDescriptor, min_cell: int) -> bool:
    """Whether some count of ``a`` and some count of ``b`` differ by between 1 and min_cell − 1."""
    ordered = b._sorted_counts
    for x in a.counts.values():
        lo = bisect.bisect_right(ordered, x - min_cell)
        hi = bisect.bisect_left(ordered, x + min_cell)
        if any(y != x for y in ordered[lo:hi]):
            return True
    return False


def filters_inside(inner: ReleaseDescriptor, outer: ReleaseDescriptor) -> bool:
    """Whether ``inner``'s filter implies ``outer``'s on each column ``outer`` filters but
    neither groups (without that, no cell of ``inner`` lies inside ``outer``)."""
    return all(
        c in inner.grouping or (c in inner._filter_map and implies(inner._filter_map[c], q))
        for c, q in outer._residual
    )


def leaves_few(sums: Mapping[GroupKey, int], rests: list[tuple[GroupKey, int]], min_cell: int) -> bool:
    """Whether ``sums``, taken from the people ``rests`` counts per cell, leaves 1 … min_cell − 1
    of them in some cell."""
    return any(key in sums and 0 < rest - sums[key] < min_cell for key, rest in rests)


def scopes(r: ReleaseDescriptor) -> tuple[Scope, Scope]:
    """The two scopes a release is compared in: its scenario's and its operator's."""
    return ("scenario", r.scenario), ("operator", r.operator)


class ReleaseStore:
    """Recorded releases: the nesting buckets, the per-dataset lists, and the sorted sums."""

    def __init__(self) -> None:
        self.releases: list[ReleaseDescriptor] = []
        self._nesting: defaultdict[
            tuple[Scope, frozenset[str]], defaultdict[frozenset[str], list[ReleaseDescriptor]]
        ] = defaultdict(lambda: defaultdict(list))
        self._ranks: defaultdict[tuple[Scope, frozenset[str]], dict[frozenset[str], int]] = defaultdict(dict)
        self._places: dict[str, _Place] = {}
        self._by_dataset: defaultdict[tuple[Scope, str], list[ReleaseDescriptor]] = defaultdict(list)
        self._opaque_by_dataset: defaultdict[tuple[Scope, str], list[ReleaseDescriptor]] = defaultdict(list)
        self._members: defaultdict[frozenset[str], list[int]] = defaultdict(list)
        # Per (scope, datasets, column): the releases filtering it, by predicate (under its repr,
        # which keeps apart values that compare equal, such as 1 and True).
        self._filters: defaultdict[
            tuple[Scope, frozenset[str], str], dict[str, tuple[Predicate, list[ReleaseDescriptor]]]
        ] = defaultdict(dict)
        # Each release's cells summed onto each grouping of its datasets, kept compact (see _Sums).
        self._sums_by: dict[str, dict[Columns, _Sums | None]] = {}
        self._groupings: defaultdict[frozenset[str], list[Columns]] = defaultdict(list)
        # Per (scope, datasets, grouping in sorted order), per cell: sums ascending, and whose.
        self._sums: defaultdict[
            tuple[Scope, frozenset[str], Columns], dict[GroupKey, tuple[list[int], list[int]]]
        ]
        self._sums = defaultdict(dict)
        self._canonical: dict[Columns, tuple[Columns, _Reorder]] = {}

    def add(self, release: ReleaseDescriptor) -> None:
        """Record a release (its id already checked to be new)."""
        serial = len(self.releases)
        self.releases.append(release)
        for scope in scopes(release):
            for ds in release.datasets:
                self._by_dataset[scope, ds].append(release)
                if release.opaque:
                    self._opaque_by_dataset[scope, ds].append(release)
        if release.opaque:
            return
        places = []
        for scope in scopes(release):
            ranks, bucket = self._ranks[scope, release.datasets], self._nesting[scope, release.datasets]
            rank = ranks.setdefault(release.columns, len(ranks))
            places.append((rank, len(bucket[release.columns])))
            bucket[release.columns].append(release)
        self._places[release.release_id] = (places[0], places[1])
        for scope in scopes(release):
            for c, q in release.filter:
                self._filters[scope, release.datasets, c].setdefault(repr(q), (q, []))[1].append(release)
        members = self._members[release.datasets]
        members.append(serial)
        self._sums_by[release.release_id] = {}
        grouping = self.canonical(release.grouping)[0]
        groupings = self._groupings[release.datasets]
        if grouping not in groupings:
            groupings.append(grouping)
            # A grouping seen for the first time: every release recorded before gets its sums too.
            for earlier in members[:-1]:
                self._project(earlier, grouping)
        for columns in groupings:
            self._project(serial, columns)

    def _project(self, serial: int, columns: Columns) -> None:
        release = self.releases[serial]
        key_of = release._key_of(columns)
        found = self._sums_by[release.release_id][columns] = _sums(release, key_of)
        if key_of is None or found is None:
            return
        for scope in scopes(release):
            cells = self._sums[scope, release.datasets, columns]
            for first, total in zip(*found, strict=True):
                key = key_of(release.cells[first][0])
                entry = cells.get(key)
                if entry is None:
                    entry = cells[key] = [], []
                sums, serials = entry
                at = bisect.bisect_right(sums, total)
                sums.insert(at, total)
                serials.insert(at, serial)

    def canonical(self, grouping: Columns) -> tuple[Columns, _Reorder]:
        """The grouping's columns in sorted order (sums are kept under keys in that order), and
        the reordering of a key from ``grouping``'s order to that one."""
        found = self._canonical.get(grouping)
        if found is None:
            columns = tuple(sorted(grouping))
            found = self._canonical[grouping] = columns, _reorder([grouping.index(c) for c in columns])
        return found

    def _kept(self, r: ReleaseDescriptor, grouping: Columns) -> _Sums | None:
        """``r``'s cells summed by their values on ``grouping``'s columns, as kept when ``r``
        was recorded (worked out now if that grouping was not in use then)."""
        kept = self._sums_by.get(r.release_id, {})
        columns = self.canonical(grouping)[0]
        return kept[columns] if columns in kept else _sums(r, r._key_of(columns))

    def sums_by(self, r: ReleaseDescriptor, grouping: Columns) -> dict[GroupKey, int] | None:
        """``r``'s cells summed by their values on ``grouping`` (keys in its order), from the
        sums kept for ``r``; None if its cells do not pin the grouping's columns."""
        found, key_of = self._kept(r, grouping), r._key_of(grouping)
        if found is None or key_of is None:
            return None
        cells = r.cells
        return {key_of(cells[first][0]): total for first, total in zip(*found, strict=True)}

    def inside_sums(self, outer: ReleaseDescriptor, inner: ReleaseDescriptor) -> dict[GroupKey, int]:
        """:func:`inside_sums` for a recorded ``inner``: read from its kept sums when ``outer``'s
        filter constrains no column ``inner`` groups (then no cell is tested on its own)."""
        key_of = inner._key_of(outer.grouping)
        if any(c in inner.grouping for c, _ in outer._residual) or key_of is None:
            return inside_sums(outer, inner)
        found = self._kept(inner, outer.grouping)
        if found is None or not filters_inside(inner, outer):
            return {}
        cells, counts = inner.cells, outer.counts
        # Keys are built from the first cell with each value, in the order of the cells, as a
        # cell-by-cell sum builds them.
        return {
            key: total
            for first, total in zip(*found, strict=True)
            if (key := key_of(cells[first][0])) in counts
        }

    def window(
        self, new: ReleaseDescriptor, columns: Columns, rests: list[tuple[GroupKey, int]], min_cell: int
    ) -> dict[str, ReleaseDescriptor]:
        """Releases in ``new``'s scope over its datasets whose cells, summed by their values on
        ``columns`` (sorted), leave 1 … ``min_cell − 1`` of ``rest`` people in some cell ``key``,
        for the ``(key, rest)`` in ``rests``; by id."""
        found: dict[str, ReleaseDescriptor] = {}
        for scope in scopes(new):
            cells = self._sums.get((scope, new.datasets, columns))
            if not cells:
                continue
            for key, rest in rests:
                entry = cells.get(key)
                if entry is not None:
                    sums, serials = entry
                    start = bisect.bisect_left(sums, rest - min_cell + 1)
                    stop = bisect.bisect_right(sums, rest - 1, start)
                    for s in serials[start:stop]:
                        found[self.releases[s].release_id] = self.releases[s]
        return found

    def place(self, new: ReleaseDescriptor, r: ReleaseDescriptor) -> tuple[int, int, int]:
        """A key ordering releases in ``new``'s scope and datasets as a walk over the buckets
        meets them (the scenario's buckets, then the operator's, each in the order filled)."""
        in_scenario, in_operator = self._places[r.release_id]
        if r.scenario == new.scenario:
            return (0, *in_scenario)
        return (1, *in_operator)

    def comparable(self, new: ReleaseDescriptor) -> tuple[list[ReleaseDescriptor], list[ReleaseDescriptor]]:
        """Releases in ``new``'s scope over its datasets whose cells could contain ``new``'s,
        and those whose cells could lie inside them, each in the order :meth:`place` gives."""
        outers: list[ReleaseDescriptor] = []
        inners: list[ReleaseDescriptor] = []
        recorded = new.release_id in self._places
        for n, scope in enumerate(scopes(new)):
            for cols, bucket in self._nesting.get((scope, new.datasets), {}).items():
                around, within = cols <= new.columns, cols >= new.columns
                if not (around or within):
                    continue
                rels = bucket
                if n or recorded:
                    # A release of new's scenario was met in the scenario's buckets already.
                    rels = [
                        r
                        for r in bucket
                        if not (n and r.scenario == new.scenario) and r.release_id != new.release_id
                    ]
                if around:
                    outers += rels
                if within:
                    inners += rels
        return outers, inners

    def disjoint_from(self, new: ReleaseDescriptor) -> list[ReleaseDescriptor]:
        """The releases in ``new``'s scope over its datasets whose filters exclude ``new``'s on
        a column both filter (as :func:`populations_disjoint`), each predicate tested once."""
        found: dict[str, ReleaseDescriptor] = {}
        for scope in scopes(new):
            for c, p in new.filter:
                for q, rels in self._filters.get((scope, new.datasets, c), {}).values():
                    if disjoint(p, q):
                        found.update((r.release_id, r) for r in rels if r.release_id != new.release_id)
        return list(found.values())

    def same_datasets(self, new: ReleaseDescriptor, *, opaque: bool) -> list[ReleaseDescriptor]:
        """Releases in ``new``'s scope sharing a dataset with it (only opaque ones if ``opaque``)."""
        table = self._opaque_by_dataset if opaque else self._by_dataset
        return list(unique((table.get((s, ds), []) for s in scopes(new) for ds in new.datasets), new))


def _sums(r: ReleaseDescriptor, key_of: Callable[[GroupKey], GroupKey] | None) -> _Sums | None:
    """``r``'s cells summed by ``key_of`` their key, compactly; None if the cells lack a value."""
    if key_of is None:
        return None
    firsts: dict[GroupKey, int] = {}
    totals: dict[GroupKey, int] = {}
    for at, (key, count) in enumerate(r.cells):
        k = key_of(key)
        if k in totals:
            totals[k] += count
        else:
            firsts[k], totals[k] = at, count
    return tuple(firsts.values()), tuple(totals.values())


def _reorder(positions: list[int]) -> _Reorder:
    """A key's values taken at ``positions``, in that order (None if that is the order they have)."""
    if positions == sorted(positions):
        return None
    # Not sorted, so two or more positions: itemgetter returns a tuple.
    reorder: _Reorder = operator.itemgetter(*positions)
    return reorder


def unique(
    groups: Iterable[Iterable[ReleaseDescriptor]], new: ReleaseDescriptor
) -> Iterator[ReleaseDescriptor]:
    """Each release once, in the order first met, leaving out any with ``new``'s id."""
    seen = {new.release_id}
    for r in itertools.chain.from_iterable(groups):
        if r.release_id not in seen:
            seen.add(r.release_id)
            yield r


def close_pairs(
    parts: Sequence[Mapping[GroupKey, int]], totals: Mapping[GroupKey, int], min_cell: int
) -> set[tuple[int, int]]:
    """Pairs ``(i, j)``, ``i < j``, of ``parts`` that leave between 1 and ``min_cell − 1`` of
    ``totals`` in some cell both have: per cell, the parts sorted by sum and each one's
    partners found by binary search rather than by trying every pair."""
    by_cell: defaultdict[GroupKey, list[tuple[int, int]]] = defaultdict(list)
    for i, sums in enumerate(parts):
        for key, total in sums.items():
            by_cell[key].append((total, i))
    pairs: set[tuple[int, int]] = set()
    for key, entries in by_cell.items():
        if len(entries) < 2:
            continue
        entries.sort()
        values = [total for total, _ in entries]
        whole = totals[key]
        for total, i in entries:
            start = bisect.bisect_left(values, whole - total - min_cell + 1)
            stop = bisect.bisect_right(values, whole - total - 1, start)
            # The condition is symmetric, so each pair is met from both ends: keep one.
            if start < stop:
                pairs.update((i, j) for _, j in entries[start:stop] if i < j)
    return pairs
