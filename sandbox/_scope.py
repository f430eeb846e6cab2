"""The scope analyser: each SELECT of a statement checked against the scenario's column tags.

Scopes are checked one by one, inner before outer, with the tag lineage of ``sandbox._lineage``:
a column binds as DuckDB binds it or is refused, and each clause is checked in SQL's logical
order. A predicate, and a CASE whose every result is a literal, yield a dimension: their values
are those literals or true/false/null (the columns they read are still recorded). SUM and AVG
take a bare measure column, so clamping it to its declared bounds is all a later stage needs;
an aggregate made in an inner scope has no declared bounds and is re-aggregated only by COUNT.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from sqlglot import exp

from sandbox import _rules, _types
from sandbox._lineage import Analysis, Lineage, Relation, Source, merge
from sandbox._rules import refuse
from sandbox.catalog import Tag
from sandbox.errors import PolicyViolation

_GROUPABLE = (Tag.DIMENSION, Tag.QUASI_IDENTIFIER)
_AGGREGATES = (exp.Count, exp.Sum, exp.Avg, exp.Filter)
_IDENT_RULES = {"where": "P-IDENT-FILTER", "having": "P-IDENT-FILTER", "join": "P-IDENT-FILTER"}
_IDENT_RULES |= {"group": "P-IDENT-GROUP", "filter": "P-AGGREGATE"}
_Found = list[tuple[str, Lineage]]


@dataclass(frozen=True)
class Output:
    """One column of the result: a grouped dimension or an aggregate, and the columns feeding it."""

    name: str
    kind: Literal["dimension", "aggregate"]
    function: str | None
    sources: frozenset[Source]


@dataclass(frozen=True)
class Shape:
    """What a scope outputs: the relation an outer scope reads, its result columns and GROUP BY keys."""

    relation: Relation
    outputs: tuple[Output, ...]
    group_by: tuple[str, ...]


def _label(item: exp.Expr) -> str:
    """An output column's name: its alias or column name, else its SQL text."""
    if isinstance(item, exp.Alias):
        return item.alias
    return item.unnest().name if isinstance(item.unnest(), exp.Column) else item.sql("duckdb", comments=False)


def _children(node: exp.Expr) -> list[tuple[str, exp.Expr]]:
    """The value arguments of ``node`` by key: date parts and CAST target types are not values."""
    skip = {_rules.UNIT_ARGS.get(type(node)), "to" if isinstance(node, exp.Cast) else None}
    values = [
        (k, v)
        for k, value in node.args.items()
        if k not in skip
        for v in (value if isinstance(value, list) else [value])
    ]
    return [(k, v) for k, v in values if isinstance(v, exp.Expr)]


def _results(node: exp.Expr) -> list[exp.Expr]:
    """The values a CASE or IF can return."""
    branches = [branch.args.get("true") for branch in node.args.get("ifs") or []]
    found = [*branches, node.args.get("default"), node.args.get("true"), node.args.get("false")]
    return [r for r in found if r is not None]


