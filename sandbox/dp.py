"""Differentially private aggregate queries, pushed down to the engine.

A policy-checked query is rewritten so the engine does the heavy work inside the enclave:

1. every row is tagged with its privacy unit (the scenario's pseudonymized person or
   enterprise), rows without one are dropped;
2. each unit keeps at most ``max_groups`` groups and at most ``max_rows`` rows, chosen at
   random by a seeded hash (a unit cannot choose which of its rows count). With one row per
   unit the choice is one hash aggregate (the unit's least row by group hash, then row
   hash); where the catalog measured the unit unique in the only table read, every row is
   already within bounds and none is ranked;
3. measures are clamped to the catalog's declared bounds — never bounds from the data —
   and summed in fixed point as integers;
4. the engine returns per-group counts, distinct-unit counts and fixed-point sums.

Then, outside the engine, :mod:`deid.dp` adds exact discrete Laplace noise, one vectorized
call per quantity; AVG is a noisy sum over a noisy count. Group keys with declared public
domains are all released (missing ones filled with noisy zeros, undeclared values
dropped); otherwise a group is released only if its noisy distinct-unit count passes a
threshold derived from ε and δ. The result carries its :class:`deid.dp.Guarantee`.

Supported shape: one SELECT over the scenario's tables (joins allowed), optional WHERE,
GROUP BY of dimensions, and COUNT(*), COUNT(DISTINCT unit), SUM and AVG of bounded
columns. Anything else under DP is refused with a ``DP-*`` rule id.
"""

from __future__ import annotations

import itertools
import math
import secrets
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
from sqlglot import exp

from deid.dp import FIXED_POINT, Guarantee, add_noise, partition_threshold, scale_for
from sandbox._render import HashPart, Renderer
from sandbox._types import KINDS
from sandbox.catalog import Tag
from sandbox.errors import PolicyViolation
from sandbox.policy import CheckedQuery, ScenarioPolicy

MAX_PUBLIC_GROUPS = 10_000
MECHANISM = "discrete Laplace (OpenDP), per-unit contribution bounding"


@dataclass(frozen=True)
class DpConfig:
    """A scenario's DP parameters: the privacy unit, per-query ε and δ, contribution bounds."""

    unit_dataset: str
    unit_column: str
    epsilon: float
    delta: float = 1e-6
    max_rows: int = 1
    max_groups: int = 1

    def __post_init__(self) -> None:
        if not (math.isfinite(self.epsilon) and self.epsilon > 0):
            raise PolicyViolation("DP-PARAMS", f"ε must be positive and finite, not {self.epsilon}")
        if not 0 <= self.delta < 1:
            raise PolicyViolation("DP-PARAMS", f"δ must be in [0, 1), not {self.delta}")
        if self.max_rows < 1 or self.max_groups < 1:
            raise PolicyViolation("DP-PARAMS", "max_rows and max_groups must be at least 1")


@dataclass(frozen=True)
class _Quantity:
    """One noised quantity the engine returns per group."""

    column: str
    sensitivity: int


@dataclass(frozen=True)
class DpPlan:
    """A rewritten query and what is needed to noise its result."""

    sql: str
    config: DpConfig
    outputs: tuple[tuple[str, str, str | None], ...]  # (name, kind, quantity or source)
    groups: tuple[str, ...]
    quantities: tuple[_Quantity, ...]
    public_domain: tuple[tuple[str, ...], ...] | None
    bounds: dict[str, tuple[float, float]]

    @property
    def cost(self) -> tuple[float, float]:
        """The (ε, δ) this query spends."""
        return self.config.epsilon, 0.0 if self.public_domain is not None else self.config.delta


