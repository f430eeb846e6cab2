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

Index (``outbound_review._difference_index``). Releases are bucketed by scope, dataset set,
and the set of columns their cells constrain (filter ∪ grouping): ``b`` inside ``a`` requires
``B``'s columns to include ``A``'s, so a check visits only buckets whose column set is a
superset or subset of ``N``'s. Combinations are not tried pair by pair: every recorded
release's cells are kept summed onto each grouping in use, sorted per cell, so only the
releases whose sums leave 1 … ``min_cell − 1`` people are tested (found by binary search), and
releases of one shape that contain ``N`` share that work. A check costs in proportion to the
releases comparable with ``N``, not to pairs of them; its findings, and their order, are those
of trying every pair.

Not claimed: overlaps that do not nest (``[20, 40]`` vs ``[30, 50]``), combinations of
three or more releases besides ``A``, value-set complements that need the column's domain
(``NOT IN S`` inside ``IN T``), and releases of unrelated operators in other scenarios.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import operator
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from outbound_review._difference_index import (
    GroupKey,
    Interval,
    Predicate,
    ReleaseStore,
    Value,
    ValueSet,
    close_pairs,
    counts_close,
    filters_inside,
    inside_shape,
    inside_sums,
    leaves_few,
    populations_disjoint,
)
from outbound_review.errors import ReviewError

__all__ = [
    "RULE_ID",
    "DifferencingFinding",
    "FindingKind",
    "GroupKey",
    "Interval",
    "Predicate",
    "ReleaseDescriptor",
    "ReleaseIndex",
    "Value",
    "ValueSet",
]

RULE_ID = "SDC-DIFFERENCING"
FindingKind = Literal["nested", "combined", "opaque"]


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

    def _key_of(self, columns: tuple[str, ...]) -> Callable[[GroupKey], GroupKey] | None:
        """A function from a cell's key to its values on ``columns`` (each grouped or fixed by
        the filter to one value), or None if the cells do not pin them all."""
        at: list[int] = []
        fixed: list[Value] = []
        for c in columns:
            pin = self._pins.get(c)
            if pin is None:
                return None
            # A value the filter fixes is read from past the end of the key, where it is appended.
            at.append(pin[0] if pin[0] >= 0 else len(self.grouping) + len(fixed))
            if pin[0] < 0:
                fixed.append(pin[1])
        extra = tuple(fixed)
        if len(at) < 2:
            # One column or none: a 1-tuple, or the values the filter fixes (possibly none).
            return (lambda key: extra) if fixed or not at else (lambda key: (key[at[0]],))
        get = operator.itemgetter(*at)
        return (lambda key: get(key + extra)) if fixed else get

    @cached_property
    def _pins(self) -> dict[str, tuple[int, Value]]:
        # The grouping overrides the filter on a column it shares, as in cell_predicates.
        pins: dict[str, tuple[int, Value]] = {
            c: (-1, next(iter(q.values)))
            for c, q in self.filter
            if isinstance(q, ValueSet) and not q.negated and len(q.values) == 1
        }
        pins.update((c, (i, None)) for i, c in enumerate(self.grouping))
        return pins

    @cached_property
    def _filter_map(self) -> dict[str, Predicate]:
        return dict(self.filter)

    @cached_property
    def _residual(self) -> tuple[tuple[str, Predicate], ...]:
        """The filter on the columns the release does not group (those constrain every cell)."""
        return tuple((c, q) for c, q in self.filter if c not in self.grouping)

    @cached_property
    def _sorted_counts(self) -> list[int]:
        return sorted(self.counts.values())


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


