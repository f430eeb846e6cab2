"""The query policy's rules: one ordered registry, the SQL subset it allows and the structural checks.

``RULES`` lists every rule a submitted query can break, each with a stable id (the one a
refusal names) and a one-line description. Rules that carry a structural ``check`` look at
one syntax node at a time, need no catalog, and run over the whole statement in this list's
order before any name is resolved, so the first rule in the list that a statement breaks is
the one reported. The remaining rules, and the parts of the structural ones that need the
scenario's tags, are applied by the scope analyser in ``sandbox._scope`` clause by clause, with
the type families of ``sandbox._types``.

Everything here is an allow-list: a node type or argument that is not named is refused.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlglot import exp

from sandbox.errors import PolicyViolation

NodeCheck = Callable[[exp.Expr], str | None]


@dataclass(frozen=True)
class Rule:
    """One policy rule: its stable id, what it refuses, and its structural check if any."""

    id: str
    description: str
    check: NodeCheck | None = None


RULES: list[Rule] = []
"""Every policy rule, in the order their structural checks run; see the module docstring."""


def _rule(rule_id: str, description: str) -> Callable[[NodeCheck], NodeCheck]:
    def register(check: NodeCheck) -> NodeCheck:
        RULES.append(Rule(rule_id, description, check))
        return check

    return register


def _scoped(rule_id: str, description: str) -> None:
    RULES.append(Rule(rule_id, description))


def refuse(rule_id: str, message: str, node: exp.Expr | str = "") -> PolicyViolation:
    """The violation of registered rule ``rule_id`` by ``node`` (a syntax node or SQL text)."""
    assert any(r.id == rule_id for r in RULES), rule_id
    try:
        fragment = node if isinstance(node, str) else node.sql(dialect="duckdb", comments=False)
    except Exception:  # a node sqlglot cannot print is still refused, named by its type
        fragment = node.key.upper() if isinstance(node, exp.Expr) else ""
    return PolicyViolation(rule_id, message, fragment)


# DuckDB aggregates that sqlglot leaves anonymous: named only so that refusing them blames
# the aggregate rule. Nothing in this set is ever allowed.
_AGGREGATE_NAMES = {"arbitrary", "histogram", "histogram_exact", "list", "mode", "product", "fsum", "favg"}
_AGGREGATE_NAMES |= {"sumkahan", "kahan_sum", "entropy", "kurtosis", "kurtosis_pop", "skewness", "mad"}
_AGGREGATE_NAMES |= {"approx_quantile", "reservoir_quantile", "bitstring_agg", "max_by", "min_by"}
_ALLOWED_AGGREGATES = (exp.Count, exp.Sum, exp.Avg)
_SELECT_ARGS = {"with_", "expressions", "distinct", "from_", "joins", "where", "group", "having", "order"}
_SELECT_ARGS |= {"limit", "offset", "qualify", "windows", "sample", "laterals"}
_JOIN_TYPES = {(None, None), (None, "INNER"), ("LEFT", None), ("LEFT", "OUTER")}
_DATE_PARTS = {"year", "quarter", "month", "week", "day", "hour", "minute", "second", "dow", "doy"}
_DATE_PARTS |= {"isodow", "isoyear", "decade", "century"}
# CAST targets allowed, with the type family (see sandbox._types) each yields.
CAST_TYPES = {getattr(exp.DataType.Type, name): kind for kind, names in {
    "text": "TEXT VARCHAR CHAR", "int": "TINYINT SMALLINT INT BIGINT DECIMAL", "float": "DOUBLE",
    "date": "DATE TIMESTAMP TIMESTAMPNTZ", "bool": "BOOLEAN"}.items() for name in names.split()}  # fmt: skip
_CONSTANT_PARTS: tuple[type[exp.Expr], ...] = (exp.Literal, exp.Null, exp.Boolean, exp.Neg, exp.Paren)
_CONSTANT_PARTS += (exp.Cast, exp.DataType, exp.DataTypeParam)
_THIS, _BINARY = frozenset({"this"}), frozenset({"this", "expression"})
_COMPARISONS = (exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE, exp.NullSafeEQ, exp.NullSafeNEQ)
# Scalar node types the policy understands, with the arguments each may carry. Flags sqlglot
# sets while parsing (``safe``, ``ignore_nulls``, …) are listed because they change nothing
# the policy cares about. Integer division and modulo are left out: they fail on zero.
SCALARS: dict[type[exp.Expr], frozenset[str]] = {
    **dict.fromkeys((exp.Add, exp.Sub, exp.Mul, exp.And, exp.Or, exp.Nullif, exp.Extract), _BINARY),
    **dict.fromkeys(_COMPARISONS, _BINARY),
    **dict.fromkeys((exp.Like, exp.ILike, exp.Is), _BINARY | {"negate"}),
    exp.Div: _BINARY | {"typed", "safe"},
    exp.DPipe: _BINARY | {"safe"},
    **dict.fromkeys((exp.Neg, exp.Not, exp.Paren, exp.Abs, exp.Year, exp.Month, exp.Day, exp.Quarter), _THIS),
    **dict.fromkeys((exp.Lower, exp.Upper, exp.Length, exp.Null, exp.Boolean, exp.Var), _THIS),
    exp.DataTypeParam: _THIS,
    exp.Literal: frozenset({"this", "is_string"}),
    exp.In: frozenset({"this", "expressions"}),
    exp.Between: frozenset({"this", "low", "high"}),
    exp.Case: frozenset({"ifs", "default"}),
    exp.If: frozenset({"this", "true", "false"}),
    exp.Cast: frozenset({"this", "to"}),
    exp.TryCast: frozenset({"this", "to", "safe"}),
    exp.Coalesce: frozenset({"this", "expressions"}),
    **dict.fromkeys((exp.Round, exp.Floor, exp.Ceil), frozenset({"this", "decimals"})),
    **dict.fromkeys((exp.Least, exp.Greatest), frozenset({"this", "expressions", "ignore_nulls"})),
    **dict.fromkeys((exp.TimestampTrunc, exp.DateTrunc), frozenset({"this", "unit"})),
    exp.DateDiff: frozenset({"this", "expression", "unit", "date_part_boundary"}),
    exp.Substring: frozenset({"this", "start", "length"}),
    exp.Concat: frozenset({"expressions", "safe", "coalesce"}),
    exp.DataType: frozenset({"this", "expressions", "nested"}),
}  # fmt: skip
PREDICATES = (exp.Predicate, exp.Connector, exp.Not, exp.In, exp.Between, exp.Like, exp.ILike, exp.Is)
# The argument naming a date part: it must be a literal word, never a column.
UNIT_ARGS: dict[type[exp.Expr], str] = {exp.TimestampTrunc: "unit", exp.DateTrunc: "unit"}
UNIT_ARGS |= {exp.DateDiff: "unit", exp.Extract: "this"}
# Clause-level nodes: their own rules check their arguments.
_STRUCTURE: tuple[type[exp.Expr], ...] = (exp.Select, exp.From, exp.Join, exp.Table, exp.TableAlias, exp.With)
_STRUCTURE += (exp.Where, exp.Group, exp.Having, exp.Order, exp.Ordered, exp.Limit, exp.Offset, exp.Exists)
_STRUCTURE += (exp.Column, exp.Identifier, exp.Star, exp.Distinct, exp.Filter, exp.Alias, exp.Subquery)
_STRUCTURE += (exp.CTE,)


def set_args(node: exp.Expr) -> set[str]:
    """The argument keys ``node`` actually carries (unset, false and empty ones left out)."""
    return {k for k, v in node.args.items() if v is not None and v is not False and v != []}


def is_constant(node: exp.Expr) -> bool:
    """True if ``node`` is built from literals alone (no column, aggregate or subquery)."""
    return all(isinstance(n, _CONSTANT_PARTS) for n in node.walk())


def is_aggregate(node: exp.Expr) -> bool:
    """True for any aggregate call, allowed or not, including DuckDB's unnamed ones."""
    if isinstance(node, exp.Anonymous):
        return node.name.lower() in _AGGREGATE_NAMES
    return isinstance(node, exp.AggFunc)