def plan(
    checked: CheckedQuery,
    config: DpConfig,
    policy: ScenarioPolicy,
    renderer: Renderer | None = None,
    *,
    seed: int | None = None,
) -> DpPlan:
    """Rewrite ``checked`` for DP under ``config``; PolicyViolation with a DP-* rule if unsupported.

    ``renderer`` writes the engine SQL (DuckDB with its native hash by default) and may refuse
    what its engine cannot run identically; ``seed`` fixes the ranking hash's seed, which is
    otherwise drawn afresh, so that tests can compare engines.
    """
    renderer = renderer or Renderer()
    select = checked.statement
    _refuse_unsupported(select)
    _refuse_dimension_joins(select, policy)
    unit = _unit_column(select, config, policy)
    groups = [item.unalias() for item in select.expressions if not _is_aggregate(item)]
    outputs: list[tuple[str, str, str | None]] = []
    measures: list[exp.Expr] = []
    bounds: dict[str, tuple[float, float]] = {}
    counts = {"n": False, "units": False}
    group_index = 0
    for item in select.expressions:
        name = item.alias_or_name
        if not _is_aggregate(item):
            outputs.append((name, "group", f"__dp_g{group_index}"))
            group_index += 1
            continue
        kind, argument = _aggregate(item.unalias(), unit)
        if kind in ("sum", "avg"):
            low, high = _bounds(argument, checked, _tables(select))
            bounds[name] = (low, high)
            measures.append(_clamp(argument, low, high))
            outputs.append((name, kind, f"__dp_s{len(measures) - 1}"))
            counts["n"] |= kind == "avg"
        else:
            counts["n" if kind == "count" else "units"] = True
            outputs.append((name, kind, "__dp_n" if kind == "count" else "__dp_units"))
    public = _public_domain(groups, select, policy)
    counts["units"] |= public is None
    worst = [max(abs(lo), abs(hi)) for lo, hi in bounds.values()]
    quantities = (
        ([_Quantity("__dp_n", config.max_rows)] if counts["n"] else [])
        + ([_Quantity("__dp_units", config.max_groups)] if counts["units"] else [])
        + [
            _Quantity(f"__dp_s{j}", config.max_rows * max(1, math.ceil(w * FIXED_POINT)))
            for j, w in enumerate(worst)
        ]
    )
    unique = _unit_is_unique(select, unit, policy)
    seed = secrets.randbits(62) if seed is None else seed
    ranked = _Ranked(renderer, _unit_kind(select, unit, policy), [renderer.kind(g) for g in groups], seed)
    sql = _rewrite(select, unit, groups, measures, config, unique, ranked)
    names = tuple(f"__dp_g{i}" for i in range(len(groups)))
    return DpPlan(sql, config, tuple(outputs), names, tuple(quantities), public, bounds)


def finish(plan: DpPlan, exact: pa.Table) -> tuple[pa.Table, Guarantee]:
    """Noise the engine's exact bounded aggregates; returns the releasable table and its guarantee."""
    rows = exact.to_pylist()
    if plan.public_domain is not None:
        rows = _fill_public(rows, plan)
    epsilon_each = plan.config.epsilon / len(plan.quantities)
    noisy = {
        q.column: add_noise([r[q.column] or 0 for r in rows], q.sensitivity, epsilon_each)
        for q in plan.quantities
    }
    threshold = None
    keep = list(range(len(rows)))
    if plan.public_domain is None:
        threshold = partition_threshold(plan.config.max_groups, epsilon_each, plan.config.delta)
        keep = [i for i in keep if noisy["__dp_units"][i] >= threshold]
    columns: dict[str, list[Any]] = {name: [] for name, _, _ in plan.outputs}
    for i in keep:
        for name, kind, source in plan.outputs:
            columns[name].append(_value(kind, source, rows[i], noisy, i, plan.bounds.get(name)))
    guarantee = Guarantee(
        mechanism=MECHANISM,
        epsilon=plan.config.epsilon,
        delta=plan.cost[1],
        privacy_unit=f"{plan.config.unit_dataset}.{plan.config.unit_column}",
        max_rows=plan.config.max_rows,
        max_groups=plan.config.max_groups,
        bounds=plan.bounds,
        scales={q.column: scale_for(q.sensitivity, epsilon_each) for q in plan.quantities},
        threshold=threshold,
        public_keys=plan.public_domain is not None,
        suppressed_groups=len(rows) - len(keep),
    )
    return pa.table(columns) if keep else pa.table({n: pa.array([], pa.null()) for n in columns}), guarantee


