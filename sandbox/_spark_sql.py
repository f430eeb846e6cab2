"""Spark SQL for checked statements: only what Spark computes exactly as DuckDB does.

The policy (:mod:`sandbox.policy`) reads every query as DuckDB would run it; a Spark
deployment must give the same answer, not merely a similar one. Transpiled naively, many
allowed queries run on Spark and silently mean something else, so :class:`SparkRenderer`
goes node by node through the checked tree: what both engines compute alike passes, what
differs only in spelling or result type is rewritten (``YEAR`` returns INT on Spark and
BIGINT on DuckDB, so it is cast), and everything else is refused with an
:class:`~sandbox.errors.UnsupportedOnBackend` naming an ``S-*`` rule of ``SPARK_RULES``.
Spark runs with ANSI mode on, so an overflow fails rather than wraps, as on DuckDB.

``SPARK_FUNCTIONS`` is the allow-list as data: every function name that may appear in a
rendered Spark query, each with why it is safe; :func:`check_rendered` enforces it on the
final text (the Spark worker runs it again before executing anything), and the equivalence
tests cover every entry on both engines.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping, Sequence
from itertools import pairwise
from typing import Any

import duckdb
import sqlglot
from sqlglot import exp

from deid.dp import FIXED_POINT
from sandbox._lineage import NODE_NUMBER
from sandbox._render import Renderer, total_order, typed_kinds
from sandbox._rules import Rule
from sandbox._worker import redact
from sandbox.errors import JobError, UnsupportedOnBackend
from sandbox.policy import CheckedQuery, ScenarioPolicy

SPARK_RULES: list[Rule] = [
    Rule("S-FUNCTION", "only functions that give the same answer on DuckDB and Spark (SPARK_FUNCTIONS)"),
    Rule("S-DIVISION", "division only by a nonzero constant: on zero DuckDB gives ±inf or NaN, Spark fails"),
    Rule("S-CAST", "only casts and text conversions that give the same value and type on both engines"),
    Rule("S-ARGUMENT", "arguments both engines read alike: known date parts, literal positions and places"),
]
"""Every reason the Spark backend refuses a query the policy allows."""

SPARK_FUNCTIONS: Mapping[str, str] = {
    # What user queries may call, rewritten where the engines differ.
    "COUNT": "COUNT(*), COUNT(x), COUNT(DISTINCT x): BIGINT on both",
    "SUM": "of an integer column cast to DECIMAL(38, 0), DuckDB's HUGEINT; of DOUBLE, DOUBLE",
    "AVG": "DOUBLE on both",
    "CAST": "only between families whose conversion both engines define alike (S-CAST)",
    "TRY_CAST": "as CAST; TRY_CAST's text parsing differs and is refused",
    "COALESCE": "first non-NULL argument",
    "NULLIF": "NULL if equal",
    "GREATEST": "both skip NULLs and order NaN above every number",
    "LEAST": "both skip NULLs and order NaN above every number",
    "ABS": "of DOUBLE (the policy refuses integer arithmetic)",
    "ROUND": "DuckDB's round(x, n) is round-half-away(x·10ⁿ)/10ⁿ; Spark writes exactly that",
    "YEAR": "cast to BIGINT, DuckDB's type",
    "MONTH": "cast to BIGINT",
    "DAY": "cast to BIGINT",
    "QUARTER": "cast to BIGINT",
    "EXTRACT": "year, quarter, month, week (ISO), day, isodow, isoyear; cast to BIGINT",
    "DATE_TRUNC": "to year, quarter, month, week (Monday on both) or day; as TIMESTAMP_NTZ, DuckDB's type",
    "DATEDIFF": "days between the dates of two values; months, quarters, years as DuckDB counts boundaries",
    "SUBSTRING": "literal 1-based start and length only: they read a start of 0 or below differently",
    "CONCAT": "of text, integers and booleans; DuckDB's concat skips NULLs, so each is coalesced to ''",
    "LENGTH": "characters (code points) on both; cast to BIGINT",
    # What the rewrite templates use.
    "MIN": "the least struct of a unit's rows: its fields NULL-flagged so both order NULLs last",
    "NAMED_STRUCT": "DuckDB's struct_pack",
    "MD5": "the portable seeded hash: md5 of canonical text, hex, identical on both",
    "DATE_FORMAT": "dates and timestamps as text for the hash, as DuckDB's strftime writes them",
    "ROW_NUMBER": "ranks rows within a unit by the portable hash, with total tie-breakers",
    "DENSE_RANK": "ranks groups within a unit by the portable hash, with total tie-breakers",
    "COLLECT_LIST": "a cell's per-unit contributions, for the disclosure evidence",
    "SORT_ARRAY": "largest contributions first",
    "SLICE": "the top contributions",
}
"""Every function a rendered Spark query may call, and why it gives DuckDB's answer."""

