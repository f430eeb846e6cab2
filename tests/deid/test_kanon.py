"""Record-level products: generalization steps, k-anonymity, l-diversity and the search.

Every achieved k is recounted here without deid (DuckDB or collections.Counter), so a
report that merely repeated an earlier number would fail.
"""

from __future__ import annotations

import contextlib
import itertools
import json
from collections import Counter
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deid.errors import AnonymityNotMet, DeidError
from deid.generalize import (
    AgeBand,
    DateTruncate,
    Generalization,
    MaskPrefix,
    RollUp,
    Round,
    Suppress,
    TopBottomCode,
    generalize,
    step_from_json,
)
from deid.kanon import anonymize, check_k_anonymity, search_generalization
from sandbox.city import DISTRICTS
from sandbox.synth import generate_city

QIS = ("birth_date", "district", "gender")
REFERENCE = date(2025, 1, 1)
URBAN = {district: ("城区" if i < 4 else "郊区") for i, district in enumerate(DISTRICTS)}
BANDS = AgeBand("birth_date", 10, REFERENCE)
ROLL_UP = RollUp("district", URBAN)


@pytest.fixture(scope="module")
def residents(tmp_path_factory: pytest.TempPathFactory) -> pa.Table:
    out: Path = tmp_path_factory.mktemp("city")
    generate_city(5000, 7, out)
    return pq.read_table(out / "residents.parquet")


def class_keys(table: pa.Table, qis: Sequence[str]) -> list[tuple[Any, ...]]:
    """Each row's quasi-identifier values; with none left, every row shares the empty key."""
    return list(zip(*(column(table, qi) for qi in qis), strict=True)) or [()] * table.num_rows


def class_sizes(table: pa.Table, qis: Sequence[str]) -> Counter[tuple[Any, ...]]:
    return Counter(class_keys(table, qis))


def duckdb_smallest_class(table: pa.Table, qis: Sequence[str]) -> int:
    columns = ", ".join(f'"{qi}"' for qi in qis)
    with duckdb.connect() as con:
        con.register("released", table)
        row = con.execute(
            f"SELECT min(n) FROM (SELECT count(*) AS n FROM released GROUP BY {columns})"
        ).fetchone()
    assert row is not None
    return int(row[0])


def column(table: pa.Table, name: str) -> list[Any]:
    return list(table.column(name).to_pylist())


# ---- the synthetic residents -------------------------------------------------------------


def test_raw_quasi_identifiers_are_far_from_10_anonymous(residents: pa.Table) -> None:
    report = check_k_anonymity(residents, QIS, 10)
    sizes = class_sizes(residents, QIS)
    assert report.achieved_k == min(sizes.values()) == duckdb_smallest_class(residents, QIS) == 1
    assert report.classes == len(sizes)
    assert report.rows_below_k == sum(n for n in sizes.values() if n < 10)
    assert report.share_below_k > 0.99 and not report.ok


def test_ten_year_bands_top_coded_at_80_and_urban_rural_reach_k10(residents: pa.Table) -> None:
    steps = [AgeBand("birth_date", 10, REFERENCE, top=80), ROLL_UP]
    result = anonymize(residents, QIS, 10, steps)
    assert result.suppressed_rows == 0 and result.table.num_rows == residents.num_rows
    assert result.report.ok
    assert result.report.achieved_k == duckdb_smallest_class(result.table, QIS) >= 10
    assert set(column(result.table, "district")) == {"城区", "郊区"}
    assert "80+" in column(result.table, "birth_date")


def test_refused_when_k_is_not_met_and_nothing_may_be_suppressed(residents: pa.Table) -> None:
    generalized = generalize(residents, [BANDS, ROLL_UP])
    smallest = duckdb_smallest_class(generalized, QIS)
    assert smallest < 10
    with pytest.raises(AnonymityNotMet, match=rf"achieved k={smallest} against target k=10.*would need"):
        anonymize(residents, QIS, 10, [BANDS, ROLL_UP])


def test_suppression_within_budget_removes_exactly_the_small_classes(residents: pa.Table) -> None:
    generalized = generalize(residents, [BANDS, ROLL_UP])
    sizes = class_sizes(generalized, QIS)
    small = {key for key, n in sizes.items() if n < 10}
    expected = [
        rid
        for rid, key in zip(column(generalized, "resident_id"), class_keys(generalized, QIS), strict=True)
        if key not in small
    ]
    result = anonymize(residents, QIS, 10, [BANDS, ROLL_UP], max_suppression=0.01)
    assert result.suppressed_rows == sum(sizes[key] for key in small) > 0
    assert column(result.table, "resident_id") == expected
    assert result.report.achieved_k == min(class_sizes(result.table, QIS).values()) >= 10
    assert result.report.rows == result.table.num_rows


