"""The synthetic city: declared schema, valid and consistent identifiers, joins, bounds, determinism."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import typer
from typer.testing import CliRunner

from deid.identifiers import is_resident_id, is_uscc
from gateway.cli.synth import synth
from sandbox.city import CITY_COLUMNS, DISTRICTS
from sandbox.errors import SandboxError
from sandbox.synth import MAX_ROWS, REGION_CODES, generate_city

ROWS = 10_000
SEED = 7
ARROW = {
    "VARCHAR": pa.string(),
    "DATE": pa.date32(),
    "DOUBLE": pa.float64(),
    "INTEGER": pa.int32(),
    "BOOLEAN": pa.bool_(),
}
MONTHS = [date(2025, month, 1) for month in range(1, 13)]

City = dict[str, pa.Table]


def _read(out: Path) -> City:
    return {name: pq.read_table(out / f"{name}.parquet") for name in CITY_COLUMNS}


def _values(table: pa.Table, column: str) -> list[object]:
    return table.column(column).to_pylist()


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, int], City]:
    out = tmp_path_factory.mktemp("city")
    return generate_city(ROWS, SEED, out), _read(out)


@pytest.fixture(scope="module")
def city(written: tuple[dict[str, int], City]) -> City:
    return written[1]


def test_files_and_counts(written: tuple[dict[str, int], City]) -> None:
    counts, city = written
    assert counts == {name: table.num_rows for name, table in city.items()}
    assert counts["residents"] == ROWS
    assert counts["enterprises"] == ROWS // 20
    assert counts["credit_records"] == ROWS // 50
    employed = pc.sum(city["residents"].column("employed")).as_py()
    assert counts["social_insurance"] == 12 * employed
    # One household head per mean household, billed monthly.
    mean_household = pc.mean(city["residents"].column("household_size")).as_py()
    assert counts["utility_usage"] == 12 * round(ROWS / mean_household)


def test_schema_is_exactly_the_declared_columns(city: City) -> None:
    for name, columns in CITY_COLUMNS.items():
        declared = [(column.name, ARROW[column.type]) for column in columns]
        assert [(field.name, field.type) for field in city[name].schema] == declared


def test_values_within_declared_bounds_and_domains(city: City) -> None:
    for name, columns in CITY_COLUMNS.items():
        table = city[name]
        for column in columns:
            values = table.column(column.name)
            assert values.null_count == 0, (name, column.name)
            if column.lower is not None and column.upper is not None:
                low, high = pc.min_max(values).values()
                assert column.lower <= low.as_py() <= high.as_py() <= column.upper, (name, column.name)
            if column.domain is not None:
                assert set(_values(table, column.name)) <= set(column.domain), (name, column.name)


def test_resident_ids_are_valid_unique_and_agree_with_the_row(city: City) -> None:
    residents = city["residents"]
    ids = _values(residents, "resident_id")
    assert len(set(ids)) == len(ids)
    region = dict(zip(DISTRICTS, REGION_CODES, strict=True))
    rows = zip(
        ids,
        _values(residents, "birth_date"),
        _values(residents, "gender"),
        _values(residents, "district"),
        strict=True,
    )
    for resident_id, born, gender, district in rows:
        assert is_resident_id(resident_id), resident_id
        assert resident_id[:6] == region[district]
        assert resident_id[6:14] == born.strftime("%Y%m%d")
        assert int(resident_id[16]) % 2 == (1 if gender == "M" else 0)


def test_region_codes_are_distinct_six_digit_codes() -> None:
    assert len(REGION_CODES) == len(DISTRICTS) == len(set(REGION_CODES))
    assert all(len(code) == 6 and code.isdigit() for code in REGION_CODES)


def test_usccs_are_valid_unique_and_carry_the_district_code(city: City) -> None:
    enterprises = city["enterprises"]
    codes = _values(enterprises, "uscc")
    assert len(set(codes)) == len(codes)
    region = dict(zip(DISTRICTS, REGION_CODES, strict=True))
    for code, district in zip(codes, _values(enterprises, "district"), strict=True):
        assert is_uscc(code), code
        assert code[2:8] == region[district]


def test_foreign_keys_hold(city: City) -> None:
    residents = city["residents"]
    people = set(_values(residents, "resident_id"))
    employed = set(_values(residents.filter(residents.column("employed")), "resident_id"))
    firms = set(_values(city["enterprises"], "uscc"))
    insured = set(_values(city["social_insurance"], "resident_id"))
    assert insured == employed
    assert set(_values(city["social_insurance"], "employer_uscc")) <= firms
    assert set(_values(city["utility_usage"], "resident_id")) <= people
    assert set(_values(city["credit_records"], "uscc")) <= firms
    assert set(_values(city["enterprises"], "legal_rep_id")) <= people


def test_legal_representatives_and_household_heads_are_adults(city: City) -> None:
    residents = city["residents"]
    born = dict(zip(_values(residents, "resident_id"), _values(residents, "birth_date"), strict=True))
    adult_by = date(2007, 1, 1)
    assert all(born[rep] <= adult_by for rep in _values(city["enterprises"], "legal_rep_id"))
    assert all(born[head] <= adult_by for head in _values(city["utility_usage"], "resident_id"))


@pytest.mark.parametrize("name", ["social_insurance", "utility_usage"])
def test_monthly_tables_have_twelve_first_of_month_rows_per_person(city: City, name: str) -> None:
    table = city[name]
    assert sorted(set(_values(table, "month"))) == MONTHS
    per_person = table.group_by("resident_id").aggregate([("month", "count_distinct"), ("month", "count")])
    assert set(_values(per_person, "month_count_distinct")) == {12}
    assert set(_values(per_person, "month_count")) == {12}


def test_distributions_have_large_firms_small_cells_and_age_dependence(city: City) -> None:
    enterprises = city["enterprises"]
    for measure in ("employee_count", "registered_capital"):
        values = enterprises.column(measure)
        median = pc.approximate_median(values).as_py()
        assert pc.max(values).as_py() > 20 * median, measure
    cells = enterprises.group_by(["industry", "district"]).aggregate([("uscc", "count")])
    assert pc.min(cells.column("uscc_count")).as_py() < 5
    residents = city["residents"]
    children = residents.filter(pc.greater(residents.column("birth_date"), pa.scalar(date(2013, 1, 1))))
    assert set(_values(children, "education")) == {"primary"}
    assert not any(_values(children, "employed"))


def test_same_seed_same_city_other_seed_other_city(city: City, tmp_path: Path) -> None:
    generate_city(ROWS, SEED, tmp_path / "again")
    generate_city(ROWS, SEED + 1, tmp_path / "other")
    again, other = _read(tmp_path / "again"), _read(tmp_path / "other")
    assert all(again[name].equals(city[name]) for name in CITY_COLUMNS)
    assert not any(other[name].equals(city[name]) for name in CITY_COLUMNS)


def test_a_one_resident_city_is_still_consistent(tmp_path: Path) -> None:
    counts = generate_city(1, 0, tmp_path)
    assert counts["residents"] == 1
    assert counts["enterprises"] == 1
    tiny = _read(tmp_path)
    assert _values(tiny["enterprises"], "legal_rep_id") == _values(tiny["residents"], "resident_id")


@pytest.mark.parametrize("rows", [0, -5, MAX_ROWS + 1])
def test_rows_out_of_range_are_refused(tmp_path: Path, rows: int) -> None:
    with pytest.raises(SandboxError, match="rows must be between 1 and"):
        generate_city(rows, 0, tmp_path / "city")
    assert not (tmp_path / "city").exists()


def test_negative_seed_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SandboxError, match="seed must be zero or positive"):
        generate_city(10, -1, tmp_path)


def _app() -> typer.Typer:
    app = typer.Typer()
    app.command()(synth)
    return app


def test_command_writes_every_table_and_prints_counts(tmp_path: Path) -> None:
    out = tmp_path / "city"
    result = CliRunner().invoke(_app(), ["--rows", "2000", "--seed", "3", "--out", str(out)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert [line.split()[0] for line in lines] == list(CITY_COLUMNS)
    assert lines[0].split()[1:3] == ["2,000", "rows"]
    assert all((out / f"{name}.parquet").is_file() for name in CITY_COLUMNS)


def test_command_refuses_fewer_than_one_row(tmp_path: Path) -> None:
    result = CliRunner().invoke(_app(), ["--rows", "0", "--out", str(tmp_path / "city")])
    assert result.exit_code == 2
    assert "Invalid value for '--rows'" in result.output
    assert "greater than or equal to 1" in result.output
    assert not (tmp_path / "city").exists()
