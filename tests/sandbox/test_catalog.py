"""The catalog: validated entries, registration codes, tags, and every change in the ledger."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ledger import Ledger, verify_log
from sandbox.catalog import Catalog, Column, Dataset, Tag
from sandbox.city import CITY_COLUMNS
from sandbox.errors import CatalogError


@pytest.fixture
def catalog(tmp_path: Path) -> Iterator[Catalog]:
    log = Ledger.open(tmp_path / "ledger")
    opened = Catalog(tmp_path / "catalog.sqlite", log)
    yield opened
    opened.close()
    log.close()


def _residents(**changes: object) -> Dataset:
    fields: dict[str, object] = {"name": "residents", "provider": "civil_affairs", "level": 3}
    fields.update(changes)
    return Dataset(columns=CITY_COLUMNS["residents"], **fields)  # type: ignore[arg-type]


def test_register_assigns_a_code_and_records_it(catalog: Catalog, tmp_path: Path) -> None:
    stored = catalog.register(_residents(row_count=100, content_hash="ab" * 32), "provider:civil_affairs")
    assert stored.registration_code.startswith("DS-") and stored.registered_at
    assert catalog.get("residents") == stored
    entry = Ledger.open(tmp_path / "ledger").entries()[-1]
    assert (entry.action, entry.subject) == ("dataset.registered", "residents")
    assert entry.details["content_hash"] == "ab" * 32
    assert entry.details["tags"]["resident_id"] == "identifier"
    assert verify_log(tmp_path / "ledger").ok


def test_duplicate_names_are_refused(catalog: Catalog) -> None:
    catalog.register(_residents(), "p")
    with pytest.raises(CatalogError, match="already registered"):
        catalog.register(_residents(), "p")
    assert len(catalog.list()) == 1


def test_retag_is_recorded_and_validated(catalog: Catalog, tmp_path: Path) -> None:
    catalog.register(_residents(), "p")
    updated = catalog.retag("residents", "education", "authority:bureau", tag=Tag.HIDDEN, domain=None)
    assert updated.column("education").tag is Tag.HIDDEN
    assert catalog.get("residents").column("education").tag is Tag.HIDDEN
    assert Ledger.open(tmp_path / "ledger").entries()[-1].action == "column.retagged"
    with pytest.raises(CatalogError, match="needs declared finite bounds"):
        catalog.retag("residents", "household_size", "authority:bureau", upper=float("inf"))
    assert catalog.get("residents").column("household_size").upper == 10


def test_schema_shows_no_values(catalog: Catalog) -> None:
    schema = catalog.register(_residents(), "p").schema()
    assert {c["name"] for c in schema["columns"]} == {c.name for c in CITY_COLUMNS["residents"]}
    assert "content_hash" not in schema


@pytest.mark.parametrize(
    ("make", "problem"),
    [
        (lambda: Column("Bad Name", "VARCHAR", Tag.DIMENSION), "lower-case"),
        (lambda: Column("x", "BLOB", Tag.DIMENSION), "type BLOB"),
        (lambda: Column("x", "DOUBLE", Tag.MEASURE), "declared finite bounds"),
        (lambda: Column("x", "DOUBLE", Tag.MEASURE, lower=5, upper=5), "declared finite bounds"),
        (lambda: Column("x", "VARCHAR", Tag.MEASURE, lower=0, upper=1), "must be numeric"),
        (lambda: Column("x", "VARCHAR", Tag.DIMENSION, lower=0, upper=1), "only measures"),
        (lambda: Column("x", "VARCHAR", Tag.IDENTIFIER), "join domain"),
        (lambda: Column("x", "DOUBLE", Tag.MEASURE, lower=0, upper=1, domain=("a",)), "only dimensions"),
        (lambda: Column("x", "VARCHAR", "secret"), "secret"),
        (lambda: _residents(level=5), "level must be 1 to 4"),
        (lambda: _residents(provider=""), "provider"),
        (lambda: Dataset("d", "p", 1, (Column("a", "VARCHAR", Tag.DIMENSION),) * 2), "unique"),
        (lambda: _residents(name="1residents"), "lower-case"),
    ],
)
def test_invalid_entries_cannot_be_built(make: object, problem: str) -> None:
    with pytest.raises((CatalogError, ValueError), match=problem):
        make()  # type: ignore[operator]


def test_unknown_datasets_and_columns(catalog: Catalog) -> None:
    with pytest.raises(CatalogError, match="no dataset named"):
        catalog.get("nothing")
    stored = catalog.register(_residents(), "p")
    with pytest.raises(CatalogError, match="no column"):
        stored.column("salary")
    catalog.unregister("residents", "authority:bureau", "withdrawn by provider")
    with pytest.raises(CatalogError, match="no dataset named"):
        catalog.unregister("residents", "authority:bureau", "again")