# Datasets hold dates, never times of day: parts below a day are not offered.
_TRUNC_UNITS = {"year", "quarter", "month", "week", "day"}
_EXTRACT_PARTS = {"year": "YEAR", "quarter": "QUARTER", "month": "MONTH", "week": "WEEK", "day": "DAY"}
_EXTRACT_PARTS |= {"isodow": "DAYOFWEEK_ISO"}
_EXTRACT_PARTS |= {"isoyear": "YEAROFWEEK"}
_CASE_REASON = "upper- and lower-casing differ between the engines for some letters (final σ, ß, İ)"
_TEXT_TYPES = {exp.DataType.Type.TEXT, exp.DataType.Type.VARCHAR, exp.DataType.Type.CHAR}
_INT_TYPES = {exp.DataType.Type.TINYINT, exp.DataType.Type.SMALLINT, exp.DataType.Type.INT}
_INT_TYPES |= {exp.DataType.Type.BIGINT}
_DATE_TYPES = {exp.DataType.Type.DATE, exp.DataType.Type.TIMESTAMP, exp.DataType.Type.TIMESTAMPNTZ}
# Which source families each target family accepts; None is NULL. Text parsing (a string to a
# number or date) and number formatting (a DOUBLE to text) differ between the engines.
_CASTS: list[tuple[set[Any], set[str | None], str]] = [
    (_TEXT_TYPES, {"text", "iso", "int", "bool", None}, "DOUBLE and date values are written differently"),
    (_INT_TYPES, {"int", None}, "DuckDB rounds a DOUBLE to an integer, Spark truncates; text parses apart"),
    ({exp.DataType.Type.DOUBLE}, {"int", "float", None}, "the engines parse text to numbers differently"),
    (
        _DATE_TYPES,
        {"date", "iso", None},
        "the engines parse text to dates differently ('2024' is one on Spark)",
    ),
    (
        {exp.DataType.Type.BOOLEAN},
        {"bool", None},
        "the engines read text and numbers as booleans differently",
    ),
]
# Words that precede "(" in Spark SQL without calling a function.
_NOT_CALLS = {"IN", "AS", "OVER", "FILTER", "USING", "EXISTS", "FROM", "JOIN", "WHERE", "AND", "OR", "NOT"}
_NOT_CALLS |= {"ON", "THEN", "ELSE", "WHEN", "BY", "SELECT", "HAVING", "DECIMAL", "VARCHAR", "CHAR", ","}
_CALL = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def refuse(rule_id: str, message: str, node: exp.Expr) -> UnsupportedOnBackend:
    """The refusal of ``node`` under Spark rule ``rule_id``."""
    assert any(rule.id == rule_id for rule in SPARK_RULES), rule_id
    return UnsupportedOnBackend(rule_id, f"{message} (Spark backend)", node.sql(dialect="duckdb"))