def _value(
    kind: str, source: str | None, row: dict[str, Any], noisy: dict[str, list[int]], i: int,
    bounds: tuple[float, float] | None,
) -> Any:  # fmt: skip
    if kind == "group":
        return row[str(source)]
    if kind in ("count", "count_distinct"):
        return max(0, noisy[str(source)][i])
    total = noisy[str(source)][i] / FIXED_POINT
    if kind == "sum":
        return total
    assert bounds is not None
    return min(max(total / max(1, noisy["__dp_n"][i]), bounds[0]), bounds[1])


def _fill_public(rows: list[dict[str, Any]], plan: DpPlan) -> list[dict[str, Any]]:
    """Every combination of the declared group values, with zeros where the data has none."""
    assert plan.public_domain is not None
    found = {tuple(r[g] for g in plan.groups): r for r in rows}
    filled = []
    for key in itertools.product(*plan.public_domain):
        row = found.get(key) or {q.column: 0 for q in plan.quantities}
        filled.append({**row, **dict(zip(plan.groups, key, strict=True))})
    return filled


def _refuse_unsupported(select: exp.Select) -> None:
    for key, what in (("with_", "CTEs"), ("having", "HAVING"), ("order", "ORDER BY"), ("limit", "LIMIT"),
                      ("offset", "OFFSET"), ("distinct", "SELECT DISTINCT")):  # fmt: skip
        if select.args.get(key):
            raise PolicyViolation("DP-SHAPE", f"{what} is not supported under differential privacy yet", key)
    if any(select.find_all(exp.Subquery)):
        raise PolicyViolation("DP-SHAPE", "subqueries are not supported under differential privacy yet")


def _refuse_dimension_joins(select: exp.Select, policy: ScenarioPolicy) -> None:
    """Under DP every join must equate identifiers.

    A join on a dimension (``r.district = s.district``) copies one person's rows into many
    other units' rows, beyond the reach of per-unit bounding. Lookups through another
    identifier domain (an employee's employer's industry) treat the looked-up attributes as
    belonging to the looked-up entity, not as contributions of other persons.
    """
    tables = _tables(select)
    for join in select.args.get("joins") or []:
        for equality in (join.args.get("on") or exp.true()).find_all(exp.EQ):
            for side in (equality.left, equality.right):
                if not isinstance(side, exp.Column) or not _is_identifier(side, tables, policy):
                    raise PolicyViolation(
                        "DP-JOIN",
                        "under DP, tables join only on identifiers, never on dimensions",
                        equality.sql(),
                    )


def _is_identifier(column: exp.Column, tables: dict[str, str], policy: ScenarioPolicy) -> bool:
    names = [tables[column.table]] if column.table else list(tables.values())
    return any(
        c.name == column.name and c.tag is Tag.IDENTIFIER
        for name in names
        for c in policy.datasets[name].columns
    )


def _unit_column(select: exp.Select, config: DpConfig, policy: ScenarioPolicy) -> exp.Column:
    """The privacy unit as a column of the first table that carries it."""
    unit = policy.datasets[config.unit_dataset].column(config.unit_column)
    if unit.tag is not Tag.IDENTIFIER:
        raise PolicyViolation("DP-UNIT", f"the privacy unit {config.unit_column} must be an identifier")
    for table in select.find_all(exp.Table):
        dataset = policy.datasets.get(table.name)
        for column in dataset.columns if dataset else ():
            if column.tag is Tag.IDENTIFIER and column.join_domain == unit.join_domain:
                return exp.column(column.name, table=table.alias_or_name)
    raise PolicyViolation(
        "DP-UNIT",
        f"no table in the query carries the privacy unit ({unit.join_domain}), "
        "so contributions cannot be bounded",
    )


def _is_aggregate(item: exp.Expr) -> bool:
    return isinstance(item.unalias(), exp.AggFunc)