@pytest.mark.parametrize("budget", [0.0, 0.01])
def test_search_finds_a_minimal_combination(residents: pa.Table, budget: float) -> None:
    ladders: dict[str, list[Generalization]] = {
        "birth_date": [
            DateTruncate("birth_date", "year"),
            AgeBand("birth_date", 5, REFERENCE, top=80),
            AgeBand("birth_date", 10, REFERENCE, top=80),
            Suppress("birth_date"),
        ],
        "district": [ROLL_UP, Suppress("district")],
        "gender": [Suppress("gender")],
    }
    result = search_generalization(residents, QIS, 10, ladders, max_suppression=budget)
    kept = result.report.quasi_identifiers
    assert result.report.achieved_k == duckdb_smallest_class(result.table, kept) >= 10
    height = sum(ladders[step.column].index(step) + 1 for step in result.steps)
    suppressed_at_height = []
    for levels in itertools.product(*(range(len(ladders[qi]) + 1) for qi in QIS)):
        steps = [ladders[qi][level - 1] for qi, level in zip(QIS, levels, strict=True) if level]
        if sum(levels) < height:
            with pytest.raises(AnonymityNotMet):
                anonymize(residents, QIS, 10, steps, max_suppression=budget)
        elif sum(levels) == height:
            with contextlib.suppress(AnonymityNotMet):
                suppressed_at_height.append(
                    anonymize(residents, QIS, 10, steps, max_suppression=budget).suppressed_rows
                )
    assert result.suppressed_rows == min(suppressed_at_height)
    assert search_generalization(residents, QIS, 10, ladders, max_suppression=budget).steps == result.steps


def test_search_refuses_when_even_the_coarsest_rungs_fall_short(residents: pa.Table) -> None:
    ladders: dict[str, list[Generalization]] = {"district": [ROLL_UP]}
    with pytest.raises(AnonymityNotMet, match="no combination"):
        search_generalization(residents, QIS, 10, ladders)
    with pytest.raises(DeidError, match="not a declared quasi-identifier"):
        search_generalization(residents, QIS, 10, {"education": [Suppress("education")]})
    with pytest.raises(DeidError, match="other columns"):
        search_generalization(residents, QIS, 10, {"gender": [Suppress("district")]})


# ---- l-diversity, nulls and arguments ----------------------------------------------------

DIAGNOSES = pa.table(
    {
        "band": ["30-39"] * 3 + ["40-49"] * 3,
        "diagnosis": ["flu", "flu", "flu", "flu", "asthma", None],
    }
)


def test_a_class_with_one_sensitive_value_fails_l2() -> None:
    report = check_k_anonymity(DIAGNOSES, ["band"], 3, sensitive="diagnosis", l=2)
    assert report.achieved_k == 3 and report.achieved_l == 1 and not report.ok
    assert report.rows_below_l == report.rows_failing == 3 and report.rows_below_k == 0
    with pytest.raises(AnonymityNotMet, match="achieved l=1 against target l=2"):
        anonymize(DIAGNOSES, ["band"], 3, [], sensitive="diagnosis", l=2)
    result = anonymize(DIAGNOSES, ["band"], 3, [], sensitive="diagnosis", l=2, max_suppression=0.5)
    assert column(result.table, "band") == ["40-49"] * 3 and result.report.achieved_l == 2


def test_null_sensitive_values_add_no_diversity() -> None:
    report = check_k_anonymity(DIAGNOSES, ["band"], 1, sensitive="diagnosis", l=3)
    assert report.achieved_l == 1 and report.rows_below_l == 6


def test_null_quasi_identifiers_form_one_class_of_their_own() -> None:
    table = pa.table({"zone": [None, None, None, "a", "a", "a"]})
    report = check_k_anonymity(table, ["zone"], 3)
    assert report.ok and report.classes == 2


def test_empty_tables_are_never_released() -> None:
    empty = pa.table({"zone": pa.array([], pa.string())})
    assert not check_k_anonymity(empty, ["zone"], 1).ok
    with pytest.raises(AnonymityNotMet, match="empty"):
        anonymize(empty, ["zone"], 1, [], max_suppression=1.0)


def test_bad_arguments_are_refused() -> None:
    for kwargs, message in (
        ({"k": 0}, "k must be"),
        ({"k": 2, "l": 2}, "needs a sensitive"),
        ({"k": 2, "quasi_identifiers": ["band", "band"]}, "twice"),
        ({"k": 2, "quasi_identifiers": ["age"]}, "no column 'age'"),
        ({"k": 2, "sensitive": "band"}, "both"),
    ):
        arguments: dict[str, Any] = {"quasi_identifiers": ["band"], **kwargs}
        with pytest.raises(DeidError, match=message):
            check_k_anonymity(DIAGNOSES, **arguments)
    with pytest.raises(DeidError, match="max_suppression"):
        anonymize(DIAGNOSES, ["band"], 2, [], max_suppression=1.5)