def _in_outer_projection(node: exp.Expr) -> bool:
    child, parent = node, node.parent
    while parent is not None and not isinstance(parent, exp.Select):
        child, parent = parent, parent.parent
    return parent is not None and parent.parent is None and child.arg_key == "expressions"


def _is_source(node: exp.Expr) -> bool:
    """True if ``node`` is what a FROM, JOIN or CTE reads from."""
    return isinstance(node.parent, exp.From | exp.Join | exp.CTE) and node.arg_key == "this"


def _subquery_expression(node: exp.Expr) -> bool:
    """True for a query used as a value (sqlglot accepts one even without parentheses)."""
    if isinstance(node, exp.Select):
        return node.parent is not None and not isinstance(
            node.parent, exp.Subquery | exp.CTE | exp.SetOperation
        )
    return isinstance(node, exp.Exists) or (isinstance(node, exp.Subquery) and not _is_source(node))


def _ancestors(node: exp.Expr) -> list[exp.Expr]:
    """Ancestors of ``node`` up to (not including) its enclosing query."""
    found, parent = [], node.parent
    while parent is not None and not isinstance(parent, exp.Select | exp.Subquery):
        found.append(parent)
        parent = parent.parent
    return found


_scoped("P-SIZE", "SQL text longer than 100,000 characters is refused before parsing")
_scoped("P-PARSE", "the SQL parses into a statement tree nested at most 200 levels deep")
_scoped("P-ONE-STATEMENT", "exactly one statement (a trailing semicolon is fine)")