class Scope:
    """One SELECT: its sources, then its clauses in SQL's logical order, then its outputs."""

    def __init__(
        self, analysis: Analysis, select: exp.Select, ctes: dict[str, Relation], outer: bool
    ) -> None:
        self.analysis, self.select, self.ctes, self.outer = analysis, select, dict(ctes), outer
        self.relations: list[tuple[str | None, Relation]] = []
        self.visible = 0  # how many relations a column may bind to: a join condition sees fewer
        self.merged: set[tuple[int, str]] = set()  # a USING join's right-hand columns
        self.aliases: dict[str, exp.Expr | None] = {}  # None marks an alias given twice
        self.found: _Found = []  # aggregates met in the expression at hand
        self.in_aggregate = False

    def check(self) -> Shape:
        """Check this scope and every scope inside it; return what it outputs."""
        with_ = self.select.args.get("with_")
        for cte in with_.expressions if with_ else []:
            if cte.alias in self.analysis.policy.datasets or cte.alias in self.ctes:
                raise refuse("P-SCOPE", "a CTE may not reuse the name of a table or another CTE", cte)
            self.ctes[cte.alias] = self._inner(cte.this, cte)
        from_, joins = self.select.args.get("from_"), self.select.args.get("joins") or []
        for source in [from_.this, *(join.this for join in joins)] if from_ else []:
            self._add(source)
        columns = set().union(*(relation.keys() for _, relation in self.relations))
        if clash := {name for name, _ in self.relations if name} & columns:
            # DuckDB reads a bare table name as the whole row: never let one pass for a column.
            raise refuse("P-COLUMN-UNKNOWN", f"{min(clash)} names both a table and a column", self.select)
        for right, join in enumerate(joins, start=1):
            self.visible = right + 1
            self._join(join, right)
        self.visible = len(self.relations)
        for item in self.select.expressions:
            if isinstance(item, exp.Alias):
                self.aliases[item.alias] = None if item.alias in self.aliases else item.this
        return self._clauses()

    def _inner(self, query: exp.Expr, node: exp.Expr) -> Relation:
        if not isinstance(query, exp.Select):
            raise refuse("P-SCOPE", "only a SELECT may define a subquery or CTE", node)
        return Scope(self.analysis, query, self.ctes, outer=False).check().relation

    def _add(self, source: exp.Expr) -> None:
        name: str | None = source.alias_or_name or None
        if isinstance(source, exp.Subquery):
            relation = self._inner(source.this, source)
        elif source.name in self.ctes:
            relation = self.ctes[source.name]
        elif source.name in self.analysis.policy.datasets:
            relation = self.analysis.base(self.analysis.policy.datasets[source.name])
        else:
            raise refuse("P-TABLE", f"{source.name} is not a table of this scenario", source)
        if name is not None and any(name == other for other, _ in self.relations):
            raise refuse("P-COLUMN-UNKNOWN", f"two tables in scope are called {name}; alias one", source)
        self.relations.append((name, relation))

    def _join(self, join: exp.Join, right: int) -> None:
        for identifier in join.args.get("using") or []:
            self.visible, name = right, identifier.name  # the earlier tables must name it once
            pair = [self._find(exp.column(name))[1], self.relations[right][1].get(name)]
            self._join_pair(pair, identifier, using=True)
            self.merged.add((right, name))
        self.visible = right + 1
        on = join.args["on"].unnest() if join.args.get("on") else None
        for condition in list(on.flatten()) if isinstance(on, exp.And) else [on] if on else []:
            sides = [s.unnest() for s in condition.args.values()] if isinstance(condition, exp.EQ) else []
            if not (sides and all(isinstance(s, exp.Column) for s in sides)):
                self._eval(condition, "join")
                raise refuse("P-JOIN", "ON takes only equalities between columns; filter in WHERE", condition)
            found = [self._find(side) for side in sides]
            if sorted(index == right for index, _ in found) != [False, True]:
                raise refuse("P-JOIN", "each ON equality links the joined table to an earlier one", condition)
            self._join_pair([lineage for _, lineage in found], condition)

    def _join_pair(self, pair: list[Lineage | None], node: exp.Expr, using: bool = False) -> None:
        lineages = [self._checked(lineage, node) for lineage in pair]
        _types.agree([x.kind for x in lineages], node)
        tags, domains = {x.tag for x in lineages}, {x.domain for x in lineages}
        if not (tags == {Tag.IDENTIFIER} and len(domains) == 1 and None not in domains) and (
            using or tags != {Tag.DIMENSION}
        ):
            raise refuse("P-JOIN", "join on identifiers of one join domain (or ON equal dimensions)", node)

    def _find(self, column: exp.Column) -> tuple[int, Lineage | None]:
        """The relation ``column`` binds to, as DuckDB binds it, and its lineage; refuse if unclear."""
        if _rules.set_args(column) - {"this", "table"}:
            raise refuse("P-COLUMN-UNKNOWN", "columns are qualified by a table name only", column)
        name, relations = column.name, list(enumerate(self.relations[: self.visible]))
        if column.table:
            found = [(i, r) for i, (alias, r) in relations if alias == column.table and name in r]
        elif any(alias == name for _, (alias, _) in relations):
            raise refuse("P-COLUMN-UNKNOWN", f"{name} names a table, not a column", column)
        else:
            found = [(i, r) for i, (_, r) in relations if name in r and (i, name) not in self.merged]
        if len(found) != 1:
            raise refuse("P-COLUMN-UNKNOWN", "the column is unknown or ambiguous here", column)
        return found[0][0], found[0][1][name]

    def _checked(self, lineage: Lineage | None, node: exp.Expr) -> Lineage:
        if lineage is None:
            raise refuse("P-COLUMN-UNKNOWN", "no single column of this name on each side", node)
        if lineage.tag is Tag.HIDDEN:
            raise refuse("P-COLUMN-HIDDEN", "this column is hidden in this scenario", node)
        self.analysis.columns.update(lineage.sources)
        return lineage

    def _resolve(self, column: exp.Column) -> Lineage:
        lineage = self._checked(self._find(column)[1], column)
        if self.analysis.kinds is not None:
            self.analysis.note(column, lineage.kind)
        return lineage

    def _clauses(self) -> Shape:
        where, group, having = (self.select.args.get(k) for k in ("where", "group", "having"))
        if where:
            self._condition(self._expand(where.this), "where")
        keys = [self._keyed(key) for key in group.expressions] if group else []
        for key in keys:
            if self._eval(key, "group", bare=True).tag not in _GROUPABLE:
                raise refuse("P-GROUP", "group by dimensions (bucket a measure with CASE)", key)
        canon = {self._canon(k) for k in keys}
        items = [self._expand(item.unalias()) for item in self.select.expressions]
        aggregated = bool(keys or having) or any(item.find(*_AGGREGATES) for item in items)
        if having:
            self._covered(self._condition(self._expand(having.this), "having"), canon)
        # Every output is evaluated before any is classified, so an identifier or sensitive
        # column is reported as such rather than as an ungrouped value.
        evaluated = [self._evaluated(item, aggregated) for item in items]
        relation: Relation = {}
        outputs: list[Output] = []
        for original, item, (lineage, found) in zip(self.select.expressions, items, evaluated, strict=True):
            if aggregated or self.outer:
                outputs.append(self._output(_label(original), item, lineage, found, canon))
            # DuckDB names other outputs after their SQL text; those stay out of reach here.
            if isinstance(original, exp.Alias) or isinstance(original.unnest(), exp.Column):
                name = _label(original)
                relation[name] = None if name in relation else lineage
        if self.outer and not aggregated and self.relations:
            raise refuse("P-OUTPUT", "the outermost SELECT must aggregate (or GROUP BY)", self.select)
        order = self.select.args.get("order")
        for ordered in order.expressions if order else []:
            key = self._keyed(ordered.this)
            self._output("", key, *self._evaluated(key, True, "order"), canon)
        names = {self._canon(item): output.name for item, output in zip(items, outputs, strict=False)}
        shown = [names.get(self._canon(k), k.sql("duckdb", comments=False)) for k in keys]
        return Shape(relation, tuple(outputs), tuple(shown))

    def _condition(self, node: exp.Expr, clause: str) -> exp.Expr:
        """Check a WHERE, HAVING or FILTER condition, which must be a true boolean."""
        _types.agree([self._eval(node, clause).kind, "bool"], node)
        return node

    def _keyed(self, key: exp.Expr) -> exp.Expr:
        """A GROUP BY or ORDER BY key as DuckDB binds it: an output's position or alias, or an expression."""
        if isinstance(key, exp.Literal) and not key.is_string and key.name.isdigit():
            if not 0 < int(key.name) <= len(self.select.expressions):
                raise refuse("P-COLUMN-UNKNOWN", "there is no output column at this position", key)
            return self._expand(self.select.expressions[int(key.name) - 1].unalias())
        return self._expand(key)

    def _expand(self, node: exp.Expr, depth: int = 0) -> exp.Expr:
        """A copy of ``node`` with references to output aliases replaced by what they name."""

        def swap(child: exp.Expr) -> exp.Expr:
            if not (isinstance(child, exp.Column) and not child.table and child.name in self.aliases):
                return child
            target = self.aliases[child.name]
            if isinstance(target, exp.Column) and target.name == child.name:
                return child
            if any(child.name in r for _, r in self.relations):
                raise refuse("P-COLUMN-UNKNOWN", "this name is both a column and an output alias", child)
            if target is None or depth > len(self.aliases):
                raise refuse("P-COLUMN-UNKNOWN", "this output alias is ambiguous or circular", child)
            return self._expand(target, depth + 1)

        return node.transform(swap)

    def _evaluated(self, node: exp.Expr, aggregated: bool, clause: str = "output") -> tuple[Lineage, _Found]:
        """The lineage of an output (or ORDER BY key) and the aggregates in it."""
        self.found, column = [], node.unnest()
        if aggregated or self.outer or not isinstance(column, exp.Column):
            return self._eval(node, clause, bare=aggregated or self.outer), self.found
        # An inner scope passes a raw column out, for an outer scope to aggregate.
        lineage = self._resolve(column)
        if lineage.tag is Tag.SENSITIVE and not self.analysis.policy.allow_dp:
            raise self._sensitive(node)
        return lineage, self.found

    def _output(self, name: str, node: exp.Expr, lineage: Lineage, found: _Found, canon: set[str]) -> Output:
        self._covered(node, canon)
        if len(found) > 1:
            raise refuse("P-OUTPUT", "one aggregate per output column", node)
        if found:
            return Output(name, "aggregate", found[0][0], found[0][1].sources)
        if lineage.tag not in _GROUPABLE:
            raise refuse("P-OUTPUT", "measures are output only aggregated", node)
        return Output(name, "dimension", None, lineage.sources)

    def _covered(self, node: exp.Expr, canon: set[str]) -> None:
        """Refuse a value outside aggregates that is not a function of the GROUP BY keys."""
        if self._canon(node) in canon or isinstance(node, _AGGREGATES):
            return
        if isinstance(node, exp.Column):
            raise refuse("P-OUTPUT", "a value that is neither aggregated nor grouped", node)
        for _, child in _children(node):
            self._covered(child, canon)

    def _canon(self, node: exp.Expr) -> str:
        """A structural key for ``node``, with columns named by the relation they bind to."""
        if isinstance(node, exp.Paren):
            return self._canon(node.this)
        if isinstance(node, exp.Column):
            return f"column({self._find(node)[0]}.{node.name})"
        values = [v if isinstance(v, list) else [v] for v in node.args.values()]
        parts = [",".join(self._canon(x) if isinstance(x, exp.Expr) else repr(x) for x in v) for v in values]
        return f"{node.key}({'; '.join(parts)})"

    def _sensitive(self, node: exp.Expr) -> PolicyViolation:
        if not self.analysis.policy.allow_dp:
            return refuse("P-SENSITIVE", "sensitive columns require differential privacy (allow_dp)", node)
        return refuse(
            "P-SENSITIVE", "sensitive columns are summed or averaged in the outer SELECT list only", node
        )

    def _eval(self, node: exp.Expr, clause: str, bare: bool = False) -> Lineage:
        """The lineage of ``node`` in ``clause``, refusing identifiers and sensitive columns in it."""
        lineage = self._lineage(node.unnest(), clause, bare)
        if self.analysis.kinds is not None:
            self.analysis.note(node, lineage.kind)
        return lineage

    def _lineage(self, node: exp.Expr, clause: str, bare: bool) -> Lineage:
        if isinstance(node, exp.Column):
            lineage = self._resolve(node)
            if lineage.tag is Tag.IDENTIFIER:
                rule = _IDENT_RULES.get(clause) or ("P-IDENT-OUTPUT" if bare else "P-IDENT-EXPR")
                raise refuse(rule, "identifiers only join tables or go inside COUNT(DISTINCT …)", node)
            if lineage.tag is Tag.SENSITIVE:
                raise self._sensitive(node)
            return lineage
        if isinstance(node, _AGGREGATES):
            return self._aggregate(node, clause)
        if type(node) not in _rules.SCALARS:  # the structural rules let nothing else through
            raise refuse("P-FUNCTION", "this is not understood here", node)
        parts: dict[str, list[Lineage]] = {}
        for key, child in _children(node):
            parts.setdefault(key, []).append(self._eval(child, clause))
        merged = merge(
            [p for ps in parts.values() for p in ps],
            _types.kind_of(node, {k: [p.kind for p in ps] for k, ps in parts.items()}),
        )
        if isinstance(node, _rules.PREDICATES) or (
            isinstance(node, exp.Case | exp.If) and all(map(_rules.is_constant, _results(node)))
        ):
            return replace(merged, tag=Tag.DIMENSION)
        return merged

    def _aggregate(self, node: exp.Expr, clause: str) -> Lineage:
        if clause not in ("output", "having", "order") or self.in_aggregate:
            raise refuse("P-AGGREGATE", "aggregates go in SELECT, HAVING or ORDER BY, one level deep", node)
        if isinstance(node, exp.Filter):
            self._condition(node.expression.this, "filter")
            node = node.this
        self.in_aggregate = True
        try:
            function, lineage = self._call(node, clause)
        finally:
            self.in_aggregate = False
        self.found.append((function, lineage))
        kind = "float" if function == "avg" else lineage.kind if function == "sum" else "int"
        return Lineage(Tag.MEASURE, lineage.sources, kind, derived=True)

    def _call(self, node: exp.Expr, clause: str) -> tuple[str, Lineage]:
        argument = node.this.unnest() if isinstance(node.this, exp.Expr) else None
        if distinct := isinstance(argument, exp.Distinct):
            argument = argument.expressions[0].unnest()
        if argument is None or isinstance(argument, exp.Star):
            return "count", Lineage(Tag.DIMENSION)
        if isinstance(node, exp.Count) and not distinct:
            return "count", self._eval(argument, "output")
        lineage = (
            self._resolve(argument) if isinstance(argument, exp.Column) else self._eval(argument, "output")
        )
        # Only the outermost select list is noised: HAVING and ORDER BY would use the exact value.
        noised = self.outer and clause == "output" and self.analysis.policy.allow_dp
        if lineage.tag is Tag.SENSITIVE and (distinct or not noised):
            raise self._sensitive(node)
        if distinct:
            if lineage.tag is Tag.DIMENSION or (lineage.tag is Tag.IDENTIFIER and lineage.domain):
                return "count_distinct", lineage
            raise refuse("P-AGGREGATE", "COUNT(DISTINCT …) counts an identifier or a dimension", node)
        if lineage.derived:
            raise refuse(
                "P-SCOPE", "an inner aggregate has no declared bounds: re-aggregate with COUNT", node
            )
        if lineage.tag not in (Tag.MEASURE, Tag.SENSITIVE) or lineage.bounds is None:
            raise refuse("P-AGGREGATE", "SUM and AVG take a measure column with declared bounds", node)
        if lineage.tag is Tag.SENSITIVE:
            self.analysis.sensitive.update(lineage.sources)
        (source,) = lineage.sources
        self.analysis.measures[source] = lineage.bounds
        return node.key, lineage