# ---- the steps on edge cases -------------------------------------------------------------


def apply(step: Generalization, values: pa.Array) -> list[Any]:
    return column(step.apply(pa.table({step.column: values})), step.column)


def test_age_bands_at_birthdays_leap_days_and_the_top() -> None:
    births = pa.array(
        [date(2015, 1, 1), date(2015, 1, 2), date(1945, 1, 1), date(1945, 1, 2), date(1900, 1, 1), None],
        pa.date32(),
    )
    banded = ["10-19", "0-9", "80-89", "70-79", "120-129", None]
    assert apply(AgeBand("b", 10, REFERENCE), births) == banded
    assert apply(AgeBand("b", 10, REFERENCE, top=80), births) == [*banded[:2], "80+", "70-79", "80+", None]
    leap = pa.array([date(2016, 2, 29)], pa.date32())
    assert apply(AgeBand("b", 1, date(2025, 2, 28)), leap) == ["8-8"]
    assert apply(AgeBand("b", 1, date(2025, 3, 1)), leap) == ["9-9"]
    with pytest.raises(DeidError, match="fall after"):
        apply(AgeBand("b", 10, REFERENCE), pa.array([date(2025, 1, 2)], pa.date32()))
    with pytest.raises(DeidError, match="width"):
        AgeBand("b", 0, REFERENCE)
    with pytest.raises(DeidError, match="multiple"):
        AgeBand("b", 10, REFERENCE, top=85)
    with pytest.raises(DeidError, match="cannot generalize column 'b'"):
        apply(AgeBand("b", 10, REFERENCE), pa.array(["1990-01-01"]))


def test_dates_truncate_to_the_first_day_of_their_period() -> None:
    days = pa.array([date(2024, 3, 31), date(2024, 4, 1), date(2024, 12, 31), None], pa.date32())
    quarters = DateTruncate("d", "quarter").apply(pa.table({"d": days}))
    assert quarters.schema.field("d").type == pa.date32()
    assert column(quarters, "d") == [date(2024, 1, 1), date(2024, 4, 1), date(2024, 10, 1), None]
    assert apply(DateTruncate("d", "year"), days)[2] == date(2024, 1, 1)
    assert apply(DateTruncate("d", "month"), pa.array([date(2024, 2, 29)]))[0] == date(2024, 2, 1)
    with pytest.raises(DeidError, match="unit"):
        DateTruncate("d", "week")  # type: ignore[arg-type]


def test_roll_up_maps_unmapped_values_to_other_and_keeps_nulls() -> None:
    assert apply(RollUp("d", URBAN), pa.array(["城东区", "高新区", "外市", None])) == [
        "城区", "郊区", "其他", None,
    ]  # fmt: skip
    assert apply(RollUp("n", {"1": "small"}, other="large"), pa.array([1, 7, None])) == [
        "small",
        "large",
        None,
    ]
    with pytest.raises(DeidError, match="empty"):
        RollUp("d", {})


def test_top_and_bottom_coding_keep_the_bounds_and_nulls() -> None:
    ages = pa.array([None, 17, 18, 65, 66], pa.int32())
    coded = TopBottomCode("a", lower=18, upper=65).apply(pa.table({"a": ages}))
    assert coded.schema.field("a").type == pa.int32()
    assert column(coded, "a") == [None, 18, 18, 65, 65]
    assert apply(TopBottomCode("a", upper=65), ages) == [None, 17, 18, 65, 65]
    with pytest.raises(DeidError, match="cannot generalize"):
        apply(TopBottomCode("a", lower=17.5), ages)
    with pytest.raises(DeidError, match="above upper"):
        TopBottomCode("a", lower=5, upper=1)
    with pytest.raises(DeidError, match="bound"):
        TopBottomCode("a")


def test_rounding_goes_to_the_nearest_multiple_halves_upward() -> None:
    assert apply(Round("x", 10), pa.array([14, 15, -15, 25, None])) == [10, 20, -10, 30, None]
    assert apply(Round("x", 0.5), pa.array([1.24, 1.25])) == [1.0, 1.5]
    with pytest.raises(DeidError, match="positive"):
        Round("x", 0)


def test_suppress_drops_only_its_column() -> None:
    table = pa.table({"name": ["张伟"], "zone": ["a"]})
    assert Suppress("name").apply(table).column_names == ["zone"]
    with pytest.raises(DeidError, match="no column 'phone'"):
        Suppress("phone").apply(table)


def test_mask_prefix_keeps_length_and_nulls() -> None:
    codes = pa.array(["459002", "45", "城东区一", None, "4590\n12"])
    assert apply(MaskPrefix("c", 4), codes) == ["4590**", "45", "城东区一", None, "4590***"]
    assert apply(MaskPrefix("c", 2), codes)[2] == "城东**"
    with pytest.raises(DeidError, match="keep"):
        MaskPrefix("c", -1)