class SparkRenderer(Renderer):
    """Spark SQL for one checked statement, ranking with the portable hash."""

    engine = "spark"
    text_type = "STRING"

    def __init__(self, kinds: Mapping[int, str | None], policy: ScenarioPolicy) -> None:
        super().__init__(kinds, portable=True)
        self.policy = policy

    @classmethod
    def for_statement(
        cls, statement: exp.Select, policy: ScenarioPolicy, *, portable: bool = True
    ) -> Renderer:
        """A Spark renderer for ``statement`` (checked under ``policy``); Spark is always portable."""
        return cls(typed_kinds(statement, policy), policy)

    def sql(self, node: exp.Expr) -> str:
        return self._spark(node.copy()).sql(dialect="spark")

    def query(self, checked: CheckedQuery) -> str:
        """The checked query on Spark: DuckDB's output names, ties broken, every node allowed."""
        statement = self._spark(checked.statement.copy())
        assert isinstance(statement, exp.Select)
        names = duckdb_names(checked.render(), self.policy)
        statement.set(
            "expressions",
            [
                exp.alias_(item.unalias(), name, quoted=True)
                for item, name in zip(statement.expressions, names, strict=True)
            ],
        )
        return total_order(statement).sql(dialect="spark")

    def _datetime_text(self, sql: str) -> str:
        return f"date_format({sql}, 'yyyy-MM-dd HH:mm:ss.SSSSSS')"

    def struct(self, fields: Sequence[tuple[str, str]]) -> str:
        return "named_struct(" + ", ".join(f"'{name}', {sql}" for name, sql in fields) + ")"

    def fixed_point_sum(self, column: str) -> str:
        # DuckDB sums BIGINT into HUGEINT; DECIMAL(38, 0) is the same Arrow type and never wraps.
        return f"SUM(CAST(CAST(ROUND({column} * {FIXED_POINT}) AS BIGINT) AS DECIMAL(38, 0)))"

    def top(self, column: str, count: int) -> str:
        return f"slice(sort_array(collect_list({column}), false), 1, {count})"

    def _spark(self, node: exp.Expr) -> exp.Expr:
        """``node`` with every descendant, then itself, checked and rewritten for Spark."""
        for key, value in list(node.args.items()):
            if isinstance(value, exp.Expr):
                node.set(key, self._spark(value))
            elif isinstance(value, list):
                node.set(key, [self._spark(v) if isinstance(v, exp.Expr) else v for v in value])
        handler = _HANDLERS.get(type(node), _refused)
        result = node if handler is None else handler(self, node)
        if result is not node and NODE_NUMBER in node.meta:
            result.meta[NODE_NUMBER] = node.meta[NODE_NUMBER]
        return result


def _refused(renderer: SparkRenderer, node: exp.Expr) -> exp.Expr:
    name = node.name if isinstance(node, exp.Anonymous) else node.key
    raise refuse("S-FUNCTION", f"{name.upper()} is not on the Spark backend's allow-list", node)


def _as(node: exp.Expr, to: str) -> exp.Expr:
    return exp.cast(node, exp.DataType.build(to, dialect="spark"))


def _bigint(renderer: SparkRenderer, node: exp.Expr) -> exp.Expr:
    return _as(node, "BIGINT")


def _constant(node: exp.Expr | None) -> float | None:
    """The value of a numeric literal, possibly negated or parenthesised; None otherwise."""
    sign = 1.0
    while isinstance(node, exp.Paren | exp.Neg):
        sign = -sign if isinstance(node, exp.Neg) else sign
        node = node.this
    if isinstance(node, exp.Literal) and not node.is_string:
        return sign * float(node.name)
    return None


def _division(renderer: SparkRenderer, node: exp.Expr) -> exp.Expr:
    if not _constant(node.expression):
        raise refuse("S-DIVISION", "divide by a nonzero constant, or compare products instead", node)
    # DuckDB's / is always floating-point division; Spark divides decimals as decimals.
    return exp.Div(this=_as(node.this, "DOUBLE"), expression=_as(node.expression, "DOUBLE"))


def _sum(renderer: SparkRenderer, node: exp.Expr) -> exp.Expr:
    if renderer.kind(node) == "int":
        node.set("this", _as(node.this, "DECIMAL(38, 0)"))
    return node


