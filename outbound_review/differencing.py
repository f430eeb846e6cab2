"""SDC-DIFFERENCING: a new aggregate release checked against every earlier release it could be
subtracted from.

Each release is described by a :class:`ReleaseDescriptor`: the datasets it reads, a filter
that is a conjunction of per-column predicates (:class:`ValueSet` for ``=``/``IN`` and, with
``negated``, ``<>``/``NOT IN``; :class:`Interval` for ordered values), its grouping columns
and its released cells (group key → count; for sums and means the count underneath).

Method. The population of cell ``g`` of release ``R`` is the conjunction of R's filter with
``c = g[c]`` for every grouping column ``c``; as predicates per column, the grouping
equality replaces the filter on that column. Cell ``b`` of ``B`` is *inside* cell ``a`` of
``A`` when, for every column ``A``'s cell constrains, ``B``'s cell constrains it too and
its predicate implies ``A``'s (value sets by inclusion, intervals by their bounds, a value
set in an interval by membership, an interval under ``NOT IN`` by excluding every listed
value; anything else, including values that do not compare, counts as *not* implied).
The cells of one release are pairwise disjoint, so when the cells ``b1 … bk`` of ``B`` are
inside ``a``, ``A(a) − Σ B(bi)`` is the exact count of people in ``a`` and in none of them.

1. *Nested pair*: for the new release ``N`` and each earlier release ``E`` in scope, with
   ``N`` as ``A`` and ``E`` as ``B`` and the other way round, every cell ``a`` with at
   least one cell of ``B`` inside gives ``d = A(a) − Σ B(bi)``; ``0 < d < min_cell`` fails.
   This covers total vs total-minus-one, complementary filters (``IN S`` inside no filter),
   narrowing a value set by one value, interval bounds moved by one, and grouping
   refinement (all cells of ``district × education`` summed into their ``district``).
2. *Combined*: two releases ``B1``, ``B2`` whose filters are provably disjoint on a shared
   column both put cells inside the same cell ``a``: ``d = A(a) − Σ B1 − Σ B2`` is tested
   likewise. Only combinations that involve ``N`` are new, so ``N`` is ``A``, ``B1`` or ``B2``.
3. *Opaque*: a release whose filter cannot be expressed (``opaque=True``) has an unknown
   population. Against every release in scope sharing a dataset with it, it is flagged for
   review when the other release is *narrow* (filtered, or opaque itself) or when any two
   of their counts differ by less than ``min_cell`` (a near-total that may be a total minus
   a few people).

Scope: earlier releases of the same scenario, and of the same operator across scenarios.
Nesting (1, 2) needs the same set of datasets, since a join changes the population.

Index. Releases are bucketed by scope (scenario or operator), dataset set, and the set of
columns their cells constrain (filter ∪ grouping). ``b`` inside ``a`` requires ``B``'s
columns to include ``A``'s, so a check only visits buckets whose column set is a superset
or subset of ``N``'s: the cost grows with the number of distinct column sets and of
genuinely comparable releases, not with the whole history. Opaque releases sit in a
per-dataset list of their own.

Not claimed: overlaps that do not nest (``[20, 40]`` vs ``[30, 50]``), combinations of
three or more releases besides ``A``, value-set complements that need the column's domain
(``NOT IN S`` inside ``IN T``), and releases of unrelated operators in other scenarios.
"""

from __future__ import annotations

import bisect
import datetime as dt
import itertools
import json
import operator
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from outbound_review.errors import ReviewError

RULE_ID = "SDC-DIFFERENCING"

Value = str | int | float | bool | dt.date | None
GroupKey = tuple[Value, ...]
FindingKind = Literal["nested", "combined", "opaque"]


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


def _implies(p: Predicate, q: Predicate) -> bool:
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


def _disjoint(p: Predicate, q: Predicate) -> bool:
    """Whether no value satisfies both; False whenever that is not provable."""
    try:
        if isinstance(p, ValueSet) and not p.negated:
            return not any(_satisfies(v, q) for v in p.values)
        if isinstance(q, ValueSet) and not q.negated:
            return _disjoint(q, p)
        if isinstance(p, Interval) and isinstance(q, Interval):
            return _below(p, q) or _below(q, p)
        return False
    except TypeError:
        return False