def _aggregate(node: exp.Expr, unit: exp.Column) -> tuple[str, exp.Expr | None]:
    if isinstance(node, exp.Count):
        argument = node.this
        if isinstance(argument, exp.Star):
            return "count", None
        if isinstance(argument, exp.Distinct) and len(argument.expressions) == 1:
            target = argument.expressions[0]
            if isinstance(target, exp.Column) and target.name == unit.name:
                return "count_distinct", None
        raise PolicyViolation(
            "DP-AGGREGATE",
            "under DP, count rows with COUNT(*) or units with COUNT(DISTINCT unit)",
            node.sql(),
        )
    if isinstance(node, exp.Sum | exp.Avg):
        return ("sum" if isinstance(node, exp.Sum) else "avg"), node.this
    raise PolicyViolation(
        "DP-AGGREGATE", f"{node.key.upper()} is not supported under differential privacy", node.sql()
    )


def _tables(select: exp.Select) -> dict[str, str]:
    """Table alias (or name) → table name, for the tables the query reads."""
    return {t.alias_or_name: t.name for t in select.find_all(exp.Table)}


def _bounds(argument: exp.Expr | None, checked: CheckedQuery, tables: dict[str, str]) -> tuple[float, float]:
    if not isinstance(argument, exp.Column):
        raise PolicyViolation("DP-AGGREGATE", "SUM and AVG take a bare bounded column under DP")
    names = {tables[argument.table]} if argument.table else set(tables.values())
    found = [
        b for (table, column), b in checked.measures.items() if column == argument.name and table in names
    ]
    if len(found) != 1:
        raise PolicyViolation("DP-BOUNDS", f"{argument.sql()} has no single declared bound", argument.sql())
    return found[0]


def _clamp(argument: exp.Expr | None, low: float, high: float) -> exp.Expr:
    assert argument is not None
    value = exp.cast(argument.copy(), "DOUBLE")
    return exp.func("LEAST", exp.func("GREATEST", value, exp.Literal.number(low)), exp.Literal.number(high))


def _public_domain(
    groups: list[exp.Expr], select: exp.Select, policy: ScenarioPolicy
) -> tuple[tuple[str, ...], ...] | None:
    """The declared public values of every group key, if all have them and the product is small."""
    domains = []
    tables = _tables(select)
    for group in groups:
        if not isinstance(group, exp.Column):
            return None
        candidates = (
            [policy.datasets[tables[group.table]]]
            if group.table
            else [policy.datasets[t] for t in tables.values()]
        )
        declared = [c.domain for d in candidates for c in d.columns if c.name == group.name and c.domain]
        if not declared:
            return None
        domains.append(declared[0])
    size = math.prod(len(d) for d in domains) if domains else 1
    return tuple(domains) if size <= MAX_PUBLIC_GROUPS else None


def _unit_is_unique(select: exp.Select, unit: exp.Column, policy: ScenarioPolicy) -> bool:
    """Whether each unit has at most one row of the query: one table, measured unique in it."""
    tables = list(select.find_all(exp.Table))
    if (
        len(tables) != 1
        or select.args.get("joins")
        or any(select.find_all(exp.Unnest, exp.Explode, exp.Lateral))
    ):
        return False
    return unit.name in policy.datasets[tables[0].name].unique_columns


def _unit_kind(select: exp.Select, unit: exp.Column, policy: ScenarioPolicy) -> str | None:
    """The type family of the privacy unit's column, as the catalog declares it."""
    return KINDS.get(policy.datasets[_tables(select)[unit.table]].column(unit.name).type)


@dataclass(frozen=True)
class _Ranked:
    """How a rewrite ranks rows: the renderer, the families of the unit and groups, and the seed."""

    renderer: Renderer
    unit_kind: str | None
    group_kinds: list[str | None]
    seed: int