def _like(renderer: SparkRenderer, node: exp.Expr) -> exp.Expr:
    pattern = node.expression
    if not (isinstance(pattern, exp.Literal) and pattern.is_string):
        raise refuse("S-ARGUMENT", "LIKE takes a literal pattern", node)
    if "\\" not in pattern.name:
        return node
    # DuckDB's LIKE has no escape character, Spark's is a backslash: name one the pattern lacks.
    free = next(c for c in "!#$&~^|@" if c not in pattern.name)
    return exp.Escape(this=node, expression=exp.Literal.string(free))


def _extract(renderer: SparkRenderer, node: exp.Expr) -> exp.Expr:
    part, value = node.this.name.lower(), node.expression
    if part not in _EXTRACT_PARTS:
        raise refuse("S-ARGUMENT", f"Spark has no date part {part!r} that counts as DuckDB's", node)
    return _as(exp.Extract(this=exp.var(_EXTRACT_PARTS[part]), expression=value), "BIGINT")


def _truncate(renderer: SparkRenderer, node: exp.Expr) -> exp.Expr:
    unit = node.args["unit"].name.lower()
    if unit not in _TRUNC_UNITS:
        raise refuse("S-ARGUMENT", f"truncating to {unit!r} is not the same on Spark", node)
    call = exp.Anonymous(this="DATE_TRUNC", expressions=[exp.Literal.string(unit.upper()), node.this])
    return _as(call, "TIMESTAMP_NTZ")


def _date_diff(renderer: SparkRenderer, node: exp.Expr) -> exp.Expr:
    unit, end, start = node.args["unit"].name.lower(), node.this, node.expression

    def part(name: str, value: exp.Expr) -> exp.Expr:
        return exp.Anonymous(this=name, expressions=[value.copy()])

    def apart(name: str) -> exp.Expr:
        return exp.Paren(this=exp.Sub(this=part(name, end), expression=part(name, start)))

    # DuckDB counts the boundaries crossed: the calendar parts' difference, never whole spans.
    counts: dict[str, Callable[[], exp.Expr]] = {
        "day": lambda: exp.Anonymous(this="DATEDIFF", expressions=[end, start]),
        "year": lambda: apart("YEAR"),
        "quarter": lambda: exp.Add(
            this=exp.Mul(this=apart("YEAR"), expression=exp.Literal.number(4)), expression=apart("QUARTER")
        ),
        "month": lambda: exp.Add(
            this=exp.Mul(this=apart("YEAR"), expression=exp.Literal.number(12)), expression=apart("MONTH")
        ),
    }
    if unit not in counts:
        raise refuse(
            "S-ARGUMENT", f"DuckDB counts {unit!r} differences in a way Spark has no function for", node
        )
    return _as(counts[unit](), "BIGINT")


def _substring(renderer: SparkRenderer, node: exp.Expr) -> exp.Expr:
    start, length = _constant(node.args.get("start")), node.args.get("length")
    if (
        start is None
        or start < 1
        or start != int(start)
        or (length is not None and ((n := _constant(length)) is None or n < 0 or n != int(n)))
    ):
        raise refuse("S-ARGUMENT", "SUBSTRING takes a literal start of 1 or more and a literal length", node)
    return node


def _text_arguments(renderer: SparkRenderer, node: exp.Expr) -> exp.Expr:
    values = [node.this, node.expression] if isinstance(node, exp.DPipe) else list(node.expressions)
    texts = []
    for value in values:
        kind = None if isinstance(value, exp.Null) else renderer.kind(value)
        if kind in ("text", "iso") or isinstance(value, exp.Null):
            texts.append(value)
        elif kind in ("int", "bool"):
            texts.append(_as(value, "STRING"))
        else:
            raise refuse(
                "S-CAST",
                "only text, integers and booleans are joined: other values are written differently",
                node,
            )
    if isinstance(node, exp.DPipe):
        return exp.DPipe(this=texts[0], expression=texts[1], safe=True)
    node.set("expressions", texts)
    return node