@dataclass(frozen=True)
class ReleaseDescriptor:
    """One released aggregate result, as far as differencing needs it.

    ``filter`` holds ``(column, predicate)`` pairs sorted by column, ``cells`` holds
    ``(group key, count)`` pairs with keys aligned to ``grouping`` (``()`` for a total).
    Build one from mappings with :meth:`create`.
    """

    release_id: str
    scenario: str
    operator: str
    datasets: frozenset[str]
    filter: tuple[tuple[str, Predicate], ...] = ()
    grouping: tuple[str, ...] = ()
    cells: tuple[tuple[GroupKey, int], ...] = ()
    opaque: bool = False

    def __post_init__(self) -> None:
        if not self.datasets:
            raise ReviewError(f"{RULE_ID}: release {self.release_id} names no dataset")
        if len(set(self.grouping)) != len(self.grouping):
            raise ReviewError(f"{RULE_ID}: release {self.release_id} repeats a grouping column")
        for key, count in self.cells:
            if len(key) != len(self.grouping) or count < 0:
                raise ReviewError(f"{RULE_ID}: release {self.release_id} has a malformed cell {key!r}")

    @classmethod
    def create(
        cls,
        release_id: str,
        scenario: str,
        operator: str,
        datasets: Iterable[str],
        cells: Mapping[GroupKey, int],
        *,
        filter: Mapping[str, Predicate] | None = None,
        grouping: Iterable[str] = (),
        opaque: bool = False,
    ) -> ReleaseDescriptor:
        """A descriptor from plain mappings, in canonical order."""
        return cls(
            release_id=release_id,
            scenario=scenario,
            operator=operator,
            datasets=frozenset(datasets),
            filter=tuple(sorted((filter or {}).items())),
            grouping=tuple(grouping),
            cells=tuple((tuple(k), int(v)) for k, v in cells.items()),
            opaque=opaque,
        )

    @cached_property
    def columns(self) -> frozenset[str]:
        """Every column the release's cells are constrained on."""
        return frozenset(c for c, _ in self.filter) | frozenset(self.grouping)

    @cached_property
    def counts(self) -> dict[GroupKey, int]:
        """The cells as a mapping."""
        return dict(self.cells)

    @property
    def narrow(self) -> bool:
        """Whether the release selects a sub-population (or may, being opaque)."""
        return self.opaque or bool(self.filter)

    def to_json(self) -> dict[str, Any]:
        """The descriptor as plain JSON values (sets, tuples and dates tagged so they survive)."""
        data: dict[str, Any] = _to_json(self)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ReleaseDescriptor:
        """A descriptor from :meth:`to_json`'s output; ReviewError if it is not one."""
        try:
            found = _from_json(dict(data))
        except (KeyError, TypeError, ValueError) as exc:
            raise ReviewError(f"{RULE_ID}: a stored release description is unreadable: {exc}") from None
        if not isinstance(found, cls):
            raise ReviewError(f"{RULE_ID}: a stored release description is not a release")
        return found

    def cell_predicates(self, key: GroupKey) -> dict[str, Predicate]:
        """The population of one cell, as a predicate per column."""
        preds = dict(self.filter)
        preds.update((c, ValueSet(frozenset([v]))) for c, v in zip(self.grouping, key, strict=True))
        return preds


@dataclass(frozen=True)
class DifferencingFinding:
    """A way earlier releases and the new one combine into a group below the minimum cell.

    ``other_release_ids`` names the earlier releases involved; ``group_key`` and
    ``difference`` are the isolated cell (of the containing release) and its count, both
    ``None`` for an opaque comparison.
    """

    kind: FindingKind
    other_release_ids: tuple[str, ...]
    group_key: GroupKey | None
    difference: int | None
    explanation: str
    rule_id: str = RULE_ID


def _inside_sums(outer: ReleaseDescriptor, inner: ReleaseDescriptor) -> dict[GroupKey, int]:
    """For each cell of ``outer``, the total of ``inner``'s cells provably inside it (cells
    with none inside are absent)."""
    grouped = set(outer.grouping)
    filtered = [(c, q) for c, q in outer.filter if c not in grouped]
    inner_filter = dict(inner.filter)
    # Columns inner filters but does not group are the same for all its cells: test them once.
    if any(
        c not in inner.grouping and not (c in inner_filter and _implies(inner_filter[c], q))
        for c, q in filtered
    ):
        return {}
    sums: dict[GroupKey, int] = {}
    for key, count in inner.cells:
        preds = inner.cell_predicates(key)
        # An inner cell sits inside one outer cell only if it pins every outer grouping column.
        pinned = [preds.get(c) for c in outer.grouping]
        if not all(isinstance(p, ValueSet) and not p.negated and len(p.values) == 1 for p in pinned):
            continue
        okey = tuple(next(iter(p.values)) for p in pinned if isinstance(p, ValueSet))
        if okey in outer.counts and all(c in preds and _implies(preds[c], q) for c, q in filtered):
            sums[okey] = sums.get(okey, 0) + count
    return sums