def _rewrite(
    select: exp.Select,
    unit: exp.Column,
    groups: list[exp.Expr],
    measures: list[exp.Expr],
    config: DpConfig,
    unique: bool,
    ranked: _Ranked,
) -> str:
    r = ranked.renderer
    inner = select.copy()
    items = [exp.alias_(unit.copy(), "__dp_unit")]
    items += [exp.alias_(g.copy(), f"__dp_g{i}") for i, g in enumerate(groups)]
    items += [exp.alias_(m, f"__dp_m{j}") for j, m in enumerate(measures)]
    inner.set("expressions", items)
    inner.set("group", None)
    g = [f"__dp_g{i}" for i in range(len(groups))]
    m = [f"__dp_m{j}" for j in range(len(measures))]
    grouping = f" GROUP BY {', '.join(g)}" if g else ""
    sums = "".join(f", {r.fixed_point_sum(f'__dp_m{j}')} AS __dp_s{j}" for j in range(len(measures)))
    # Every interpolated piece is generated here from validated parts, never user text.
    rows = f"WITH __dp_rows AS ({r.sql(inner)}), "
    if unique:
        # A unit with one row at most is within every bound already: no unit to rank.
        counts = ", ".join([*g, "COUNT(*) AS __dp_n", "COUNT(*) AS __dp_units"])
        return (
            rows + "__dp_kept AS (SELECT * FROM __dp_rows WHERE __dp_unit IS NOT NULL) "  # noqa: S608
            f"SELECT {counts}{sums} FROM __dp_kept{grouping}"
        )
    # Ranks use a seeded hash so a unit cannot choose which of its groups and rows count;
    # the columns after the hash break ties, so the choice is a total order.
    unit_part: list[HashPart] = [("__dp_unit", ranked.unit_kind)]
    group_parts: list[HashPart] = list(zip(g, ranked.group_kinds, strict=True))
    measure_parts: list[HashPart] = [(c, "float") for c in m]  # clamped to DOUBLE
    group_hash = r.seeded_hash(unit_part + group_parts, ranked.seed)
    row_hash = r.seeded_hash(unit_part + group_parts + measure_parts, ranked.seed + 1)
    if config.max_rows == 1:
        # One row per unit lands in one group, so the unit's least row by (group hash, group,
        # row hash, measures) is the whole choice: one hash aggregate instead of two sorts.
        # Groups may be NULL; hashes and clamped measures never are (LEAST and GREATEST skip NULLs).
        fields = r.least_fields(
            [("__dp_gh", group_hash), *((c, c) for c in g), ("__dp_rh", row_hash), *((c, c) for c in m)], g
        )
        picked = ", ".join(f"__dp_row.{c} AS {c}" for c in [*g, *m]) or "1 AS __dp_one"
        counts = ", ".join([*g, "COUNT(*) AS __dp_n", "COUNT(*) AS __dp_units"])
        return (
            rows + f"__dp_least AS (SELECT min({r.struct(fields)}) AS __dp_row FROM __dp_rows "  # noqa: S608
            "WHERE __dp_unit IS NOT NULL GROUP BY __dp_unit), "
            f"__dp_kept AS (SELECT {picked} FROM __dp_least) "
            f"SELECT {counts}{sums} FROM __dp_kept{grouping}"
        )
    counts = ", ".join([*g, "COUNT(*) AS __dp_n", "COUNT(DISTINCT __dp_unit) AS __dp_units"])
    return (
        rows + "__dp_groups AS (SELECT *, DENSE_RANK() OVER "  # noqa: S608
        f"(PARTITION BY __dp_unit ORDER BY {r.ordering([group_hash, *g])}) AS __dp_grank "
        "FROM __dp_rows WHERE __dp_unit IS NOT NULL), "
        "__dp_kept AS (SELECT *, ROW_NUMBER() OVER "
        f"(PARTITION BY __dp_unit ORDER BY {r.ordering([row_hash, *g, *m])}) AS __dp_rrank "
        f"FROM __dp_groups WHERE __dp_grank <= {config.max_groups}) "
        f"SELECT {counts}{sums} FROM __dp_kept WHERE __dp_rrank <= {config.max_rows}{grouping}"
    )
