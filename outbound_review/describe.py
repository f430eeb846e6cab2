"""Release descriptors from checked queries: what population each released cell counts.

The differencing control (:mod:`outbound_review.differencing`) compares populations, so a
release is described by its WHERE clause as per-column predicates and its GROUP BY as
grouping columns, with the exact count behind each cell taken from the evidence measured
in the enclave (never the released, possibly rounded, value). Only what can be described
exactly is: a conjunction of ``col = v``, ``col IN (…)``, ``col <> v``, ``col NOT IN (…)``,
``BETWEEN`` and comparisons with literals over bare columns, grouped by bare columns.
Anything else makes the release opaque, which the control treats conservatively.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pyarrow as pa
from sqlglot import exp

from outbound_review.differencing import Interval, Predicate, ReleaseDescriptor, ValueSet

_COMPARISONS = {exp.GT: (False, None), exp.GTE: (True, None), exp.LT: (None, False), exp.LTE: (None, True)}


def describe_release(
    statement: exp.Select,
    datasets: Iterable[str],
    result: pa.Table,
    evidence: Mapping[str, Any],
    *,
    release_id: str,
    scenario: str,
    operator: str,
) -> ReleaseDescriptor:
    """Describe a released aggregate result for the differencing control."""
    grouping, grouped_exactly = _grouping(statement)
    filters = _filters(statement.args.get("where"))
    counts = _cell_counts(evidence)
    opaque = filters is None or not grouped_exactly or counts is None or bool(statement.args.get("having"))
    cells: dict[tuple[Any, ...], int] = {}
    if counts is not None:
        for row, count in zip(result.to_pylist(), counts, strict=True):
            cells[tuple(row[name] for name in grouping)] = int(count)
    return ReleaseDescriptor.create(
        release_id,
        scenario,
        operator,
        datasets,
        cells,
        filter=filters or {},
        grouping=grouping,
        opaque=opaque,
    )


def _grouping(statement: exp.Select) -> tuple[list[str], bool]:
    """Output names of the grouping columns, and whether every one is a bare column."""
    names, exact = [], True
    for item in statement.expressions:
        node = item.unalias()
        if isinstance(node, exp.AggFunc):
            continue
        names.append(item.alias_or_name)
        exact &= isinstance(node, exp.Column) and item.alias_or_name == node.name
    return names, exact


def _cell_counts(evidence: Mapping[str, Any]) -> Sequence[int] | None:
    counts = evidence.get("cell_counts") or {}
    for column in (*evidence.get("count_columns", ()), *evidence.get("magnitude_columns", ())):
        if column in counts:
            return list(counts[column])
    return None


def _filters(where: exp.Where | None) -> dict[str, Predicate] | None:
    """The WHERE clause as one predicate per column, or None when it cannot be described exactly."""
    if where is None:
        return {}
    found: dict[str, Predicate] = {}
    for conjunct in _conjuncts(where.this):
        described = _predicate(conjunct)
        if described is None or described[0] in found:
            return None
        found[described[0]] = described[1]
    return found


def _conjuncts(node: exp.Expr) -> list[exp.Expr]:
    if isinstance(node, exp.And):
        return _conjuncts(node.left) + _conjuncts(node.right)
    return [node.unnest()]


def _predicate(node: exp.Expr) -> tuple[str, Predicate] | None:
    negated = isinstance(node, exp.Not)
    target = node.this.unnest() if negated else node
    if isinstance(target, exp.EQ | exp.NEQ) and isinstance(target.left, exp.Column):
        value = _literal(target.right)
        if value is _MISSING:
            return None
        return target.left.name, ValueSet(frozenset([value]), negated=negated != isinstance(target, exp.NEQ))
    if isinstance(target, exp.In) and isinstance(target.this, exp.Column) and not target.args.get("query"):
        values = [_literal(v) for v in target.expressions]
        if _MISSING in values:
            return None
        return target.this.name, ValueSet(frozenset(values), negated=negated)
    if negated:
        return None
    if isinstance(target, exp.Between) and isinstance(target.this, exp.Column):
        low, high = _literal(target.args["low"]), _literal(target.args["high"])
        return None if _MISSING in (low, high) else (target.this.name, Interval(low, high))
    for kind, (low_closed, high_closed) in _COMPARISONS.items():
        if isinstance(target, kind) and isinstance(target.left, exp.Column):
            value = _literal(target.right)
            if value is _MISSING:
                return None
            if low_closed is not None:
                return target.left.name, Interval(low=value, low_closed=low_closed)
            return target.left.name, Interval(high=value, high_closed=bool(high_closed))
    return None


_MISSING = object()


def _literal(node: exp.Expr) -> Any:
    if isinstance(node, exp.Literal):
        return node.this if node.is_string else float(node.this) if "." in node.this else int(node.this)
    if isinstance(node, exp.Boolean):
        return node.this
    return _MISSING
