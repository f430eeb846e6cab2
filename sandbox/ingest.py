"""Ingestion: load a provider's files, find PII, pseudonymize, store in the enclave, register.

The steps, all or nothing:

1. read the CSV/Parquet files (one schema across all of them, at least one row);
2. classify every column (PII detection in :mod:`deid.classify`);
3. decide each column's tag: the provider's declarations win, except that a column whose
   content is a direct identifier can only be declared ``identifier`` or ``hidden``;
   undeclared columns get a fail-closed proposal (numbers without declared bounds and
   free text stay hidden until the provider declares them);
4. replace every direct identifier by its keyed pseudonym and put the raw values in the
   encrypted identifier vault;
5. write the dataset's own enclave file, register it in the catalog (a ledger entry with
   its content hash), and only then make the file visible and commit the vault.

A failure at any step leaves the catalog, the enclave files and the vault as they were.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TypeVar

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from deid.anonymize import Operator, TextAnonymizer
from deid.classify import ColumnReport, classify_table
from deid.errors import DeidError
from deid.pseudonym import distinct_values
from sandbox._worker import arrow_stream, redact
from sandbox.catalog import Column, Dataset, Tag, check_name
from sandbox.enclave import Enclave
from sandbox.errors import CatalogError, IngestError

ENTITY_DOMAINS = {
    "CN_RESIDENT_ID": "person",
    "CN_USCC": "enterprise",
    "CN_MOBILE": "phone",
    "BANK_CARD": "bank_card",
}
"""Join domain of each identifier entity: the same person gets one pseudonym across datasets."""

HIDDEN_PII_DOMAINS = {"CN_NAME": "name", "CN_ADDRESS": "address"}
"""Direct identifiers that are not join keys: pseudonymized and hidden."""

MAX_DIMENSION_VALUES = 1000
T = TypeVar("T")

_ARROW_TYPES = {
    pa.string(): "VARCHAR",
    pa.large_string(): "VARCHAR",
    pa.int64(): "BIGINT",
    pa.int32(): "INTEGER",
    pa.int16(): "INTEGER",
    pa.int8(): "INTEGER",
    pa.float64(): "DOUBLE",
    pa.float32(): "DOUBLE",
    pa.date32(): "DATE",
    pa.bool_(): "BOOLEAN",
}


@dataclass(frozen=True)
class IngestRequest:
    """What a provider submits: files, the dataset's catalog fields, and its column declarations."""

    dataset: str
    files: tuple[Path, ...]
    provider: str
    level: int
    actor: str = ""
    description: str = ""
    update_frequency: str = "unspecified"
    core_items: tuple[str, ...] = ()
    constraints: str = ""
    declared: Mapping[str, Column] = field(default_factory=dict)
    anonymize: Mapping[str, Operator] = field(default_factory=dict)
    """Free-text columns whose embedded identifiers are transformed (see :mod:`deid.anonymize`)."""


@dataclass(frozen=True)
class IngestReport:
    """What ingestion found and did."""

    dataset: Dataset
    classification: tuple[ColumnReport, ...]
    pseudonymized: Mapping[str, str]
    vault_added: int


def ingest(enclave: Enclave, request: IngestRequest) -> IngestReport:
    """Ingest ``request`` into ``enclave``; raises IngestError (nothing stored) on bad input."""
    name = _checked(lambda: check_name("dataset", request.dataset))
    actor = request.actor or f"provider:{request.provider}"
    _refuse_existing(enclave, name)
    table = _anonymize(enclave, _read(request.files), request.anonymize)
    reports = tuple(classify_table(table))
    columns = tuple(_decide(report, table, request.declared) for report in reports)
    _refuse_missing_declarations(request.declared, table)
    raw = table
    table, pseudonymized = _pseudonymize(enclave, raw, columns)
    columns = tuple(_as_stored(c, pseudonymized) for c in columns)
    content_hash = content_hash_of(table)
    dataset = _checked(
        lambda: Dataset(
            name=name,
            provider=request.provider,
            level=request.level,
            columns=columns,
            row_count=table.num_rows,
            content_hash=content_hash,
            unique_columns=unique_identifiers(table, columns),
            description=request.description,
            core_items=request.core_items,
            update_frequency=request.update_frequency,
            constraints=request.constraints,
        )
    )
    final = enclave.paths.dataset(name)
    staging = final.with_name(f".{name}.{os.getpid()}.staging.duckdb")
    try:
        with enclave.vault.transaction():
            added = _store_raw(enclave, raw, pseudonymized)
            write_dataset(staging, name, table)
            enclave.ledger.append(
                actor,
                "dataset.deidentified",
                name,
                {
                    "pseudonymized": dict(pseudonymized),
                    "anonymized": dict(request.anonymize),
                    "detected": {r.column: r.dominant for r in reports if r.dominant},
                },
            )
            registered = _checked(lambda: enclave.catalog.register(dataset, actor))
            publish_dataset(enclave, staging, final, actor)
    finally:
        staging.unlink(missing_ok=True)
    return IngestReport(registered, reports, pseudonymized, added)


