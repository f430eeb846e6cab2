"""Differencing attacks over several releases are caught; honest release histories are not."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pytest

from outbound_review.differencing import (
    RULE_ID,
    DifferencingFinding,
    GroupKey,
    Interval,
    Predicate,
    ReleaseDescriptor,
    ReleaseIndex,
    ValueSet,
)
from outbound_review.errors import ReviewError

MIN_CELL = 10
DISTRICTS = ["North", "South", "East", "West"]
EDUCATION = ["primary", "secondary", "tertiary"]


@pytest.fixture(scope="module")
def db() -> duckdb.DuckDBPyConnection:
    """2,000 synthetic residents with a few rare people planted: three live in the Islet,
    two North residents hold doctorates, four North residents are exactly 30."""
    rng = np.random.default_rng(7)
    n = 2000
    district = rng.choice(DISTRICTS, n).astype(object)
    education = rng.choice(EDUCATION, n).astype(object)
    age = rng.choice([a for a in range(18, 80) if a != 30], n)
    district[:3] = "Islet"
    district[3:9] = "North"
    education[3:5] = "doctorate"
    age[5:9] = 30
    people = pa.table({"district": list(district), "education": list(education), "age": age})
    con = duckdb.connect()
    con.register("people", people)
    return con


def count(
    db: duckdb.DuckDBPyConnection, where: str = "TRUE", group: Sequence[str] = (), having: int = 0
) -> dict[GroupKey, int]:
    cols = ", ".join(group)
    select = f"{cols}, " if group else ""
    sql = f"SELECT {select}count(*) FROM people WHERE {where}"
    if group:
        sql += f" GROUP BY {cols}"
    sql += f" HAVING count(*) >= {having}"
    return {tuple(row[:-1]): int(row[-1]) for row in db.execute(sql).fetchall()}


def release(
    db: duckdb.DuckDBPyConnection,
    rid: str,
    where: str = "TRUE",
    filter: Mapping[str, Predicate] | None = None,
    group: Sequence[str] = (),
    *,
    scenario: str = "s1",
    operator: str = "op1",
    datasets: Sequence[str] = ("residents",),
    having: int = 0,
    opaque: bool = False,
) -> ReleaseDescriptor:
    """A descriptor whose cells are the real counts of ``where`` grouped by ``group``."""
    return ReleaseDescriptor.create(
        rid, scenario, operator, datasets, count(db, where, group, having),
        filter=filter, grouping=group, opaque=opaque,
    )  # fmt: skip


def run(sequence: Sequence[ReleaseDescriptor]) -> list[DifferencingFinding]:
    """Release each in turn; the findings of the last one."""
    index = ReleaseIndex()
    for r in sequence[:-1]:
        index.add(r)
    return index.check(sequence[-1], MIN_CELL)


def isin(*values: object) -> ValueSet:
    return ValueSet(frozenset(values))  # type: ignore[arg-type]


def notin(*values: object) -> ValueSet:
    return ValueSet(frozenset(values), negated=True)  # type: ignore[arg-type]


def only(findings: list[DifferencingFinding]) -> DifferencingFinding:
    assert len(findings) == 1, findings
    assert RULE_ID in findings[0].explanation
    return findings[0]


def test_total_then_total_minus_one(db: duckdb.DuckDBPyConnection) -> None:
    f = only(run([release(db, "A"), release(db, "B", "district <> 'Islet'", {"district": notin("Islet")})]))
    assert (f.kind, f.other_release_ids, f.group_key, f.difference) == ("nested", ("A",), (), 3)


def test_total_minus_one_then_total(db: duckdb.DuckDBPyConnection) -> None:
    f = only(run([release(db, "B", "district <> 'Islet'", {"district": notin("Islet")}), release(db, "A")]))
    assert (f.other_release_ids, f.difference) == (("B",), 3)


def test_complementary_filter_with_small_complement(db: duckdb.DuckDBPyConnection) -> None:
    where = "district IN ('North', 'South', 'East', 'West')"
    findings = run(
        [
            release(db, "T", group=["education"]),
            release(db, "C", where, {"district": isin(*DISTRICTS)}, ["education"]),
        ]
    )
    islet = count(db, "district = 'Islet'", ["education"])
    assert {f.group_key: f.difference for f in findings} == islet
    assert {f.other_release_ids for f in findings} == {("T",)}


def test_filter_narrowing_by_one_value(db: duckdb.DuckDBPyConnection) -> None:
    three = release(
        db,
        "A",
        "education IN ('primary', 'doctorate', 'tertiary')",
        {"education": isin("primary", "doctorate", "tertiary")},
        ["district"],
    )
    two = release(
        db,
        "B",
        "education IN ('primary', 'tertiary')",
        {"education": isin("primary", "tertiary")},
        ["district"],
    )
    f = only(run([three, two]))
    assert (f.other_release_ids, f.group_key, f.difference) == (("A",), ("North",), 2)


def test_refinement_with_suppressed_cells(db: duckdb.DuckDBPyConnection) -> None:
    by_district = release(db, "A", group=["district"])
    suppressed = release(db, "B", group=["district", "education"], having=MIN_CELL)
    f = only(run([by_district, suppressed]))
    assert (f.other_release_ids, f.group_key, f.difference) == (("A",), ("North",), 2)


def test_single_value_filter_inside_a_grouped_cell(db: duckdb.DuckDBPyConnection) -> None:
    where = "district = 'North' AND education <> 'doctorate'"
    narrow = release(db, "B", where, {"district": isin("North"), "education": notin("doctorate")})
    f = only(run([release(db, "A", group=["district"]), narrow]))
    assert (f.other_release_ids, f.group_key, f.difference) == (("A",), ("North",), 2)


def test_overlapping_age_bands(db: duckdb.DuckDBPyConnection) -> None:
    wide = release(db, "A", "age BETWEEN 20 AND 30", {"age": Interval(20, 30)}, ["district"])
    short = release(db, "B", "age BETWEEN 20 AND 29", {"age": Interval(20, 29)}, ["district"])
    f = only(run([short, wide]))
    assert (f.other_release_ids, f.group_key, f.difference) == (("B",), ("North",), 4)


def test_interval_bound_shifted_by_one(db: duckdb.DuckDBPyConnection) -> None:
    closed = release(db, "A", "age >= 30", {"age": Interval(30, None)})
    open_ = release(db, "B", "age > 30", {"age": Interval(30, None, low_closed=False)})
    f = only(run([closed, open_]))
    assert (f.other_release_ids, f.difference) == (("A",), 4)


def test_opaque_release_beside_a_narrow_one(db: duckdb.DuckDBPyConnection) -> None:
    narrow = release(db, "B", "district <> 'Islet'", {"district": notin("Islet")})
    opaque = release(db, "O", "length(district) > 4", opaque=True)
    f = only(run([narrow, opaque]))
    assert (f.kind, f.other_release_ids, f.difference) == ("opaque", ("B",), None)
    assert only(run([opaque, narrow])).other_release_ids == ("O",)


@pytest.mark.parametrize("order", [(0, 1, 2), (1, 2, 0), (2, 0, 1)])
def test_three_releases_partitioning_nearly_everyone(
    db: duckdb.DuckDBPyConnection, order: tuple[int, ...]
) -> None:
    releases = [
        release(db, "T"),
        release(db, "B1", "district IN ('North', 'South')", {"district": isin("North", "South")}),
        release(db, "B2", "district IN ('East', 'West')", {"district": isin("East", "West")}),
    ]
    f = only(run([releases[i] for i in order]))
    newest = releases[order[-1]].release_id
    assert f.kind == "combined" and f.difference == 3
    assert set(f.other_release_ids) == {"T", "B1", "B2"} - {newest}


def test_same_operator_across_scenarios(db: duckdb.DuckDBPyConnection) -> None:
    total = release(db, "A", scenario="housing")
    minus_one = release(db, "B", "district <> 'Islet'", {"district": notin("Islet")}, scenario="transport")
    assert only(run([total, minus_one])).other_release_ids == ("A",)


def test_same_scenario_across_operators(db: duckdb.DuckDBPyConnection) -> None:
    total = release(db, "A", operator="op1")
    minus_one = release(db, "B", "district <> 'Islet'", {"district": notin("Islet")}, operator="op2")
    assert only(run([total, minus_one])).other_release_ids == ("A",)


def test_attack_survives_save_and_load(db: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    index = ReleaseIndex()
    index.add(release(db, "A", "age BETWEEN 20 AND 30", {"age": Interval(20, 30)}, ["district"]))
    index.add(release(db, "C", "education IN ('primary')", {"education": isin("primary")}))
    index.save(tmp_path / "releases.jsonl")
    loaded = ReleaseIndex.load(tmp_path / "releases.jsonl")
    assert len(loaded) == 2
    short = release(db, "B", "age BETWEEN 20 AND 29", {"age": Interval(20, 29)}, ["district"])
    assert loaded.check(short, MIN_CELL) == index.check(short, MIN_CELL) != []


# Honest histories.


def test_disjoint_datasets(db: duckdb.DuckDBPyConnection) -> None:
    total = release(db, "A", datasets=["residents"])
    minus_one = release(
        db, "B", "district <> 'Islet'", {"district": notin("Islet")}, datasets=["residents", "credit"]
    )
    assert run([total, minus_one]) == []


def test_populations_that_do_not_nest(db: duckdb.DuckDBPyConnection) -> None:
    a = release(
        db, "A", "district IN ('North', 'South')", {"district": isin("North", "South")}, ["education"]
    )
    b = release(db, "B", "district IN ('South', 'East')", {"district": isin("South", "East")}, ["education"])
    assert run([a, b]) == []


def test_large_differences(db: duckdb.DuckDBPyConnection) -> None:
    without_primary = release(
        db, "B", "education <> 'primary'", {"education": notin("primary")}, ["district"], having=MIN_CELL
    )
    assert run([release(db, "A", group=["district"], having=MIN_CELL), without_primary]) == []


def test_identical_rerelease(db: duckdb.DuckDBPyConnection) -> None:
    assert run([release(db, "A", group=["district"]), release(db, "A2", group=["district"])]) == []


def test_coarser_after_finer_with_large_differences(db: duckdb.DuckDBPyConnection) -> None:
    where = "education IN ('primary', 'secondary')"
    fine = release(
        db,
        "B",
        where,
        {"education": isin("primary", "secondary")},
        ["district", "education"],
        having=MIN_CELL,
    )
    assert run([fine, release(db, "A", group=["district"], having=MIN_CELL)]) == []


def test_complementary_pair_with_the_total(db: duckdb.DuckDBPyConnection) -> None:
    inside = release(db, "I", "district IN ('North', 'South')", {"district": isin("North", "South")})
    outside = release(db, "O", "district NOT IN ('North', 'South')", {"district": notin("North", "South")})
    assert run([release(db, "T"), inside, outside]) == []


def test_unrelated_operator_in_another_scenario(db: duckdb.DuckDBPyConnection) -> None:
    total = release(db, "A", scenario="housing", operator="op1")
    minus_one = release(
        db, "B", "district <> 'Islet'", {"district": notin("Islet")}, scenario="transport", operator="op2"
    )
    assert run([total, minus_one]) == []


def test_opaque_beside_a_distant_total(db: duckdb.DuckDBPyConnection) -> None:
    opaque = release(db, "O", "length(district) = 4", opaque=True)
    assert run([release(db, "A"), opaque]) == []


def test_overlapping_intervals_that_do_not_nest(db: duckdb.DuckDBPyConnection) -> None:
    a = release(db, "A", "age BETWEEN 20 AND 40", {"age": Interval(20, 40)})
    b = release(db, "B", "age BETWEEN 30 AND 50", {"age": Interval(30, 50)})
    assert run([a, b]) == []


def test_full_refinement_adds_nothing(db: duckdb.DuckDBPyConnection) -> None:
    assert (
        run([release(db, "A", group=["district"]), release(db, "B", group=["district", "education"])]) == []
    )


def test_groupings_that_do_not_nest(db: duckdb.DuckDBPyConnection) -> None:
    assert run([release(db, "A", group=["district"]), release(db, "B", group=["education"])]) == []


def test_values_that_do_not_compare(db: duckdb.DuckDBPyConnection) -> None:
    text = release(db, "A", "TRUE", {"age": Interval("a", "z")})
    ints = release(db, "B", "age BETWEEN 20 AND 29", {"age": Interval(20, 29)})
    assert run([text, ints]) == []


def test_malformed_descriptors_are_refused() -> None:
    with pytest.raises(ReviewError, match=RULE_ID):
        ReleaseDescriptor.create("A", "s", "o", ["residents"], {("North",): 3})
    with pytest.raises(ReviewError, match=RULE_ID):
        ReleaseDescriptor.create("A", "s", "o", [], {(): 3})
    index = ReleaseIndex()
    index.add(ReleaseDescriptor.create("A", "s", "o", ["residents"], {(): 3}))
    with pytest.raises(ReviewError, match="already"):
        index.add(ReleaseDescriptor.create("A", "s", "o", ["residents"], {(): 3}))