def _round(renderer: SparkRenderer, node: exp.Expr) -> exp.Expr:
    places = node.args.get("decimals")
    digits = 0.0 if places is None else _constant(places)
    if digits is None or digits < 0 or digits != int(digits) or digits > 15:
        raise refuse("S-ARGUMENT", "ROUND takes a literal number of places from 0 to 15", node)
    kind = renderer.kind(node.this)
    if kind == "int":
        return node
    if kind != "float":
        raise refuse("S-CAST", "ROUND here needs a DOUBLE or an integer: wrap it in CAST(… AS DOUBLE)", node)
    if not digits:
        return exp.Round(this=node.this)
    # DuckDB: round-half-away(x·10ⁿ)/10ⁿ, and x itself where x·10ⁿ overflows. Spark's ROUND of a
    # DOUBLE to 0 places rounds half away from zero too; with places it rounds the decimal text.
    scale = exp.Literal.number(f"1E{int(digits)}")
    scaled = exp.Mul(this=node.this.copy(), expression=scale)
    infinite = exp.EQ(
        this=exp.Abs(this=scaled.copy()), expression=_as(exp.Literal.string("Infinity"), "DOUBLE")
    )
    rounded = exp.Div(this=exp.Round(this=scaled), expression=scale.copy())
    return exp.Case(ifs=[exp.If(this=infinite, true=node.this.copy())], default=rounded)


def _cast(renderer: SparkRenderer, node: exp.Expr) -> exp.Expr:
    target = node.args["to"].this
    source = None if isinstance(node.this, exp.Null) else renderer.kind(node.this)
    for targets, sources, reason in _CASTS:
        if target in targets:
            if source not in sources or (source is None and not isinstance(node.this, exp.Null)):
                raise refuse("S-CAST", f"this CAST is not the same on Spark: {reason}", node)
            return node
    raise refuse("S-CAST", f"CAST to {node.args['to'].sql(dialect='duckdb')} is not the same on Spark", node)


def _window(renderer: SparkRenderer, node: exp.Expr) -> exp.Expr:
    # Only the evidence rewrite's row numbers, for tables without a contributor identifier.
    if not isinstance(node.this, exp.RowNumber) or {k for k, v in node.args.items() if v} != {"this"}:
        raise refuse("S-FUNCTION", "window functions are not allowed", node)
    return node


def _case_mapping(renderer: SparkRenderer, node: exp.Expr) -> exp.Expr:
    raise refuse("S-FUNCTION", _CASE_REASON, node)


def _to_integer(renderer: SparkRenderer, node: exp.Expr) -> exp.Expr:
    raise refuse("S-FUNCTION", "Spark's FLOOR and CEIL return BIGINT and fail past 2⁶³; use ROUND", node)


def _select(renderer: SparkRenderer, node: exp.Expr) -> exp.Expr:
    """Output aliases named in WHERE, GROUP BY or HAVING replaced by what they name.

    DuckDB lets those clauses name the select list's aliases; Spark does not in WHERE. The
    policy refused every name that is both an alias and a column, so the swap is exact.
    """
    aliases: dict[str, exp.Expr] = {i.alias: i.this for i in node.expressions if isinstance(i, exp.Alias)}
    if not aliases:
        return node

    def swap(child: exp.Expr) -> exp.Expr:
        if isinstance(child, exp.Column) and not child.table and child.name in aliases:
            target = aliases[child.name]
            if not (isinstance(target, exp.Column) and target.name == child.name):
                return target.copy()
        return child

    for clause in ("where", "group", "having"):
        if (part := node.args.get(clause)) is not None:
            node.set(clause, part.transform(swap, copy=False))
    return node