@_rule("P-SELECT-ONLY", "only a SELECT: no DML, DDL, commands, settings, PIVOT or FROM-first raw rows")
def _select_only(node: exp.Expr) -> str | None:
    if node.parent is None and not isinstance(node, exp.Select | exp.SetOperation):
        return f"only a SELECT query may run, not {node.key.upper()}"
    if isinstance(node, exp.Pivot | exp.DML | exp.DDL):
        return f"{node.key.upper()} is not a plain SELECT"
    if isinstance(node, exp.Select) and (extra := set_args(node) - _SELECT_ARGS):
        return f"SELECT with {', '.join(sorted(extra))} is not supported"
    return None


@_rule("P-SET-OP", "no UNION, INTERSECT or EXCEPT")
def _set_op(node: exp.Expr) -> str | None:
    return "set operations are not allowed" if isinstance(node, exp.SetOperation) else None


@_rule("P-WINDOW", "no window functions (OVER), WINDOW clauses or QUALIFY")
def _window(node: exp.Expr) -> str | None:
    if isinstance(node, exp.Window | exp.Qualify) or (
        isinstance(node, exp.Select) and node.args.get("windows")
    ):
        return "window functions compute per-row values and are not allowed"
    return None


@_rule("P-STAR", "no * or t.* in a projection; COUNT(*) is fine")
def _star(node: exp.Expr) -> str | None:
    if isinstance(node, exp.Column) and isinstance(node.this, exp.Star):
        return "t.* selects raw rows"
    if isinstance(node, exp.Star) and (set_args(node) or not isinstance(node.parent, exp.Count)):
        return "* selects raw rows; name the columns and aggregate them"
    return None


@_rule("P-TABLE-FUNCTION", "no table functions, UNNEST or VALUES lists as tables")
def _table_function(node: exp.Expr) -> str | None:
    if isinstance(node, exp.Values | exp.Unnest):
        return f"{node.key.upper()} is not a scenario table"
    if isinstance(node, exp.Table) and not isinstance(node.this, exp.Identifier):
        return "table functions are not allowed; read the scenario's tables by name"
    if _is_source(node) and not isinstance(node, exp.Table | exp.Subquery | exp.Select | exp.Lateral):
        return "only scenario tables and subqueries may be read from"
    return None


@_rule("P-TABLE", "only the scenario's tables, by bare name")
def _table(node: exp.Expr) -> str | None:
    if isinstance(node, exp.Table) and (extra := set_args(node) - {"this", "alias", "sample", "pivots"}):
        return f"tables are named bare, without {', '.join(sorted(extra))}"
    if isinstance(node, exp.TableAlias) and node.args.get("columns") and isinstance(node.parent, exp.Table):
        return "column alias lists on tables are not supported"
    return None


