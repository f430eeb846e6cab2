"""Feature queries for model jobs: row-level outputs, under a stricter policy than aggregate queries.

A model trains on rows, so its features cannot pass the aggregate-only query policy. A feature
query is one flat SELECT over the scenario's tables (joins only on the unit's identifiers, WHERE filters
as the query policy allows) whose outputs are bare columns: exactly one identifier, the privacy
unit, used only to bound contributions; every other output a ``measure`` or ``sensitive`` column
(with its declared bounds) or a ``dimension`` with a declared public domain, one-hot encoded in
the training job. The query policy's parser, structural rules and scope analysis
(:mod:`sandbox.policy`) run as for any query; the rules here, in ``FEATURE_RULES`` order, come
first and name every refusal ``F-*``.

The rows never leave the enclave: :func:`bounded_sql` wraps the checked query so the engine keeps
at most ``max_rows`` rows per privacy unit, chosen by a seeded hash as :mod:`sandbox.dp` does,
clamps measures to their declared bounds and drops the unit; the result goes from the worker pool
straight into the confined training job.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlglot import exp

from sandbox._lineage import Analysis, Lineage, Source
from sandbox._rules import is_aggregate, set_args
from sandbox._scope import Scope
from sandbox.catalog import Tag
from sandbox.dp import _clamp
from sandbox.errors import PolicyViolation
from sandbox.policy import _MAX_DEPTH, MAX_SQL_CHARS, RULES, Rule, ScenarioPolicy, _parse

BOOLEAN_DOMAIN = ("false", "true")
"""The public domain of a BOOLEAN dimension that declares none: its type fixes it."""
_FLAT = {"expressions", "from_", "joins", "where"}
_AGGREGATING = {"group", "having", "qualify", "windows"}
_LIMITING = {"order", "limit", "offset", "sample"}
# The query policy's refusals that have a feature rule of their own; the rest are F-POLICY.
_FROM_POLICY = {"P-SIZE": "F-PARSE", "P-PARSE": "F-PARSE", "P-ONE-STATEMENT": "F-PARSE"}
_FROM_POLICY |= {"P-SELECT-ONLY": "F-SHAPE", "P-COLUMN-HIDDEN": "F-HIDDEN", "P-SENSITIVE": "F-SENSITIVE"}


def _shape(node: exp.Expr) -> str | None:
    if node.parent is None and not isinstance(node, exp.Select):
        return "a feature query is a single SELECT"
    if isinstance(node, exp.Select) and node.parent is not None:
        return "subqueries and CTEs are not allowed in a feature query: select from the tables directly"
    if isinstance(node, exp.Select) and (extra := set_args(node) - _FLAT - _AGGREGATING - _LIMITING):
        return f"SELECT with {', '.join(sorted(extra))} is not supported in a feature query"
    return None


def _aggregate(node: exp.Expr) -> str | None:
    if is_aggregate(node) or isinstance(node, exp.Window):
        return "features are rows: no aggregates or window functions"
    if isinstance(node, exp.Select) and (found := set_args(node) & _AGGREGATING):
        return f"features are rows: no {', '.join(sorted(found)).upper()}"
    return None


def _limit(node: exp.Expr) -> str | None:
    if isinstance(node, exp.Order | exp.Limit | exp.Offset | exp.Fetch | exp.TableSample):
        return "no LIMIT, OFFSET, ORDER BY or SAMPLE: choosing rows is contribution bounding's job"
    return None


def _output(node: exp.Expr) -> str | None:
    select = node.parent
    if not (isinstance(select, exp.Select) and select.parent is None and node.arg_key == "expressions"):
        return None
    column = node.unalias()
    if not (isinstance(column, exp.Column) and isinstance(column.this, exp.Identifier)):
        return "a feature is a bare column (renaming is fine), never an expression or *"
    if [item.alias_or_name for item in select.expressions].count(node.alias_or_name) > 1:
        return f"two outputs are called {node.alias_or_name}; rename one"
    return None


FEATURE_RULES: list[Rule] = [
    Rule("F-PARSE", "the SQL is at most 100,000 characters and parses as one statement"),
    Rule("F-SHAPE", "one flat SELECT: no CTE, subquery, set operation, DISTINCT or LATERAL", _shape),
    Rule("F-AGGREGATE", "no aggregate, window function, GROUP BY, HAVING or QUALIFY", _aggregate),
    Rule("F-LIMIT", "no LIMIT, OFFSET, ORDER BY or SAMPLE", _limit),
    Rule("F-OUTPUT", "outputs are bare columns with distinct names, at least one besides the unit", _output),
    Rule("F-POLICY", "every other query policy rule (P-*) holds; the refusal names the P rule"),
    Rule("F-HIDDEN", "hidden columns are never referenced"),
    Rule("F-SENSITIVE", "sensitive columns are features only where the scenario allows DP; never filtered"),
    Rule("F-IDENT-OUTPUT", "one identifier is output: the privacy unit, which never reaches the model"),
    Rule("F-QUASI", "quasi-identifiers are never output (filtering on them is fine)"),
    Rule("F-DOMAIN", "a dimension output has a declared public domain (BOOLEAN: false and true)"),
    Rule("F-UNIT", "the identifier output is in the join domain of the job's privacy unit"),
    Rule("F-JOIN", "joins only on identifiers of the unit's join domain, so every row is its unit's"),
    Rule("F-LABEL", "a label is one output: a dimension for classifiers, a measure for regressors"),
]
"""Every feature query rule. Those with a check run in this order over the whole statement, before
the query policy's own; the others apply as names resolve and outputs are classified."""


