"""The query benchmark's fixed query set, and how its answers must agree across engines.

Every engine's answer is reduced to the same shape, :data:`Cells` (group key → output →
value), and checked against the bounded floor's exact answer: the raw answer must equal it
where bounding keeps every row, Veilbox's and SmartNoise's must lie within their declared
noise (plus, where a unit's rows are sampled, a sampling allowance). So a fast wrong path
fails the run instead of winning it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from benchmarks._report import check
from deid.dp import FIXED_POINT
from sandbox import dp
from sandbox.dp import DpConfig, DpPlan
from sandbox.policy import ScenarioPolicy, check_query

Cells = dict[tuple[str, ...], dict[str, float]]
"""An answer: each group key (as text) → each aggregate output → its value."""

# P(|Laplace| > 20 scales) = e^-20: a correct run of a few thousand cells never trips it.
NOISE_SCALES = 20.0
_EXACT = 1e-9


class EngineFailed(Exception):
    """An engine could not answer a query within its limits: recorded, not a wrong answer."""


@dataclass(frozen=True)
class Query:
    """One analytical query, as a developer submits it, and what bounding does to its answer.

    ``sql`` holds ``{tag}`` in one output alias: a unique tag per job makes every DP job a new
    query, which the privacy budget's answer cache would otherwise serve for free.
    ``bounding`` says what per-unit contribution bounding changes: ``none`` (one row and one
    group per unit, so bounded = raw), ``rows`` (each unit keeps one of its rows, all in one
    group) or ``groups`` (each unit keeps one of its groups). ``spread`` bounds how far a unit's
    rows differ in a measure, relative; ``sampling`` is the allowance, in standard deviations
    times 1/√n, for cells whose membership is sampled.
    """

    name: str
    sql: str
    bounding: Literal["none", "rows", "groups"] = "none"
    spread: float = 0.0
    sampling: float = 0.0
    smartnoise: str | None = None
    smartnoise_gap: str = ""

    def text(self, tag: str = "") -> str:
        """The SQL with ``tag`` appended to its tagged alias."""
        return self.sql.format(tag=tag)


QUERIES = (
    Query(
        "count by district × gender",
        "SELECT district, gender, COUNT(*) AS n{tag} FROM residents GROUP BY district, gender",
        smartnoise="SELECT district, gender, COUNT(*) AS n FROM city.residents GROUP BY district, gender",
    ),
    Query(
        "avg household size by district",
        "SELECT district, AVG(household_size) AS avg_household{tag} FROM residents GROUP BY district",
        smartnoise=(
            "SELECT district, AVG(household_size) AS avg_household FROM city.residents GROUP BY district"
        ),
    ),
    Query(
        "salary sum by month",
        "SELECT month, SUM(base_salary) AS total_salary{tag} FROM social_insurance GROUP BY month",
        bounding="groups",
        sampling=12.0,
        # `month` is a keyword in SmartNoise's grammar, so its copy of the column is pay_month.
        smartnoise=(
            "SELECT pay_month, SUM(base_salary) AS total_salary FROM city.social_insurance GROUP BY pay_month"
        ),
    ),
    Query(
        "residents × social_insurance join",
        "SELECT r.district, COUNT(*) AS n{tag}, AVG(s.base_salary) AS avg_salary FROM residents AS r "
        "JOIN social_insurance AS s ON r.resident_id = s.resident_id GROUP BY r.district",
        bounding="rows",
        # Contribution bases rise by at most 8% in July, so any month of a worker is within 8%.
        spread=0.08,
        smartnoise_gap="SmartNoise SQL 1.0.10 refuses it: 'Support for JOIN queries is currently disabled'",
    ),
    Query(
        "filter + group by education",
        "SELECT education, COUNT(*) AS n{tag}, SUM(household_size) AS persons FROM residents "
        "WHERE employed AND gender = 'F' GROUP BY education",
        smartnoise=(
            "SELECT education, COUNT(*) AS n, SUM(household_size) AS persons FROM city.residents "
            "WHERE employed = 1 AND gender = 'F' GROUP BY education"
        ),
    ),
    Query(
        "COUNT DISTINCT insured residents",
        "SELECT COUNT(DISTINCT resident_id) AS insured{tag} FROM social_insurance",
        smartnoise="SELECT COUNT(DISTINCT resident_id) AS insured FROM city.social_insurance",
    ),
)


@dataclass(frozen=True)
class Noise:
    """The noise an engine declares: the scale of its counts and of each sum, in value units."""

    count: float
    sums: Mapping[str, float] = field(default_factory=dict)
    threshold: float | None = None


@dataclass(frozen=True)
class Prepared:
    """A query with the DP plan the bounded floor runs: its rewrite, seeded once for the whole run."""

    query: Query
    plan: DpPlan

    @property
    def kinds(self) -> dict[str, str]:
        """Each aggregate output's kind (count, count_distinct, sum, avg)."""
        return {name: kind for name, kind, _ in self.plan.outputs if kind != "group"}


def prepare(policy: ScenarioPolicy, config: DpConfig) -> list[Prepared]:
    """Every query of the set with its plan under ``policy`` and ``config``."""
    return [Prepared(q, dp.plan(check_query(q.text(), policy), config, policy)) for q in QUERIES]