Handler = Callable[[SparkRenderer, exp.Expr], exp.Expr]
_PASS: tuple[type[exp.Expr], ...] = (exp.From, exp.Join, exp.Table, exp.TableAlias, exp.With, exp.CTE)
_PASS += (exp.Where, exp.Group, exp.Having, exp.Order, exp.Ordered, exp.Limit, exp.Offset, exp.Column)
_PASS += (exp.Identifier, exp.Star, exp.Distinct, exp.Filter, exp.Alias, exp.Subquery, exp.Paren)
_PASS += (exp.Literal, exp.Null, exp.Boolean, exp.Var, exp.DataType, exp.DataTypeParam, exp.Add, exp.Sub)
_PASS += (exp.Mul, exp.Neg, exp.And, exp.Or, exp.Not, exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE)
_PASS += (exp.NullSafeEQ, exp.NullSafeNEQ, exp.Is, exp.In, exp.Between, exp.Nullif, exp.Coalesce)
_PASS += (exp.Least, exp.Greatest, exp.Case, exp.If, exp.Abs, exp.Count, exp.Avg, exp.RowNumber)
_HANDLERS: dict[type[exp.Expr], Handler | None] = {
    **dict.fromkeys(_PASS),
    exp.Select: _select,
    exp.Div: _division,
    exp.Sum: _sum,
    exp.Like: _like,
    **dict.fromkeys((exp.Year, exp.Month, exp.Day, exp.Quarter, exp.Length), _bigint),
    exp.Extract: _extract,
    **dict.fromkeys((exp.TimestampTrunc, exp.DateTrunc), _truncate),
    exp.DateDiff: _date_diff,
    exp.Substring: _substring,
    **dict.fromkeys((exp.Concat, exp.DPipe), _text_arguments),
    exp.Round: _round,
    **dict.fromkeys((exp.Cast, exp.TryCast), _cast),
    exp.Window: _window,
    **dict.fromkeys((exp.Lower, exp.Upper, exp.ILike), _case_mapping),
    **dict.fromkeys((exp.Floor, exp.Ceil), _to_integer),
}


def duckdb_names(sql: str, policy: ScenarioPolicy) -> list[str]:
    """The names DuckDB gives ``sql``'s output columns, bound on empty tables (no data is read).

    JobError if DuckDB cannot bind it: the job would fail on DuckDB too.
    """
    with duckdb.connect() as con:
        for name, dataset in policy.datasets.items():
            columns = ", ".join(f'"{c.name}" {c.type}' for c in dataset.columns)
            con.execute(f'CREATE TABLE "{name}" ({columns})')
        try:
            return list(con.sql(sql).columns)
        except duckdb.Error as exc:
            raise JobError(f"{type(exc).__name__}: {redact(str(exc))}") from None


def functions_in(sql: str) -> list[str]:
    """Every function a Spark SQL text calls, by name, in order."""
    tokens = sqlglot.Dialect.get_or_raise("spark").tokenize(sql)
    if any(token.comments for token in tokens):
        raise ValueError("comments (and so hints) are not allowed")
    names = []
    for token, after in pairwise(tokens):
        call = after.token_type.name == "L_PAREN" and _CALL.fullmatch(token.text) is not None
        quoted = token.token_type.name in ("IDENTIFIER", "STRING")
        if call and not quoted and token.text.upper() not in _NOT_CALLS:
            names.append(token.text.upper())
    return names


def check_rendered(sql: str, tables: Collection[str]) -> None:
    """Refuse (ValueError) Spark SQL that is not one SELECT over ``tables`` calling allowed functions."""
    try:
        statements = sqlglot.parse(sql, dialect="spark")
    except sqlglot.errors.SqlglotError:
        raise ValueError("the SQL does not parse as Spark SQL") from None
    if len(statements) != 1 or not isinstance(statements[0], exp.Select):
        raise ValueError("only one SELECT may run")
    statement = statements[0]
    names = {cte.alias for cte in statement.find_all(exp.CTE)} | set(tables)
    for table in statement.find_all(exp.Table):
        if table.args.get("db") or table.args.get("catalog") or not isinstance(table.this, exp.Identifier):
            raise ValueError("tables are read by bare name only")
        if table.name not in names:
            raise ValueError(f"{table.sql(dialect='spark')} is not a dataset of this job")
    if unknown := sorted(set(functions_in(sql)) - set(SPARK_FUNCTIONS)):
        raise ValueError(f"functions outside the Spark allow-list: {', '.join(unknown)}")