@_rule("P-LIMIT", "LIMIT, OFFSET and ORDER BY only on the outermost query; no SAMPLE")
def _limit(node: exp.Expr) -> str | None:
    if isinstance(node, exp.TableSample):
        return "sampling is not allowed"
    if isinstance(node, exp.Subquery) and set_args(node) & {"order", "limit", "offset", "sample"}:
        return "a subquery may not be ordered, limited or sampled"
    clause = isinstance(node, exp.Order | exp.Limit | exp.Offset | exp.Fetch)
    if clause and isinstance(node.parent, exp.Select) and node.parent.parent is not None:
        return "only the outermost query may be ordered or limited: a top row can isolate a person"
    count = node.args.get("expression")
    plain = isinstance(count, exp.Literal) and not count.is_string and count.name.isdigit()
    if isinstance(node, exp.Limit | exp.Offset | exp.Fetch) and (
        set_args(node) != {"expression"} or not plain
    ):
        return "LIMIT and OFFSET take a plain row count"
    if isinstance(node, exp.Ordered) and set_args(node) - {"this", "desc", "nulls_first"}:
        return "unsupported ORDER BY option"
    return None


@_rule("P-JOIN", "only INNER or LEFT equi-joins ON identifiers of one join domain or on dimensions")
def _join(node: exp.Expr) -> str | None:
    if isinstance(node, exp.Lateral) or (isinstance(node, exp.Select) and node.args.get("laterals")):
        return "LATERAL joins are not allowed"
    if not isinstance(node, exp.Join):
        return None
    side_kind = (node.args.get("side"), node.args.get("kind"))
    if set_args(node) - {"this", "on", "using", "side", "kind"} or side_kind not in _JOIN_TYPES:
        return "only INNER and LEFT joins are allowed"
    if not (node.args.get("on") or node.args.get("using")):
        return "a join needs an ON condition (comma and cross joins are not allowed)"
    return None


@_rule("P-SCOPE", "subqueries and CTEs are checked scope by scope, with tag lineage; none in expressions")
def _scope(node: exp.Expr) -> str | None:
    if isinstance(node, exp.With) and set_args(node) != {"expressions"}:
        return "recursive CTEs are not allowed"
    if isinstance(node, exp.CTE) and set_args(node) - {"this", "alias", "materialized"}:
        return "unsupported CTE option"
    if isinstance(node, exp.Subquery) and set_args(node) - {"this", "alias"}:
        return "unsupported subquery clause"
    if isinstance(node, exp.TableAlias) and node.args.get("columns"):
        return "column alias lists are not supported; alias the columns inside the query"
    if isinstance(node, exp.In) and node.args.get("query"):
        return "IN (subquery) is not allowed"
    if _subquery_expression(node) and not _in_outer_projection(node):
        return "subqueries inside expressions are not allowed"
    return None


@_rule("P-GROUP", "GROUP BY dimensions only: no measures, ROLLUP, CUBE, GROUPING SETS or ALL")
def _group(node: exp.Expr) -> str | None:
    if isinstance(node, exp.Rollup | exp.Cube | exp.GroupingSets):
        return "subtotals are not supported; run one grouping per query"
    if isinstance(node, exp.Group) and set_args(node) != {"expressions"}:
        return "only plain GROUP BY expressions are allowed"
    return None