def declared_noise(guarantee: Mapping[str, Any], plan: DpPlan) -> Noise:
    """The noise a Veilbox result's guarantee declares, per output of ``plan``'s query."""
    scales = guarantee["scales"]
    sums = {
        name: scales[str(source)] / FIXED_POINT
        for name, kind, source in plan.outputs
        if kind in ("sum", "avg")
    }
    count = max(scales.get("__dp_n", 0.0), scales.get("__dp_units", 0.0))
    return Noise(count, sums, guarantee.get("threshold"))


@dataclass(frozen=True)
class Exact:
    """The bounded floor's exact answer, the output kinds, and how many rows each cell kept."""

    cells: Cells
    kinds: Mapping[str, str]
    rows: Mapping[tuple[str, ...], int]


def cells_of(rows: Iterable[Mapping[str, Any]], kinds: Mapping[str, str], tag: str = "") -> Cells:
    """An answer table (output-named columns, ``tag`` appended to one alias) as cells."""
    cells: Cells = {}
    for row in rows:
        named = {_untagged(name, tag): value for name, value in row.items()}
        key = tuple(str(named[name]) for name in named if name not in kinds)
        cells[key] = {name: _number(named[name]) for name in kinds}
    return cells


def exact_of(rows: Iterable[Mapping[str, Any]], plan: DpPlan) -> Exact:
    """The bounded floor's answer: the plan's engine columns turned into the query's outputs."""
    kinds = {name: kind for name, kind, _ in plan.outputs if kind != "group"}
    cells: Cells = {}
    kept: dict[tuple[str, ...], int] = {}
    for row in rows:
        key = tuple(str(row[str(source)]) for _, kind, source in plan.outputs if kind == "group")
        n = int(row["__dp_n"])
        values = {}
        for name, kind, source in plan.outputs:
            if kind in ("count", "count_distinct"):
                values[name] = float(row[str(source)])
            elif kind in ("sum", "avg"):
                total = float(row[str(source)]) / FIXED_POINT
                values[name] = total if kind == "sum" else total / max(1, n)
        cells[key], kept[key] = values, n
    return Exact(cells, kinds, kept)


def check_raw(query: Query, raw: Cells, exact: Exact) -> None:
    """Raw against bounded: equal where bounding keeps every row, never above it otherwise."""
    if query.bounding == "none":
        check(raw.keys() == exact.cells.keys(), f"{query.name}: raw and bounded groups differ")
        for key, values in exact.cells.items():
            for name, value in values.items():
                check(
                    math.isclose(raw[key][name], value, rel_tol=_EXACT),
                    f"{query.name}: raw {name}={raw[key][name]} ≠ bounded {value} at {key}",
                )
        return
    for key, values in exact.cells.items():
        check(key in raw, f"{query.name}: bounded group {key} is not in the raw answer")
        for name, value in values.items():
            if exact.kinds[name] == "avg":
                slack = query.spread + query.sampling / math.sqrt(max(1, exact.rows[key]))
                close = abs(raw[key][name] - value) <= slack * abs(raw[key][name])
                check(close, f"{query.name}: bounded {name}={value} is far from raw {raw[key][name]}")
            else:
                # Bounding drops rows; every measure here is non-negative.
                check(value <= raw[key][name] * (1 + _EXACT), f"{query.name}: bounded {name} above raw")


def check_noisy(engine: str, query: Query, noisy: Cells, exact: Exact, noise: Noise) -> None:
    """A DP answer lies within ``NOISE_SCALES`` of its declared noise (plus sampling) of the exact one."""
    count_slack = NOISE_SCALES * noise.count
    for key, values in noisy.items():
        n = exact.rows.get(key, 0)
        truth = exact.cells.get(key, dict.fromkeys(exact.kinds, 0.0))
        check(n > 0 or noise.threshold is None, f"{engine}, {query.name}: released a group with no rows")
        sampled = query.sampling / math.sqrt(max(1, n)) + query.spread
        for name, value in values.items():
            kind, want = exact.kinds[name], truth[name]
            sum_slack = NOISE_SCALES * noise.sums.get(name, 0.0)
            if kind in ("count", "count_distinct"):
                allowed = count_slack + (query.sampling / math.sqrt(max(1, n))) * n
            elif kind == "sum":
                allowed = sum_slack + sampled * abs(want)
            else:
                allowed = (sum_slack + abs(want) * count_slack) / max(1.0, n - count_slack)
                allowed += sampled * abs(want)
            check(
                abs(value - want) <= allowed + _EXACT,
                f"{engine}, {query.name}: {name}={value} at {key} is {abs(value - want):.4g} from the "
                f"exact {want:.6g}, beyond the {allowed:.4g} its declared noise allows",
            )
    floor = (noise.threshold or 0.0) + count_slack
    for key, n in exact.rows.items():
        if n > floor + query.sampling * math.sqrt(n):
            check(key in noisy, f"{engine}, {query.name}: group {key} ({n} rows) is missing")


def _untagged(name: str, tag: str) -> str:
    return name[: -len(tag)] if tag and name.endswith(tag) else name


def _number(value: Any) -> float:
    return math.nan if value is None else float(value)
