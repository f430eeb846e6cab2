"""The query policy: what a submitted SQL text may ask of the enclave, checked before any data is touched.

The SQL is parsed with sqlglot (dialect ``duckdb``), identifiers are folded to lower case as
DuckDB folds them (ASCII letters only, quoted or not), and the statement is checked against
the scenario's column tags by the allow-list rules in ``RULES``; anything the checker does not
fully understand is refused with a ``PolicyViolation`` naming the rule and the fragment.

Scopes are then checked one by one with tag lineage (``sandbox._scope``, ``sandbox._lineage``),
so renaming never launders a column, and values are typed by family (``sandbox._types``) so
that no row can make the query fail: a data-dependent error is a one-bit oracle.

What runs in the enclave must be ``CheckedQuery.render()``, never the submitted text: the
checked tree is the one sqlglot reads back from its own rendering of the submission.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from types import MappingProxyType

import sqlglot
from sqlglot import exp
from sqlglot.dialects.dialect import Dialect

from sandbox._lineage import Analysis, Source
from sandbox._rules import RULES, Rule, refuse
from sandbox._scope import Output, Scope
from sandbox.catalog import Dataset, Tag, check_name
from sandbox.errors import CatalogError

__all__ = ["MAX_SQL_CHARS", "RULES", "CheckedQuery", "Output", "Rule", "ScenarioPolicy", "check_query"]

MAX_SQL_CHARS = 100_000
# sqlglot's parser itself gives up near 45 nested parentheses; flat chains (a OR b OR …) parse
# deeper, but the analysis recurses once per level, so depth is capped below Python's limit.
_MAX_DEPTH = 200
_FOLD = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)


@dataclass(frozen=True)
class ScenarioPolicy:
    """The tables a scenario may query, by table name, with their tags and thresholds.

    A scenario narrows access by passing datasets whose out-of-scope columns are tagged
    hidden. ``min_group_size`` is enforced on results by later stages; ``allow_dp`` lets
    sensitive columns be summed or averaged, under differential privacy.
    """

    datasets: Mapping[str, Dataset]
    min_group_size: int = 10
    allow_dp: bool = False

    def __post_init__(self) -> None:
        datasets = dict(self.datasets)
        for name, dataset in datasets.items():
            if not isinstance(dataset, Dataset) or check_name("table", name) != dataset.name:
                raise CatalogError(f"scenario table {name!r} must map to the Dataset of that name")
        if not datasets or type(self.min_group_size) is not int or self.min_group_size < 1:
            raise CatalogError("a scenario needs at least one dataset and a min_group_size of at least 1")
        if not isinstance(self.allow_dp, bool):
            raise CatalogError("allow_dp must be True or False")
        object.__setattr__(self, "datasets", MappingProxyType(datasets))


@dataclass(frozen=True)
class CheckedQuery:
    """A query that passed every rule, with what later stages need to know about it.

    ``quasi_identifiers`` holds every quasi-identifier the query reads (as a dimension, in a
    bucket or in a filter), ``sensitive`` the sensitive columns it sums or averages, and
    ``measures`` the declared bounds of every column it sums or averages (sensitive ones too).
    """

    sql: str
    statement: exp.Select
    tables: frozenset[str]
    columns: frozenset[Source]
    outputs: tuple[Output, ...]
    group_by: tuple[str, ...]
    quasi_identifiers: frozenset[Source]
    sensitive: frozenset[Source]
    measures: Mapping[Source, tuple[float, float]]

    def render(self, dialect: str = "duckdb") -> str:
        """The checked statement as SQL for ``dialect``: the only text that may be executed."""
        return self._duckdb if dialect == "duckdb" else self.statement.sql(dialect=dialect, comments=False)

    @cached_property
    def _duckdb(self) -> str:
        # A job renders its statement for the engine, its fingerprint and its record.
        return self.statement.sql(dialect="duckdb", comments=False)


def check_query(sql: str, policy: ScenarioPolicy) -> CheckedQuery:
    """Check ``sql`` against ``policy``; raise PolicyViolation on the first rule it breaks."""
    if len(sql) > MAX_SQL_CHARS:
        raise refuse("P-SIZE", f"the SQL is longer than {MAX_SQL_CHARS:,} characters", f"{len(sql):,} chars")
    try:
        statement = _parse(sql)
        for rule_id, check in [(rule.id, rule.check) for rule in RULES if rule.check]:
            for node in statement.walk():
                if (message := check(node)) is not None:
                    raise refuse(rule_id, message, node)
        assert isinstance(statement, exp.Select)
        analysis = Analysis(policy)
        shape = Scope(analysis, statement, {}, outer=True).check()
    except RecursionError:
        raise refuse("P-PARSE", "the query is nested too deeply") from None
    columns = frozenset(analysis.columns)
    tags = {(d.name, c.name): c.tag for d in policy.datasets.values() for c in d.columns}
    return CheckedQuery(
        sql=sql,
        statement=statement,
        tables=frozenset(analysis.tables),
        columns=columns,
        outputs=shape.outputs,
        group_by=shape.group_by,
        quasi_identifiers=frozenset(c for c in columns if tags[c] is Tag.QUASI_IDENTIFIER),
        sensitive=frozenset(analysis.sensitive),
        measures=MappingProxyType(dict(analysis.measures)),
    )


def _parse(sql: str) -> exp.Expr:
    """The one statement in ``sql``, as sqlglot reads its own rendering of it.

    Checking the tree parsed back from the rendered text, rather than the first parse, means
    the text that will run is the text that was checked, whatever sqlglot tolerated on the way.
    """
    statements = _statements(sql)
    if len(statements) > 1:
        raise refuse("P-ONE-STATEMENT", "submit exactly one statement", statements[1])
    stack = [(statements[0], 0)]
    while stack:
        node, depth = stack.pop()
        if depth > _MAX_DEPTH:
            raise refuse("P-PARSE", f"the query nests deeper than {_MAX_DEPTH} levels")
        stack.extend((child, depth + 1) for child in node.iter_expressions())
    first = Dialect.get_or_raise("duckdb").tokenize(sql)[0]
    if first.text.upper() == "FROM" and [type(e) for e in statements[0].expressions] == [exp.Star]:
        raise refuse("P-SELECT-ONLY", "a FROM-first statement returns raw rows", statements[0])
    (statement,) = _statements(statements[0], again=True)
    for identifier in statement.find_all(exp.Identifier):
        identifier.set("this", identifier.name.translate(_FOLD))
    return statement


def _statements(source: str | exp.Expr, again: bool = False) -> list[exp.Expr]:
    try:
        sql = source.sql(dialect="duckdb", comments=False) if isinstance(source, exp.Expr) else source
        statements = [s for s in sqlglot.parse(sql, dialect="duckdb") if s is not None]
    except RecursionError:
        raise
    except Exception as error:  # whatever sqlglot cannot handle is refused: fail closed
        detail = (str(error).splitlines() or [""])[0][:200]
        raise refuse("P-PARSE", f"the SQL does not parse ({type(error).__name__})", detail) from None
    if not statements or (again and len(statements) != 1):
        raise refuse("P-PARSE", "there is no single statement here", "" if again else source)
    return statements