@_rule("P-AGGREGATE", "only COUNT(*), COUNT(x), COUNT(DISTINCT identifier|dimension), SUM/AVG of measures")
def _aggregate(node: exp.Expr) -> str | None:
    if is_aggregate(node):
        if not isinstance(node, _ALLOWED_AGGREGATES):
            return f"aggregate {node.sql_name() if isinstance(node, exp.Func) else node.key} is not allowed"
        if set_args(node) - {"this", "big_int"} or isinstance(node.this, exp.Order):
            return "aggregates take one argument, without ORDER BY"
        if isinstance(node.this, exp.Distinct) and not isinstance(node, exp.Count):
            return "DISTINCT is allowed only in COUNT"
        if any(is_aggregate(a) for a in _ancestors(node)):
            return "nested aggregates are not allowed"
        if any(isinstance(a, exp.Where | exp.Group | exp.Join) for a in _ancestors(node)):
            return "aggregates are allowed only in SELECT, HAVING and ORDER BY"
    distinct = isinstance(node, exp.Distinct) and not isinstance(node.parent, exp.Select)
    if distinct and (set_args(node) != {"expressions"} or len(node.expressions) != 1):
        return "COUNT(DISTINCT …) takes exactly one expression"
    if isinstance(node, exp.Filter) and not isinstance(node.this, _ALLOWED_AGGREGATES):
        return "FILTER applies only to an allowed aggregate"
    return None


@_rule("P-FUNCTION", "scalar functions and operators from an explicit allow-list only")
def _function(node: exp.Expr) -> str | None:
    parent = node.parent
    if isinstance(node, exp.Alias) and not (isinstance(parent, exp.Select) and node.arg_key == "expressions"):
        return "aliases belong in the select list"
    if isinstance(node, _STRUCTURE) or is_aggregate(node) or _subquery_expression(node):
        return None
    if (keys := SCALARS.get(type(node))) is None:
        name = node.name if isinstance(node, exp.Anonymous) else node.key
        return f"{name.upper()} is not in the allow-list of functions"
    if extra := set_args(node) - keys:
        return f"{node.key.upper()} with {', '.join(sorted(extra))} is not supported"
    unit = UNIT_ARGS.get(type(node))
    part = node.args.get(unit) if unit else None
    if unit and not (isinstance(part, exp.Var | exp.Literal) and part.name.lower() in _DATE_PARTS):
        return "the date part must be a literal, such as 'month'"
    if isinstance(node, exp.Var) and not (parent is not None and UNIT_ARGS.get(type(parent)) == node.arg_key):
        return "bare words are allowed only as date parts"
    if isinstance(node, exp.DataType | exp.DataTypeParam) and not isinstance(parent, exp.Cast | exp.DataType):
        return "type names belong in CAST"
    if isinstance(node, exp.DataType) and (node.this not in CAST_TYPES or node.args.get("nested")):
        return f"CAST to {node.sql(dialect='duckdb')} is not allowed"
    constants: dict[type[exp.Expr], list[object]] = {exp.In: node.expressions, exp.Like: [node.expression]}
    constants |= {exp.ILike: [node.expression], exp.Between: [node.args.get("low"), node.args.get("high")]}
    if not all(isinstance(c, exp.Expr) and is_constant(c) for c in constants.get(type(node), [])):
        return "IN lists, BETWEEN bounds and LIKE patterns must be literals"
    return None


@_rule("P-OUTPUT", "the outermost SELECT returns only allowed aggregates and grouped dimensions")
def _output(node: exp.Expr) -> str | None:
    if isinstance(node, exp.Distinct) and isinstance(node.parent, exp.Select):
        return "SELECT DISTINCT is not supported; GROUP BY and aggregate instead"
    if _subquery_expression(node) and _in_outer_projection(node):
        return "subqueries are not allowed in the output"
    return None


_scoped("P-COLUMN-UNKNOWN", "every column resolves to exactly one column of a table in scope")
_scoped("P-COLUMN-HIDDEN", "hidden columns are never referenced")
_scoped("P-IDENT-FILTER", "identifiers appear in WHERE, HAVING or ON only as a join equality")
_scoped("P-IDENT-GROUP", "identifiers are never grouped by")
_scoped("P-IDENT-OUTPUT", "identifiers are never output or ordered by")
_scoped("P-IDENT-EXPR", "identifiers never appear in expressions, only in COUNT(DISTINCT …) or join keys")
_scoped("P-SENSITIVE", "sensitive columns only directly inside SUM/AVG, and only with differential privacy")
_scoped("P-TYPE", "no implicit casts, failing casts or integer arithmetic: no row can make the query fail")
