"""Type families: which values the query policy lets be compared, combined or cast.

A run-time error that depends on the data (a failed cast, an overflow) is an oracle that
leaks one bit per query past every aggregate rule, so values compared or combined must be of
one family, and arithmetic is done in floating point, which cannot fail. The family of a
value is worked out bottom-up by the scope analyser in ``sandbox._scope``; anything that
DuckDB would cast row by row, or that could fail on some row, is refused under ``P-TYPE``.
"""

from __future__ import annotations

import re
from datetime import datetime

from sqlglot import exp

from sandbox._rules import CAST_TYPES, PREDICATES, refuse

# "iso" is a string literal that is a valid ISO date: it compares with text and with dates.
KINDS = {"VARCHAR": "text", "INTEGER": "int", "BIGINT": "int", "DOUBLE": "float", "DATE": "date"}
KINDS |= {"TIMESTAMP": "date", "BOOLEAN": "bool"}
_FAMILIES = {"text": {"text"}, "iso": {"text", "date"}, "int": {"num"}, "float": {"num"}, "date": {"date"}}
_FAMILIES |= {"bool": {"bool"}}
_ISO = re.compile(r"\d{4}-\d{2}-\d{2}( \d{2}:\d{2}:\d{2})?")
_RESULTS: dict[type[exp.Expr], str | None] = {exp.Div: "float", exp.Floor: "float", exp.Ceil: "float"}
_RESULTS |= dict.fromkeys((exp.Lower, exp.Upper, exp.Substring, exp.Concat, exp.DPipe), "text")
_RESULTS |= dict.fromkeys((exp.Year, exp.Month, exp.Day, exp.Quarter, exp.Extract, exp.DateDiff), "int")
_RESULTS |= {exp.Length: "int", exp.TimestampTrunc: "date", exp.DateTrunc: "date"}
# What typed arguments must be, lest DuckDB cast them row by row.
_DATE, _TEXT, _NUMBER = frozenset({"date", "iso"}), frozenset({"text", "iso"}), frozenset({"int", "float"})
_BOOL, _INT = frozenset({"bool"}), frozenset({"int"})
_ARGUMENTS: dict[type[exp.Expr], dict[str, frozenset[str]]] = {
    **{kind: {"this": _DATE} for kind in (exp.Year, exp.Month, exp.Day, exp.Quarter, exp.TimestampTrunc)},
    **{kind: {"this": _TEXT} for kind in (exp.Lower, exp.Upper, exp.Length)},
    **{kind: {"this": _NUMBER, "decimals": _INT} for kind in (exp.Round, exp.Floor, exp.Ceil)},
    **{kind: {"this": _BOOL, "expression": _BOOL} for kind in (exp.And, exp.Or, exp.Not)},
    exp.Like: {"this": _TEXT, "expression": _TEXT},
    exp.ILike: {"this": _TEXT, "expression": _TEXT},
    exp.DateTrunc: {"this": _DATE},
    exp.Extract: {"expression": _DATE},
    exp.DateDiff: {"this": _DATE, "expression": _DATE},
    exp.Substring: {"this": _TEXT, "start": _INT, "length": _INT},
    exp.Div: {"this": _NUMBER, "expression": _NUMBER},
    exp.If: {"this": _BOOL},
}  # fmt: skip


def literal_kind(node: exp.Expr) -> str | None:
    """The type family of a literal (None for NULL, which fits any)."""
    if isinstance(node, exp.Boolean):
        return "bool"
    if not isinstance(node, exp.Literal):
        return None
    text = node.name
    if not node.is_string:
        return "float" if "e" in text.lower() else "int"  # a decimal literal is exact, so it can overflow
    if _ISO.fullmatch(text):
        try:
            datetime.fromisoformat(text)
        except ValueError:
            return "text"
        return "iso"
    return "text"


def agree(kinds: list[str | None], node: exp.Expr) -> str | None:
    """The one family ``kinds`` share (NULL fits all); refuse values DuckDB would cast per row."""
    known = [k for k in kinds if k is not None]
    common = set.intersection(*(_FAMILIES[k] for k in known)) if known else {"any"}
    if not common:
        raise refuse("P-TYPE", f"mixes {' and '.join(sorted(set(known)))} values, which DuckDB casts", node)
    if common == {"num"}:
        return "float" if "float" in known else "int"
    return None if not known else "iso" if len(common) > 1 else common.pop()


def kind_of(node: exp.Expr, args: dict[str, list[str | None]]) -> str | None:
    """The type family of ``node``'s value given its arguments' families; refuse what could fail."""
    for key, allowed in _ARGUMENTS.get(type(node), {}).items():
        if any(kind is not None and kind not in allowed for kind in args.get(key, [])):
            raise refuse("P-TYPE", f"{node.key.upper()} needs {' or '.join(sorted(allowed))} here", node)
    values = [kind for kinds in args.values() for kind in kinds]
    if isinstance(node, exp.Cast):
        target = CAST_TYPES[node.to.this]
        source = agree(values, node)
        widening = {(None, target), (target, target), ("int", "float"), ("iso", "date")} - {("int", "int")}
        if not (target == "text" or (source, target) in widening or isinstance(node, exp.TryCast)):
            raise refuse("P-TYPE", "this CAST can fail on some values; use TRY_CAST", node)
        return target
    if isinstance(node, exp.Add | exp.Sub | exp.Mul | exp.Neg | exp.Abs):
        literal = node.this if isinstance(node, exp.Neg) else None
        if isinstance(literal, exp.Literal) and not literal.is_string and len(literal.name) < 19:
            return agree(values, node)
        if not set(values) <= {"int", "float", None} or "float" not in values:
            raise refuse("P-TYPE", "integer arithmetic can overflow: compute in DOUBLE", node)
        return "float"
    if isinstance(node, exp.Round):
        return agree(args.get("this", []), node)
    if isinstance(node, exp.If | exp.Case):
        return agree(
            [kind for key in ("true", "false", "ifs", "default") for kind in args.get(key, [])], node
        )
    if isinstance(node, (exp.Coalesce, exp.Least, exp.Greatest, exp.Nullif, *PREDICATES)):
        common = agree([] if isinstance(node, exp.Connector | exp.Not) else values, node)
        return "bool" if isinstance(node, PREDICATES) else common
    return _RESULTS.get(type(node), literal_kind(node))