def publish_dataset(enclave: Enclave, staging: Path, final: Path, actor: str) -> None:
    """Make the dataset file visible; if that fails, withdraw the registration just made (IngestError)."""
    try:
        os.replace(staging, final)
    except OSError as exc:
        enclave.catalog.unregister(final.stem, actor, f"ingestion failed after registration: {exc.strerror}")
        raise IngestError(
            f"the dataset file could not be stored ({exc.strerror}); nothing was ingested"
        ) from None


def _checked(make: Callable[[], T]) -> T:
    """Run ``make``, turning catalog refusals into ingestion refusals."""
    try:
        return make()
    except CatalogError as exc:
        raise IngestError(str(exc)) from None


def _anonymize(enclave: Enclave, table: pa.Table, columns: Mapping[str, Operator]) -> pa.Table:
    for name, operator in columns.items():
        if name not in table.column_names or not pa.types.is_string(table.schema.field(name).type):
            raise IngestError(f"--anonymize {name}: the files have no text column {name!r}")
        try:
            anonymizer = TextAnonymizer(operator, enclave.master)
        except DeidError as exc:
            raise IngestError(f"--anonymize {name}: {exc}") from None
        index = table.column_names.index(name)
        table = table.set_column(index, name, anonymizer.anonymize_column(table.column(name)))
    return table


def _refuse_existing(enclave: Enclave, name: str) -> None:
    if any(d.name == name for d in enclave.catalog.list()) or enclave.paths.dataset(name).exists():
        raise IngestError(f"a dataset named {name!r} already exists; choose another name")


def _read(files: tuple[Path, ...]) -> pa.Table:
    if not files:
        raise IngestError("no files were given")
    con = duckdb.connect(":memory:")
    try:
        tables = [_read_one(con, Path(f)) for f in files]
    finally:
        con.close()
    first = tables[0].schema
    for path, table in zip(files[1:], tables[1:], strict=True):
        if table.schema.names != first.names or table.schema.types != first.types:
            raise IngestError(
                f"{path} has columns {_describe(table.schema)}, but {files[0]} has {_describe(first)}: "
                "every file of a dataset must have the same schema"
            )
    table = pa.concat_tables(tables)
    if table.num_rows == 0:
        raise IngestError("the files hold no rows; nothing to ingest")
    bad = [c for c in table.column_names if not _valid_column_name(c)]
    if bad:
        raise IngestError(
            f"column name(s) {', '.join(bad)} are not usable: rename them to lower-case letters, digits and _"
        )
    return table


def _valid_column_name(name: str) -> bool:
    try:
        check_name("column", name)
    except CatalogError:
        return False
    return True


def _read_one(con: duckdb.DuckDBPyConnection, path: Path) -> pa.Table:
    readers = {".csv": "read_csv", ".parquet": "read_parquet"}
    reader = readers.get(path.suffix.lower())
    if reader is None:
        raise IngestError(f"{path}: only .csv and .parquet files can be ingested")
    if not path.is_file():
        raise IngestError(f"{path} does not exist or is not a file")
    try:
        # The reader name comes from a fixed table and the path is a bound parameter.
        return con.sql(f"SELECT * FROM {reader}(?)", params=[str(path)]).to_arrow_table()  # noqa: S608
    except duckdb.Error as exc:
        raise IngestError(f"{path} cannot be read: {redact(str(exc))}") from None


def _describe(schema: pa.Schema) -> str:
    return ", ".join(f"{f.name} {f.type}" for f in schema)