def _populations_disjoint(a: ReleaseDescriptor, b: ReleaseDescriptor) -> bool:
    other = dict(b.filter)
    return any(c in other and _disjoint(p, other[c]) for c, p in a.filter)


def _counts_close(a: ReleaseDescriptor, b: ReleaseDescriptor, min_cell: int) -> bool:
    """Whether some count of ``a`` and some count of ``b`` differ by between 1 and min_cell − 1."""
    ordered = sorted(b.counts.values())
    for x in a.counts.values():
        lo = bisect.bisect_right(ordered, x - min_cell)
        hi = bisect.bisect_left(ordered, x + min_cell)
        if any(y != x for y in ordered[lo:hi]):
            return True
    return False


Scope = tuple[str, str]


def _scopes(r: ReleaseDescriptor) -> tuple[Scope, Scope]:
    return ("scenario", r.scenario), ("operator", r.operator)


class ReleaseIndex:
    """Earlier releases, indexed so a new one meets only those it could be differenced with."""

    def __init__(self) -> None:
        self._releases: dict[str, ReleaseDescriptor] = {}
        self._nesting: defaultdict[
            tuple[Scope, frozenset[str]], defaultdict[frozenset[str], list[ReleaseDescriptor]]
        ] = defaultdict(lambda: defaultdict(list))
        self._by_dataset: defaultdict[tuple[Scope, str], list[ReleaseDescriptor]] = defaultdict(list)
        self._opaque_by_dataset: defaultdict[tuple[Scope, str], list[ReleaseDescriptor]] = defaultdict(list)

    def __len__(self) -> int:
        return len(self._releases)

    def add(self, release: ReleaseDescriptor) -> None:
        """Record a release as released; its id must be new."""
        if release.release_id in self._releases:
            raise ReviewError(f"{RULE_ID}: release {release.release_id} is already recorded")
        self._releases[release.release_id] = release
        for scope in _scopes(release):
            for ds in release.datasets:
                self._by_dataset[scope, ds].append(release)
                if release.opaque:
                    self._opaque_by_dataset[scope, ds].append(release)
            if not release.opaque:
                self._nesting[scope, release.datasets][release.columns].append(release)

    def _unique(
        self, groups: Iterable[Iterable[ReleaseDescriptor]], new: ReleaseDescriptor
    ) -> Iterator[ReleaseDescriptor]:
        seen = {new.release_id}
        for r in itertools.chain.from_iterable(groups):
            if r.release_id not in seen:
                seen.add(r.release_id)
                yield r

    def _nestable(
        self, r: ReleaseDescriptor, new: ReleaseDescriptor, *, inside: bool | None
    ) -> list[ReleaseDescriptor]:
        """Releases in ``new``'s scope over ``r``'s datasets whose cells could lie inside
        ``r``'s (``inside``), contain them (``not inside``), or any (``None``)."""
        groups = [
            rels
            for scope in _scopes(new)
            for cols, rels in self._nesting.get((scope, r.datasets), {}).items()
            if inside is None or (cols >= r.columns if inside else cols <= r.columns)
        ]
        return [e for e in self._unique(groups, new) if e.release_id != r.release_id]

    def check(self, new: ReleaseDescriptor, min_cell: int) -> list[DifferencingFinding]:
        """Every way ``new`` and the recorded releases isolate fewer than ``min_cell`` people.

        ``new`` itself is not recorded; call :meth:`add` once it is released.
        """
        if new.opaque:
            return self._check_opaque(new, self._same_datasets(new, self._by_dataset), min_cell)
        findings = self._check_opaque(new, self._same_datasets(new, self._opaque_by_dataset), min_cell)
        # Partners of new inside an earlier release must be disjoint from new whatever the
        # outer release is, so they are found once per check, not once per outer release.
        disjoint = [b for b in self._nestable(new, new, inside=None) if _populations_disjoint(new, b)]
        for outer in self._nestable(new, new, inside=False):
            sums = _inside_sums(outer, new)
            if sums:
                findings += _shortfalls(outer, new, [(new, sums)], min_cell)
                partners = [
                    (b, _inside_sums(outer, b))
                    for b in disjoint
                    if b.release_id != outer.release_id and b.columns >= outer.columns
                ]
                findings += _combined(outer, new, [(new, sums)], partners, min_cell)
        inners = [(b, _inside_sums(new, b)) for b in self._nestable(new, new, inside=True)]
        inners = [(b, s) for b, s in inners if s]
        for b, sums in inners:
            findings += _shortfalls(new, new, [(b, sums)], min_cell)
        findings += _combined(new, new, inners, inners, min_cell)
        return findings

    def _same_datasets(
        self, new: ReleaseDescriptor, table: Mapping[tuple[Scope, str], list[ReleaseDescriptor]]
    ) -> list[ReleaseDescriptor]:
        return list(self._unique((table.get((s, ds), []) for s in _scopes(new) for ds in new.datasets), new))

    @staticmethod
    def _check_opaque(
        new: ReleaseDescriptor, others: Iterable[ReleaseDescriptor], min_cell: int
    ) -> list[DifferencingFinding]:
        findings = []
        for other in others:
            if (
                (new.opaque and other.narrow)
                or (other.opaque and new.narrow)
                or _counts_close(new, other, min_cell)
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

    def save(self, path: Path) -> None:
        """Write every recorded release as one JSON line, in the order recorded."""
        with path.open("w", encoding="utf-8") as fh:
            for r in self._releases.values():
                fh.write(json.dumps(r.to_json(), sort_keys=True) + "\n")

    @classmethod
    def load(cls, path: Path) -> ReleaseIndex:
        """An index holding the releases :meth:`save` wrote."""
        index = cls()
        with path.open(encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    index.add(ReleaseDescriptor.from_json(json.loads(line)))
        return index


def _shortfalls(
    outer: ReleaseDescriptor,
    new: ReleaseDescriptor,
    parts: list[tuple[ReleaseDescriptor, dict[GroupKey, int]]],
    min_cell: int,
) -> list[DifferencingFinding]:
    """Findings for the cells of ``outer`` where the parts leave 0 < d < min_cell people."""
    keys = set.intersection(*(set(s) for _, s in parts))
    others = tuple(r.release_id for r in (outer, *(b for b, _ in parts)) if r.release_id != new.release_id)
    named = " + ".join(b.release_id for b, _ in parts)
    findings = []
    for key in keys:
        diff = outer.counts[key] - sum(s[key] for _, s in parts)
        if 0 < diff < min_cell:
            findings.append(
                DifferencingFinding(
                    "nested" if len(parts) == 1 else "combined",
                    others,
                    key,
                    diff,
                    f"{RULE_ID}: {outer.release_id} cell {key!r} minus {named} isolates {diff} "
                    f"people, fewer than {min_cell}",
                )
            )
    return findings


def _combined(
    outer: ReleaseDescriptor,
    new: ReleaseDescriptor,
    firsts: list[tuple[ReleaseDescriptor, dict[GroupKey, int]]],
    seconds: list[tuple[ReleaseDescriptor, dict[GroupKey, int]]],
    min_cell: int,
) -> list[DifferencingFinding]:
    """Findings for pairs of disjoint releases both inside cells of ``outer``."""
    findings = []
    for (b1, s1), (b2, s2) in itertools.product(firsts, seconds):
        # Each unordered pair once; when both lists are the same, order by id.
        if b1.release_id >= b2.release_id and firsts is seconds:
            continue
        if s2 and b1.release_id != b2.release_id and _populations_disjoint(b1, b2):
            findings += _shortfalls(outer, new, [(b1, s1), (b2, s2)], min_cell)
    return findings


_TYPES: dict[str, type[Any]] = {t.__name__: t for t in (ValueSet, Interval, ReleaseDescriptor)}


def _to_json(obj: Any) -> Any:
    """A JSON form that keeps the types JSON lacks: our dataclasses, frozensets, tuples, dates."""
    if type(obj).__name__ in _TYPES:
        return {"type": type(obj).__name__} | {f: _to_json(getattr(obj, f)) for f in obj.__dataclass_fields__}
    if isinstance(obj, frozenset):
        return {"set": sorted((_to_json(v) for v in obj), key=repr)}
    if isinstance(obj, dt.date):
        return {"date": obj.isoformat()}
    return [_to_json(v) for v in obj] if isinstance(obj, tuple) else obj


def _from_json(obj: Any) -> Any:
    if isinstance(obj, list):
        return tuple(_from_json(v) for v in obj)
    if not isinstance(obj, dict):
        return obj
    if "set" in obj:
        return frozenset(_from_json(v) for v in obj["set"])
    if "date" in obj:
        return dt.date.fromisoformat(obj["date"])
    return _TYPES[obj["type"]](**{k: _from_json(v) for k, v in obj.items() if k != "type"})
