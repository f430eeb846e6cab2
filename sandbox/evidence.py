"""Per-cell evidence for the disclosure checks, measured inside the enclave with the result.

The outbound-review checks need, for every output row of an aggregate result, how many
rows and contributors stand behind each aggregate, and for sums and means the largest
contributions and the total (minimum cell count, dominance and p% rules). A second query
over the same rows and groups computes them in the same isolated workers; the evidence is
stored with the quarantined result for the review gate and never shown to the submitter.

A contributor is the first table's first identifier (a person or an enterprise); tables
without one count each row as its own contributor. Query shapes the rewrite does not
cover (CTEs, subqueries, HAVING) get no evidence, which the checks treat as a failure.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
from sqlglot import exp

from sandbox._render import Renderer
from sandbox.catalog import Tag
from sandbox.policy import CheckedQuery, ScenarioPolicy

TOP = 3


def evidence_sql(
    checked: CheckedQuery, policy: ScenarioPolicy, renderer: Renderer | None = None
) -> str | None:
    """The query that measures each output cell's contributors, or None for unsupported shapes.

    ``renderer`` writes it for an engine (DuckDB by default) and may refuse what that engine
    cannot run identically.
    """
    renderer = renderer or Renderer()
    select = checked.statement
    source = select.args.get("from_")
    if source is None or not isinstance(source.this, exp.Table):
        return None
    if any(select.args.get(k) for k in ("with_", "having", "distinct")) or any(select.find_all(exp.Subquery)):
        return None
    groups = [item.unalias() for item in select.expressions if not isinstance(item.unalias(), exp.AggFunc)]
    measures = [
        _measure(item.unalias()) for item in select.expressions if isinstance(item.unalias(), exp.AggFunc)
    ]
    inner = select.copy()
    unit = _contributor(source.this, policy)
    items = [exp.alias_(unit, "__ev_unit")]
    items += [exp.alias_(g.copy(), f"__ev_g{i}") for i, g in enumerate(groups)]
    items += [exp.alias_(m, f"__ev_m{j}") for j, m in enumerate(measures)]
    inner.set("expressions", items)
    for clause in ("group", "order", "limit", "offset"):
        inner.set(clause, None)
    g = [f"__ev_g{i}" for i in range(len(groups))]
    per_unit = ", ".join(
        [
            *g,
            "__ev_unit",
            "COUNT(*) AS __ev_n",
            *(f"SUM(__ev_m{j}) AS __ev_c{j}" for j in range(len(measures))),
        ]
    )
    per_cell = ", ".join(
        [*g, "SUM(__ev_n) AS __ev_rows", "COUNT(*) AS __ev_units"]
        + [f"SUM(__ev_c{j}) AS __ev_total{j}" for j in range(len(measures))]
        + [f"{renderer.top(f'__ev_c{j}', TOP)} AS __ev_top{j}" for j in range(len(measures))]
    )
    keys = ", ".join([*g, "__ev_unit"])
    grouping = f" GROUP BY {', '.join(g)}" if g else ""
    # Every interpolated piece is generated here from the checked statement, never user text.
    return (
        f"WITH __ev_rows AS ({renderer.sql(inner)}), "  # noqa: S608
        f"__ev_units AS (SELECT {per_unit} FROM __ev_rows GROUP BY {keys}) "
        f"SELECT {per_cell} FROM __ev_units{grouping}"
    )


def align(checked: CheckedQuery, result: pa.Table, measured: pa.Table) -> dict[str, Any]:
    """Evidence in the review gate's shape, one entry per row of ``result``."""
    outputs = [(item.alias_or_name, item.unalias()) for item in checked.statement.expressions]
    dimensions = [name for name, node in outputs if not isinstance(node, exp.AggFunc)]
    aggregates = [(name, node) for name, node in outputs if isinstance(node, exp.AggFunc)]
    by_key = {tuple(r[f"__ev_g{i}"] for i in range(len(dimensions))): r for r in measured.to_pylist()}
    rows = [by_key.get(tuple(r[d] for d in dimensions), {}) for r in result.to_pylist()]
    evidence: dict[str, Any] = {
        "kind": "aggregate",
        "dimension_columns": dimensions,
        "count_columns": [n for n, node in aggregates if isinstance(node, exp.Count)],
        "magnitude_columns": [n for n, node in aggregates if not isinstance(node, exp.Count)],
        "cell_counts": {},
        "top_contributions": {},
        "cell_totals": {},
    }
    for j, (name, node) in enumerate(aggregates):
        if isinstance(node, exp.Count):
            distinct = isinstance(node.this, exp.Distinct)
            evidence["cell_counts"][name] = [
                int(r.get("__ev_units" if distinct else "__ev_rows", 0)) for r in rows
            ]
            continue
        evidence["cell_counts"][name] = [int(r.get("__ev_units", 0)) for r in rows]
        evidence["cell_totals"][name] = [float(r.get(f"__ev_total{j}") or 0.0) for r in rows]
        evidence["top_contributions"][name] = [
            [float(v) for v in (r.get(f"__ev_top{j}") or []) if v is not None and v > 0] for r in rows
        ]
    return evidence


def _measure(node: exp.Expr) -> exp.Expr:
    argument = node.this
    if isinstance(node, exp.Count) or not isinstance(argument, exp.Expr):
        return exp.Literal.number(1)
    return exp.cast(argument.copy(), "DOUBLE")


def _contributor(first: exp.Table, policy: ScenarioPolicy) -> exp.Expr:
    dataset = policy.datasets[first.name]
    for column in dataset.columns:
        if column.tag is Tag.IDENTIFIER:
            return exp.column(column.name, table=first.alias_or_name)
    return exp.Window(this=exp.RowNumber())