def _decide(report: ColumnReport, table: pa.Table, declared: Mapping[str, Column]) -> Column:
    sql_type = _sql_type(report.column, table.schema.field(report.column).type)
    entity = report.dominant
    if report.column in declared:
        column = declared[report.column]
        if entity and column.tag not in (Tag.IDENTIFIER, Tag.HIDDEN):
            share = report.entities.get(entity, 0.0)
            raise IngestError(
                f"column {report.column} holds {entity} values ({share:.0%} of sampled cells); "
                "it can only be "
                "declared identifier or hidden"
            )
        return column if column.entity or not entity else replace(column, entity=entity)
    if entity in ENTITY_DOMAINS:
        return Column(
            report.column, "VARCHAR", Tag.IDENTIFIER, join_domain=ENTITY_DOMAINS[entity], entity=entity
        )
    if entity or any(share > 0 for share in report.entities.values()):
        return Column(report.column, sql_type, Tag.HIDDEN, entity=entity)
    if sql_type == "BOOLEAN":
        return Column(report.column, sql_type, Tag.DIMENSION)
    if sql_type in ("DATE", "TIMESTAMP"):
        return Column(report.column, sql_type, Tag.QUASI_IDENTIFIER)
    if (
        sql_type == "VARCHAR"
        and pc.count_distinct(table.column(report.column)).as_py() <= MAX_DIMENSION_VALUES
    ):
        return Column(report.column, sql_type, Tag.DIMENSION)
    # Numbers need declared bounds to be measures; free text may hide PII detection missed.
    return Column(report.column, sql_type, Tag.HIDDEN)


def _sql_type(name: str, arrow_type: pa.DataType) -> str:
    if pa.types.is_timestamp(arrow_type):
        return "TIMESTAMP"
    if pa.types.is_decimal(arrow_type):
        return "DOUBLE"
    try:
        return _ARROW_TYPES[arrow_type]
    except KeyError:
        raise IngestError(f"column {name} has type {arrow_type}, which the enclave does not store") from None


def _refuse_missing_declarations(declared: Mapping[str, Column], table: pa.Table) -> None:
    missing = sorted(set(declared) - set(table.column_names))
    if missing:
        raise IngestError(
            f"declared column(s) {', '.join(missing)} are absent; "
            f"the files have {', '.join(table.column_names)}"
        )


def _pseudonym_domain(column: Column) -> str | None:
    if column.tag is Tag.IDENTIFIER:
        return column.join_domain
    if column.tag is Tag.HIDDEN and column.entity:
        return ENTITY_DOMAINS.get(column.entity) or HIDDEN_PII_DOMAINS.get(column.entity)
    return None


def _pseudonymize(
    enclave: Enclave, table: pa.Table, columns: tuple[Column, ...]
) -> tuple[pa.Table, dict[str, str]]:
    done: dict[str, str] = {}
    for column in columns:
        domain = _pseudonym_domain(column)
        if domain is None:
            continue
        index = table.column_names.index(column.name)
        pseudonyms, _ = enclave.pseudonymizer.pseudonymize(table.column(column.name), domain)
        table = table.set_column(index, pa.field(column.name, pa.string()), pseudonyms)
        done[column.name] = domain
    return table, done


def _as_stored(column: Column, pseudonymized: Mapping[str, str]) -> Column:
    if column.name not in pseudonymized or column.type == "VARCHAR":
        return column
    return replace(column, type="VARCHAR")


def _store_raw(enclave: Enclave, raw: pa.Table, pseudonymized: Mapping[str, str]) -> int:
    added = 0
    for name, domain in pseudonymized.items():
        values = distinct_values(raw.column(name))
        pseudonyms, _ = enclave.pseudonymizer.pseudonymize(values, domain)
        added += enclave.vault.store(domain, pseudonyms.to_pylist(), values.to_pylist())
    return added


def write_dataset(path: Path, name: str, table: pa.Table) -> None:
    """Write ``table`` as the one table ``name`` of a new DuckDB file at ``path``, synced."""
    path.unlink(missing_ok=True)
    con = duckdb.connect(str(path))
    try:
        con.register("incoming", table)
        # ``name`` passed check_name: lower-case letters, digits and underscores only.
        con.execute(f'CREATE TABLE "{name}" AS SELECT * FROM incoming')  # noqa: S608
        con.execute("CHECKPOINT")
    finally:
        con.close()
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def unique_identifiers(table: pa.Table, columns: Sequence[Column]) -> tuple[str, ...]:
    """The identifier columns of ``table`` in which no non-null value occurs twice, as measured."""
    return tuple(
        c.name
        for c in columns
        if c.tag is Tag.IDENTIFIER
        and pc.count_distinct(table.column(c.name), mode="only_valid").as_py()
        == pc.count(table.column(c.name), mode="only_valid").as_py()
    )


def content_hash_of(table: pa.Table) -> str:
    """The SHA-256 of the table's Arrow IPC stream: the content hash the catalog records."""
    return hashlib.sha256(arrow_stream(table.combine_chunks())).hexdigest()