@dataclass(frozen=True)
class Feature:
    """One model column of a feature query: a bounded measure, or a dimension with a public domain."""

    name: str
    source: Source
    tag: Tag
    bounds: tuple[float, float] | None = None
    domain: tuple[str, ...] | None = None


@dataclass(frozen=True)
class CheckedFeatures:
    """A feature query that passed every rule: its privacy unit output and its features, in order."""

    sql: str
    statement: exp.Select
    tables: frozenset[str]
    unit: str
    unit_domain: str
    features: tuple[Feature, ...]

    def render(self) -> str:
        """The checked statement as DuckDB SQL: the only text that may be executed."""
        return self.statement.sql(dialect="duckdb", comments=False)

    def feature(self, name: str) -> Feature | None:
        """The feature output called ``name``, if there is one."""
        return next((f for f in self.features if f.name == name), None)


def refuse(rule_id: str, message: str, fragment: str = "") -> PolicyViolation:
    """The violation of feature rule ``rule_id``."""
    assert any(rule.id == rule_id for rule in FEATURE_RULES), rule_id
    return PolicyViolation(rule_id, message, fragment)


def check_features(sql: str, policy: ScenarioPolicy) -> CheckedFeatures:
    """Check a feature query against ``policy``; PolicyViolation with an ``F-*`` rule if it breaks one."""
    if len(sql) > MAX_SQL_CHARS:
        raise refuse("F-PARSE", f"the SQL is longer than {MAX_SQL_CHARS:,} characters", f"{len(sql):,} chars")
    try:
        statement = _parse(sql)
        for rule in [*FEATURE_RULES, *RULES]:
            if rule.check is None:
                continue
            for node in statement.walk():
                if (message := rule.check(node)) is not None:
                    raise PolicyViolation(rule.id, message, node.sql(dialect="duckdb", comments=False))
        assert isinstance(statement, exp.Select)
        analysis = Analysis(policy)
        # An inner scope passes bare columns through, identifiers included; the rules below
        # decide what each output may be.
        relation = Scope(analysis, statement, {}, outer=False).check().relation
    except RecursionError:
        raise refuse("F-PARSE", f"the query nests deeper than {_MAX_DEPTH} levels") from None
    except PolicyViolation as exc:
        if exc.rule in {rule.id for rule in FEATURE_RULES}:
            raise
        reason = f"{exc.reason} (query policy rule {exc.rule})"
        raise refuse(_FROM_POLICY.get(exc.rule, "F-POLICY"), reason, exc.fragment) from None
    outputs = []
    for item in statement.expressions:
        lineage = relation[item.alias_or_name]
        assert lineage is not None  # output names are distinct (F-OUTPUT)
        outputs.append((item.alias_or_name, lineage))
    identifiers = [(name, lineage) for name, lineage in outputs if lineage.tag is Tag.IDENTIFIER]
    if len(identifiers) > 1:
        message = "only the privacy unit may be output; other identifiers only join tables"
        raise refuse("F-IDENT-OUTPUT", message, identifiers[1][0])
    for name, lineage in outputs:
        if lineage.tag is Tag.QUASI_IDENTIFIER:
            raise refuse("F-QUASI", "quasi-identifiers are not model features; filter on them instead", name)
    features = tuple(
        _feature(name, lineage, policy) for name, lineage in outputs if lineage.tag is not Tag.IDENTIFIER
    )
    if not identifiers:
        raise refuse("F-UNIT", "output the privacy unit's identifier, so contributions can be bounded")
    if not features:
        raise refuse("F-OUTPUT", "there is nothing to train on besides the privacy unit", identifiers[0][0])
    unit, lineage = identifiers[0]
    assert lineage.domain is not None  # the catalog gives every identifier a join domain
    _check_joins(statement, policy, lineage.domain)
    return CheckedFeatures(sql, statement, frozenset(analysis.tables), unit, lineage.domain, features)