# ---- descriptions for the manifest -------------------------------------------------------

ALL_STEPS: tuple[Generalization, ...] = (
    AgeBand("birth_date", 5, REFERENCE, top=90),
    DateTruncate("established_date", "quarter"),
    ROLL_UP,
    TopBottomCode("registered_capital", lower=0, upper=50_000.5),
    Round("household_size", 2),
    Suppress("name"),
    MaskPrefix("region", 4),
)


@pytest.mark.parametrize("step", ALL_STEPS, ids=lambda step: step.name)
def test_step_descriptions_round_trip_through_json(step: Generalization) -> None:
    text = json.dumps(step.to_json(), ensure_ascii=False)
    rebuilt = step_from_json(json.loads(text))
    assert rebuilt == step and hash(rebuilt) == hash(step)
    assert json.loads(text)["step"] == step.name


def test_unknown_or_malformed_descriptions_are_refused() -> None:
    with pytest.raises(DeidError, match="unknown generalization step"):
        step_from_json({"step": "shuffle", "column": "x"})
    with pytest.raises(DeidError, match="cannot rebuild"):
        step_from_json({"step": "age_band", "column": "b", "width": 10})


def test_roll_up_keeps_its_own_copy_of_the_mapping() -> None:
    mapping = {"a": "x"}
    step = RollUp("c", mapping)
    mapping["b"] = "y"
    assert dict(step.mapping) == {"a": "x"}


def test_results_describe_themselves_for_the_manifest(residents: pa.Table) -> None:
    result = anonymize(residents, QIS, 10, [BANDS, ROLL_UP], max_suppression=0.01)
    manifest = json.loads(json.dumps(result.to_json(), ensure_ascii=False))
    assert [step_from_json(step) for step in manifest["steps"]] == [BANDS, ROLL_UP]
    assert manifest["report"]["achieved_k"] == result.report.achieved_k and manifest["report"]["ok"]
    assert manifest["suppressed_rows"] == result.suppressed_rows


# ---- the property ------------------------------------------------------------------------

ROWS = st.lists(
    st.tuples(
        st.one_of(st.none(), st.integers(0, 3)),
        st.sampled_from(["x", "y", None]),
        st.sampled_from(["p", "q", "r", None]),
    ),
    max_size=30,
)
STEP_CHOICES: tuple[tuple[Generalization, ...], ...] = (
    (),
    (TopBottomCode("a", upper=1),),
    (Suppress("b"),),
    (TopBottomCode("a", lower=2), Suppress("b")),
)


@settings(max_examples=150, deadline=None)
@given(
    rows=ROWS,
    k=st.integers(1, 4),
    diversity=st.sampled_from([None, 1, 2]),
    steps=st.sampled_from(STEP_CHOICES),
    budget=st.sampled_from([0.0, 0.2, 0.5, 1.0]),
)
def test_anonymize_output_is_k_anonymous_or_it_raised(
    rows: list[tuple[int | None, str | None, str | None]],
    k: int,
    diversity: int | None,
    steps: tuple[Generalization, ...],
    budget: float,
) -> None:
    table = pa.table(
        {
            "a": pa.array([row[0] for row in rows], pa.int64()),
            "b": pa.array([row[1] for row in rows], pa.string()),
            "s": pa.array([row[2] for row in rows], pa.string()),
        }
    )
    sensitive = None if diversity is None else "s"
    try:
        result = anonymize(
            table, ["a", "b"], k, steps, sensitive=sensitive, l=diversity, max_suppression=budget
        )
    except AnonymityNotMet:
        generalized = generalize(table, steps)
        qis = [qi for qi in ("a", "b") if qi in generalized.column_names]
        failing = _failing_rows(generalized, qis, k, diversity)
        assert not rows or failing == len(rows) or failing / len(rows) > budget
        return
    qis = list(result.report.quasi_identifiers)
    sizes = class_sizes(result.table, qis)
    assert min(sizes.values()) >= k and result.report.achieved_k == min(sizes.values())
    assert _failing_rows(result.table, qis, k, diversity) == 0
    assert result.suppressed_rows == len(rows) - result.table.num_rows <= budget * len(rows)


def _failing_rows(table: pa.Table, qis: Sequence[str], k: int, diversity: int | None) -> int:
    keys = class_keys(table, qis)
    sizes = Counter(keys)
    seen: dict[tuple[Any, ...], set[str]] = {key: set() for key in sizes}
    for key, value in zip(keys, column(table, "s"), strict=True):
        if value is not None:
            seen[key].add(value)
    failing = {
        key for key, n in sizes.items() if n < k or (diversity is not None and len(seen[key]) < diversity)
    }
    return sum(sizes[key] for key in failing)