class ReleaseIndex:
    """Earlier releases, indexed so a new one meets only those it could be differenced with."""

    def __init__(self) -> None:
        self._releases: dict[str, ReleaseDescriptor] = {}
        self._store = ReleaseStore()

    def __len__(self) -> int:
        return len(self._releases)

    def add(self, release: ReleaseDescriptor) -> None:
        """Record a release as released; its id must be new."""
        if release.release_id in self._releases:
            raise ReviewError(f"{RULE_ID}: release {release.release_id} is already recorded")
        self._releases[release.release_id] = release
        self._store.add(release)

    def check(self, new: ReleaseDescriptor, min_cell: int) -> list[DifferencingFinding]:
        """Every way ``new`` and the recorded releases isolate fewer than ``min_cell`` people.

        ``new`` itself is not recorded; call :meth:`add` once it is released.
        """
        store = self._store
        if new.opaque:
            return self._check_opaque(new, store.same_datasets(new, opaque=False), min_cell)
        findings = self._check_opaque(new, store.same_datasets(new, opaque=True), min_cell)
        outers, inners = store.comparable(new)
        return findings + self._around(new, outers, min_cell) + self._within(new, inners, min_cell)

    def _around(
        self, new: ReleaseDescriptor, outers: list[ReleaseDescriptor], min_cell: int
    ) -> list[DifferencingFinding]:
        """Findings where an earlier release contains ``new``: alone, or with one disjoint from it."""
        findings: list[DifferencingFinding] = []
        shapes: dict[_Shape, dict[GroupKey, int]] = {}
        outcomes: dict[tuple[_Shape, tuple[int | None, ...]], _Outcome] = {}
        search = _Partners(self._store, new, min_cell)
        for outer in outers:
            shape = outer.grouping, outer._residual
            if shape not in shapes:
                shapes[shape] = inside_shape(*shape, new)
            if not shapes[shape]:
                continue
            # Outers of one shape with the same counts in the cells new reaches behave alike.
            counts = tuple(map(outer.counts.get, shapes[shape]))
            if (shape, counts) not in outcomes:
                outcomes[shape, counts] = search.outcome(outer, shapes[shape], counts)
            sums, nested, partners = outcomes[shape, counts]
            if nested:
                findings += _shortfalls(outer, new, [(new, sums)], min_cell)
            parts = [(b, inside_sums(outer, b)) for b in partners if b.release_id != outer.release_id]
            if parts:
                findings += _combined(outer, new, [(new, sums)], parts, min_cell)
        return findings

    def _within(
        self, new: ReleaseDescriptor, inners: list[ReleaseDescriptor], min_cell: int
    ) -> list[DifferencingFinding]:
        """Findings where earlier releases lie inside ``new``: one alone, or two disjoint ones."""
        parts = [(b, sums) for b in inners if (sums := self._store.inside_sums(new, b))]
        findings = []
        for b, sums in parts:
            if any(0 < new.counts[k] - v < min_cell for k, v in sums.items()):
                findings += _shortfalls(new, new, [(b, sums)], min_cell)
        # Each pair once, the lower id first, in the order of the list: as trying every pair would.
        ordered = sorted(
            (i, j) if parts[i][0].release_id < parts[j][0].release_id else (j, i)
            for i, j in close_pairs([s for _, s in parts], new.counts, min_cell)
        )
        for i, j in ordered:
            if populations_disjoint(parts[i][0], parts[j][0]):
                findings += _shortfalls(new, new, [parts[i], parts[j]], min_cell)
        return findings

    @staticmethod
    def _check_opaque(
        new: ReleaseDescriptor, others: Iterable[ReleaseDescriptor], min_cell: int
    ) -> list[DifferencingFinding]:
        findings = []
        for other in others:
            if (
                (new.opaque and other.narrow)
                or (other.opaque and new.narrow)
                or counts_close(new, other, min_cell)
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


_Shape = tuple[tuple[str, ...], tuple[tuple[str, Predicate], ...]]
# new's sums in the cells an outer release has, whether new alone leaves too few people in one,
# and the earlier releases that leave too few with new (in the order ReleaseStore.place gives).
_Outcome = tuple[dict[GroupKey, int], bool, list[ReleaseDescriptor]]


class _Partners:
    """For one check of ``new``, what it meets inside each shape of release containing it."""

    def __init__(self, store: ReleaseStore, new: ReleaseDescriptor, min_cell: int) -> None:
        self._store, self._new, self._min_cell = store, new, min_cell
        # Releases disjoint from new, by the columns they group (found when first needed).
        self._grouping: dict[str, list[ReleaseDescriptor]] | None = None
        # A release's cells summed by a grouping's values, and the largest such sum.
        self._bounds: dict[tuple[str, tuple[str, ...]], tuple[int, dict[GroupKey, int]] | None] = {}

    def outcome(
        self, outer: ReleaseDescriptor, inside: dict[GroupKey, int], counts: tuple[int | None, ...]
    ) -> _Outcome:
        """What ``new`` meets in ``outer``, given ``new``'s sums by ``outer``'s shape and
        ``outer``'s counts in those cells (None where it has none); the same for every
        release of that shape with those counts, apart from leaving itself out as a partner."""
        new, store, min_cell = self._new, self._store, self._min_cell
        rests = [(k, c - v) for (k, v), c in zip(inside.items(), counts, strict=True) if c is not None]
        sums = {k: inside[k] for k, _ in rests}
        columns, to_sorted = store.canonical(outer.grouping)
        sorted_rests = rests if to_sorted is None else [(to_sorted(k), rest) for k, rest in rests]
        candidates = store.window(new, columns, sorted_rests, min_cell)
        residual = {c for c, _ in outer._residual}
        if residual and rests:
            # Only some cells of a release grouping a column outer filters lie inside outer, so
            # its sums by outer's grouping only bound what it puts there: those within reach of
            # leaving too few people are tested directly.
            if self._grouping is None:
                self._grouping = {}
                for b in store.disjoint_from(new):
                    for c in b.grouping:
                        self._grouping.setdefault(c, []).append(b)
            # Releases whose cells, summed by outer's grouping, put no more in any cell than
            # leaves min_cell people there are ruled out before their cells are tested.
            reach = {k: rest - min_cell for k, rest in rests}
            lowest = min(reach.values())
            for c in residual:
                for b in self._grouping.get(c, ()):
                    if b.release_id in candidates or not b.columns >= outer.columns:
                        continue
                    bound = self._bound(b, outer.grouping)
                    if (
                        bound is not None
                        and bound[0] > lowest
                        and filters_inside(b, outer)
                        and any(total > reach.get(k, total) for k, total in bound[1].items())
                    ):
                        candidates[b.release_id] = b
        partners = [
            b
            for b in candidates.values()
            if b.release_id != new.release_id
            and b.columns >= outer.columns
            and populations_disjoint(new, b)
            and leaves_few(inside_shape(outer.grouping, outer._residual, b), rests, min_cell)
        ]
        partners.sort(key=lambda b: store.place(new, b))
        return sums, any(0 < rest < min_cell for _, rest in rests), partners

    def _bound(
        self, b: ReleaseDescriptor, grouping: tuple[str, ...]
    ) -> tuple[int, dict[GroupKey, int]] | None:
        """``b``'s cells summed by ``grouping``'s values with the largest sum, once per check."""
        at = b.release_id, grouping
        if at not in self._bounds:
            sums = self._store.sums_by(b, grouping)
            self._bounds[at] = (max(sums.values()), sums) if sums else None
        return self._bounds[at]


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
        if s2 and b1.release_id != b2.release_id and populations_disjoint(b1, b2):
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
