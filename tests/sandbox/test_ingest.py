"""Ingestion: PII found and pseudonymized, raw identifiers only in the vault, all or nothing."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from deid.pseudonym import is_pseudonym
from sandbox.catalog import Column, Tag
from sandbox.city import CITY_COLUMNS
from sandbox.enclave import Enclave
from sandbox.errors import IngestError
from sandbox.ingest import IngestRequest, ingest
from sandbox.synth import generate_city


@pytest.fixture(scope="module")
def city(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("city")
    generate_city(2000, 7, out)
    return out


@pytest.fixture
def enclave(tmp_path: Path) -> Iterator[Enclave]:
    with Enclave.open(tmp_path / "work", origin="test.veilbox/enclave") as opened:
        yield opened


def _request(city: Path, table: str, **changes: object) -> IngestRequest:
    fields: dict[str, object] = {
        "dataset": table,
        "files": (city / f"{table}.parquet",),
        "provider": "civil_affairs",
        "level": 3,
        "declared": {c.name: c for c in CITY_COLUMNS.get(table, ())},
    }
    fields.update(changes)
    return IngestRequest(**fields)  # type: ignore[arg-type]


def _state(enclave: Enclave) -> tuple[object, ...]:
    return (
        [d.name for d in enclave.catalog.list()],
        sorted(p.name for p in enclave.paths.datasets.iterdir()),
        enclave.vault.count("person"),
        enclave.ledger.size,
    )


def test_residents_are_pseudonymized_and_registered(enclave: Enclave, city: Path) -> None:
    raw = pq.read_table(city / "residents.parquet")
    report = ingest(enclave, _request(city, "residents"))
    assert report.dataset.registration_code.startswith("DS-")
    assert report.dataset.row_count == raw.num_rows
    assert dict(report.pseudonymized) == {
        "resident_id": "person", "name": "name", "address": "address", "phone": "phone",
    }  # fmt: skip
    detected = {r.column: r.dominant for r in report.classification}
    assert detected["resident_id"] == "CN_RESIDENT_ID" and detected["phone"] == "CN_MOBILE"
    stored = duckdb.connect(str(enclave.paths.dataset("residents")), read_only=True)
    ids = [r[0] for r in stored.execute("SELECT resident_id FROM residents").fetchall()]
    stored.close()
    assert all(is_pseudonym(i) for i in ids)
    data = enclave.paths.dataset("residents").read_bytes()
    for value in raw.column("resident_id").to_pylist()[:50] + raw.column("phone").to_pylist()[:50]:
        assert value.encode() not in data, "raw identifiers must not reach the enclave data file"
    first_raw, first_pseudonym = raw.column("resident_id")[0].as_py(), ids[0]
    assert enclave.vault.reveal("person", first_pseudonym) == first_raw
    actions = [e.action for e in enclave.ledger.entries()]
    assert actions[-2:] == ["dataset.deidentified", "dataset.registered"]


def test_pseudonyms_join_across_datasets(enclave: Enclave, city: Path) -> None:
    ingest(enclave, _request(city, "residents"))
    ingest(enclave, _request(city, "social_insurance", provider="human_resources"))
    con = duckdb.connect(":memory:")
    con.execute(f"ATTACH '{enclave.paths.dataset('residents')}' AS r (READ_ONLY)")
    con.execute(f"ATTACH '{enclave.paths.dataset('social_insurance')}' AS s (READ_ONLY)")
    matched, total = con.execute(
        "SELECT COUNT(r.resident_id), COUNT(*) FROM s.social_insurance si "
        "LEFT JOIN r.residents r ON r.resident_id = si.resident_id"
    ).fetchone()  # type: ignore[misc]
    con.close()
    assert matched == total > 0


def test_undeclared_columns_get_fail_closed_proposals(enclave: Enclave, city: Path) -> None:
    report = ingest(enclave, _request(city, "residents", declared={}))
    tags = {c.name: c.tag for c in report.dataset.columns}
    assert tags["resident_id"] is Tag.IDENTIFIER
    assert tags["name"] is Tag.HIDDEN and tags["address"] is Tag.HIDDEN
    assert tags["household_size"] is Tag.HIDDEN, "a number without declared bounds is not a measure"
    assert tags["employed"] is Tag.DIMENSION
    assert tags["birth_date"] is Tag.QUASI_IDENTIFIER
    assert tags["education"] is Tag.DIMENSION


def test_csv_files_are_read_and_combined(enclave: Enclave, city: Path, tmp_path: Path) -> None:
    table = pq.read_table(city / "credit_records.parquet")
    half = table.num_rows // 2
    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    for path, part in ((first, table.slice(0, half)), (second, table.slice(half))):
        pacsv.write_csv(part, path)
    report = ingest(
        enclave, _request(city, "credit_records", files=(first, second), provider="ndrc", level=2)
    )
    assert report.dataset.row_count == table.num_rows


def _bad_inputs(city: Path, tmp: Path) -> dict[str, tuple[IngestRequest, str]]:
    (tmp / "broken.parquet").write_bytes(b"PAR1 not really")
    (tmp / "empty.csv").write_text("a,b\n")
    (tmp / "other.csv").write_text("x,y\n1,2\n")
    (tmp / "notes.txt").write_text("hello")
    (tmp / "bad_names.csv").write_text("Resident ID,姓名\n1,2\n")
    ids_as_dimension = {"resident_id": Column("resident_id", "VARCHAR", Tag.DIMENSION)}
    missing = {"customer_no": Column("customer_no", "VARCHAR", Tag.IDENTIFIER, join_domain="person")}
    residents = city / "residents.parquet"
    return {
        "unreadable": (_request(city, "residents", files=(tmp / "broken.parquet",)), "cannot be read"),
        "missing file": (_request(city, "residents", files=(tmp / "nope.parquet",)), "does not exist"),
        "no files": (_request(city, "residents", files=()), "no files"),
        "empty": (_request(city, "residents", files=(tmp / "empty.csv",), declared={}), "no rows"),
        "schema mismatch": (_request(city, "residents", files=(residents, tmp / "other.csv")), "same schema"),
        "extension": (_request(city, "residents", files=(tmp / "notes.txt",)), "only .csv and .parquet"),
        "column names": (_request(city, "x", files=(tmp / "bad_names.csv",), declared={}), "column name"),
        "absent identifier": (_request(city, "residents", declared=missing), "customer_no are absent"),
        "identifier as dimension": (_request(city, "residents", declared=ids_as_dimension), "CN_RESIDENT_ID"),
        "bad name": (_request(city, "Residents!"), "dataset name"),
        "bad level": (_request(city, "residents", level=9), "level must be 1 to 4"),
    }


@pytest.mark.parametrize(
    "case",
    [
        "unreadable", "missing file", "no files", "empty", "schema mismatch", "extension", "column names",
        "absent identifier", "identifier as dimension", "bad name", "bad level",
    ],
)  # fmt: skip
def test_bad_input_is_refused_and_changes_nothing(
    enclave: Enclave, city: Path, tmp_path: Path, case: str
) -> None:
    request, problem = _bad_inputs(city, tmp_path)[case]
    before = _state(enclave)
    with pytest.raises(IngestError, match=problem):
        ingest(enclave, request)
    assert _state(enclave) == before


def test_duplicate_dataset_is_refused(enclave: Enclave, city: Path) -> None:
    ingest(enclave, _request(city, "credit_records", provider="ndrc", level=2))
    before = _state(enclave)
    with pytest.raises(IngestError, match="already exists"):
        ingest(enclave, _request(city, "credit_records", provider="ndrc", level=2))
    assert _state(enclave) == before


def test_a_failure_after_registration_rolls_everything_back(
    enclave: Enclave, city: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def disk_full(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    catalog_before = [d.name for d in enclave.catalog.list()]
    monkeypatch.setattr(os, "replace", disk_full)
    with pytest.raises(IngestError, match="nothing was ingested"):
        ingest(enclave, _request(city, "residents"))
    monkeypatch.undo()
    assert [d.name for d in enclave.catalog.list()] == catalog_before
    assert not any(enclave.paths.datasets.iterdir()), "no dataset or staging file is left behind"
    assert enclave.vault.count("person") == 0
    assert enclave.ledger.entries()[-1].action == "dataset.unregistered"
    ingest(enclave, _request(city, "residents"))  # and a retry succeeds


def _complaints(tmp_path: Path) -> Path:
    path = tmp_path / "complaints.csv"
    rows = ["district,remarks"] + [
        f"城东区,市民反映路灯损坏，联系电话1380013{i:04d}" if i % 2 else "城西区,路面积水" for i in range(40)
    ]
    path.write_text("\n".join(rows) + "\n")
    return path


def test_free_text_identifiers_are_anonymized_before_storage(enclave: Enclave, tmp_path: Path) -> None:
    request = IngestRequest(
        "complaints", (_complaints(tmp_path),), "hotline", 2, anonymize={"remarks": "replace"}
    )
    report = ingest(enclave, request)
    stored = duckdb.connect(str(enclave.paths.dataset("complaints")), read_only=True)
    texts = [r[0] for r in stored.execute("SELECT remarks FROM complaints").fetchall()]
    stored.close()
    assert any("<CN_MOBILE>" in t for t in texts)
    assert not any("13800130" in t for t in texts)
    assert enclave.ledger.entries()[-2].details["anonymized"] == {"remarks": "replace"}
    assert report.dataset.column("district").tag is Tag.DIMENSION


def test_free_text_with_identifiers_stays_hidden_when_not_anonymized(
    enclave: Enclave, tmp_path: Path
) -> None:
    report = ingest(enclave, IngestRequest("complaints", (_complaints(tmp_path),), "hotline", 2))
    assert report.dataset.column("remarks").tag is Tag.HIDDEN


def test_anonymizing_a_missing_column_is_refused(enclave: Enclave, tmp_path: Path) -> None:
    request = IngestRequest("complaints", (_complaints(tmp_path),), "hotline", 2, anonymize={"notes": "mask"})
    with pytest.raises(IngestError, match="no text column 'notes'"):
        ingest(enclave, request)