def _check_joins(statement: exp.Select, policy: ScenarioPolicy, domain: str) -> None:
    """Refuse a join that could copy one unit's data into another unit's rows.

    Contributions are bounded per unit, so a row must hold only its unit's data: joined on a
    dimension or on another entity's identifier, one person's values could reach every row.
    """
    tables = {table.alias_or_name: table.name for table in statement.find_all(exp.Table)}
    for join in statement.args.get("joins") or []:
        keys = [(join.this.alias_or_name, key.name) for key in join.args.get("using") or []]
        on = join.args.get("on")
        keys += [(column.table, column.name) for column in (on.find_all(exp.Column) if on else [])]
        for table, name in keys:
            candidates = [tables[table]] if table else list(tables.values())
            found = [c for t in candidates for c in policy.datasets[t].columns if c.name == name]
            if not found or any(c.tag is not Tag.IDENTIFIER or c.join_domain != domain for c in found):
                message = f"join on identifiers of the privacy unit's join domain ({domain}) only"
                raise refuse("F-JOIN", message, join.sql(dialect="duckdb", comments=False))


def _feature(name: str, lineage: Lineage, policy: ScenarioPolicy) -> Feature:
    (source,) = lineage.sources
    if lineage.tag is Tag.DIMENSION:
        column = policy.datasets[source[0]].column(source[1])
        domain = column.domain or (BOOLEAN_DOMAIN if column.type == "BOOLEAN" else None)
        if domain is None:
            raise refuse("F-DOMAIN", "a dimension feature needs a declared public domain of values", name)
        return Feature(name, source, lineage.tag, domain=domain)
    assert lineage.bounds is not None  # the catalog declares bounds for every measure and sensitive column
    return Feature(name, source, lineage.tag, bounds=lineage.bounds)


def bounded_sql(checked: CheckedFeatures, max_rows: int, seed: int) -> str:
    """The engine SQL for ``checked``: at most ``max_rows`` rows per unit, measures clamped, unit dropped.

    Its columns are ``__f0``, ``__f1``, … in the order of ``checked.features``; dimensions come
    as text, compared with their declared domain in the training job. Rows with no unit or a
    NULL feature are left out before the rows per unit are chosen.
    """
    values = []
    for feature in checked.features:
        column = exp.column(feature.name, quoted=True)
        value = _clamp(column, *feature.bounds) if feature.bounds else exp.cast(column, "VARCHAR")
        values.append(value.sql(dialect="duckdb"))
    names = [f"__f{i}" for i in range(len(values))]
    unit = exp.column(checked.unit, quoted=True).sql(dialect="duckdb")
    outputs = ", ".join(f"{value} AS {name}" for value, name in zip(values, names, strict=True))
    present = " AND ".join(f"{name} IS NOT NULL" for name in ["__f_unit", *names])
    listed = ", ".join(names)
    # Ranks use a seeded hash so a unit cannot choose which of its rows count; the columns after
    # it break ties. The final order is seeded too, so a fixed seed gives the same rows in order.
    return (
        f"WITH __f_source AS ({checked.render()}), "  # noqa: S608 - every piece is generated or checked
        f"__f_rows AS (SELECT {unit} AS __f_unit, {outputs} FROM __f_source), "
        "__f_kept AS (SELECT *, ROW_NUMBER() OVER (PARTITION BY __f_unit "
        f"ORDER BY hash(__f_unit, {listed}, {seed}), {listed}) AS __f_rank FROM __f_rows WHERE {present}) "
        f"SELECT {listed} FROM __f_kept WHERE __f_rank <= {max_rows} "
        f"ORDER BY hash(__f_unit, __f_rank, {seed + 1}), {listed}"
    )
