"""Tag lineage: what a value in a query is computed from, and so how it may be used.

A column a CTE or subquery outputs carries the most restrictive tag of what it is computed
from (hidden > identifier > sensitive > quasi_identifier > measure > dimension), so renaming
never launders a column. ``Analysis`` collects, across every scope of one statement, the
tables, columns, sensitive columns and measure bounds the statement reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlglot import exp

from sandbox._types import KINDS
from sandbox.catalog import Dataset, Tag

if TYPE_CHECKING:  # the policy module imports the scope analysis, which imports this one
    from sandbox.policy import ScenarioPolicy

_ORDER = (Tag.DIMENSION, Tag.MEASURE, Tag.QUASI_IDENTIFIER, Tag.SENSITIVE, Tag.IDENTIFIER, Tag.HIDDEN)
Source = tuple[str, str]
NODE_NUMBER = "veilbox.node"
"""The key in a syntax node's ``meta`` under which :func:`number_nodes` numbers it; copies keep it."""


def number_nodes(root: exp.Expr) -> None:
    """Number every node under ``root`` (in ``meta``), so facts about them survive tree copies."""
    for number, node in enumerate(root.walk()):
        node.meta[NODE_NUMBER] = number


@dataclass(frozen=True)
class Lineage:
    """What a value in a scope is computed from, and so how it may be used."""

    tag: Tag
    sources: frozenset[Source] = frozenset()
    kind: str | None = None  # its type family (see sandbox._types); None for NULL
    bounds: tuple[float, float] | None = None  # a bare measure or sensitive column only
    domain: str | None = None  # a bare identifier only
    derived: bool = False  # an aggregate computed in an inner scope


def merge(parts: list[Lineage], kind: str | None) -> Lineage:
    """The lineage of a value of ``kind`` computed from ``parts``: their most restrictive tag."""
    tag = max((p.tag for p in parts), key=_ORDER.index, default=Tag.DIMENSION)
    return Lineage(
        tag, frozenset().union(*(p.sources for p in parts)), kind, derived=any(p.derived for p in parts)
    )


Relation = dict[str, Lineage | None]  # None marks a name an inner scope outputs twice


class Analysis:
    """What the whole statement reads, collected across its scopes.

    With ``kinds`` on, it also notes the type family of every value it evaluates, keyed by the
    number :func:`number_nodes` gave its node (a renderer for another engine needs them).
    """

    def __init__(self, policy: ScenarioPolicy, *, kinds: bool = False) -> None:
        self.policy = policy
        self.tables: set[str] = set()
        self.columns: set[Source] = set()
        self.sensitive: set[Source] = set()
        self.measures: dict[Source, tuple[float, float]] = {}
        self.kinds: dict[int, str | None] | None = {} if kinds else None

    def note(self, node: exp.Expr, kind: str | None) -> None:
        """Record the family of ``node`` (and of what its parentheses hold) if it was numbered."""
        assert self.kinds is not None
        for each in (node, node.unnest()):
            number = each.meta.get(NODE_NUMBER)
            if number is not None:
                self.kinds[number] = kind

    def base(self, dataset: Dataset) -> Relation:
        """A scenario table's columns, each its own lineage."""
        self.tables.add(dataset.name)
        relation: Relation = {}
        for c in dataset.columns:
            bounds = None if c.lower is None or c.upper is None else (c.lower, c.upper)
            source = frozenset({(dataset.name, c.name)})
            relation[c.name] = Lineage(c.tag, source, KINDS[c.type], bounds, c.join_domain)
        return relation
