"""Datasets the enclave derives for one scenario: the records a PSI found on an operator's list.

A match holds one identifier column of pseudonyms, so that the scenario's aggregate jobs
can join it to the datasets it came from (``JOIN psi_… m ON e.uscc = m.uscc``). Like an
ingested dataset it has a catalog entry with its content hash and a ledger entry; the entry
names the scenario and operator it belongs to (``extra``), only that scenario's policy
includes it, and other tenants never see it.

Unlike an ingested dataset it is not a DuckDB file that workers attach. Its Arrow IPC
stream is sealed (AES-256-GCM) under its operator's data key (:mod:`deid.datakeys`) in
``enclave/derived/NAME.sealed``, the seal bound to the dataset's name, operator and content
hash. A job that reads it gets it from :func:`open_derived` on the enclave side, and its
worker holds it in memory for that job alone (:mod:`sandbox._worker`). When the operator
exits its key is destroyed, so the file and every backup of it are unreadable at once
(crypto-shredded); the runner's sweep deletes the file and the catalog entry afterwards.

Opening a job's derived dataset refuses it (:class:`~sandbox.errors.JobRefused`) with:

- ``D-SHREDDED``: its operator's data key was destroyed when the operator exited;
- ``D-INTEGRITY``: its file is missing, altered, moved from another dataset, sealed for
  another operator, or does not hash to the catalog's content hash.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Collection
from pathlib import Path

import pyarrow as pa

from deid.datakeys import sealed_by
from deid.errors import DataKeyError, KeyDestroyed
from sandbox._worker import arrow_stream
from sandbox.catalog import Column, Dataset, Tag
from sandbox.enclave import Enclave
from sandbox.errors import CatalogError, IngestError, JobRefused
from sandbox.ingest import publish_dataset, unique_identifiers
from sandbox.psi import Match

DERIVED_PSI = "psi_match"
SHREDDED_RULE = "D-SHREDDED"
"""The refusal id when a job reads a derived dataset whose operator's data key was destroyed."""
INTEGRITY_RULE = "D-INTEGRITY"
"""The refusal id when a derived dataset's sealed file is missing, altered, moved or swapped."""


def is_derived(dataset: Dataset) -> bool:
    """Whether ``dataset`` was derived for one operator (and so is sealed, never attached)."""
    return bool(dataset.extra.get("derived"))


def store_match(
    enclave: Enclave,
    match: Match,
    *,
    name: str,
    column: str,
    level: int,
    scenario: str,
    operator: str,
    actor: str,
) -> Dataset:
    """Store ``match`` as dataset ``name`` (one ``identifier`` column ``column`` in the match's
    join domain) belonging to ``scenario`` of ``operator``, sealed under the operator's data
    key; returns its catalog entry.

    Raises IngestError, leaving no file and no catalog entry behind, if it cannot be kept
    (the operator's key was destroyed meanwhile, the name is taken, the disk fails).
    """
    table = pa.table({column: pa.array(match.pseudonyms, pa.string())})
    data = arrow_stream(table)
    columns = (Column(column, "VARCHAR", Tag.IDENTIFIER, join_domain=match.domain),)
    dataset = Dataset(
        name=name,
        provider=f"psi:{operator}",
        level=level,
        columns=columns,
        row_count=table.num_rows,
        content_hash=hashlib.sha256(data).hexdigest(),
        unique_columns=unique_identifiers(table, columns),
        description=f"records of the {match.domain} domain on the operator's list (PSI {match.session_id})",
        extra={
            "derived": DERIVED_PSI,
            "scenario": scenario,
            "operator": operator,
            "session": match.session_id,
        },
    )
    final = enclave.paths.derived_dataset(name)
    staging = final.with_name(f".{name}.{os.getpid()}.staging")
    try:
        try:
            sealed = enclave.data_keys.seal(operator, data, _context(dataset))
        except DataKeyError as exc:
            raise IngestError(f"the match of PSI {match.session_id} cannot be kept: {exc}") from None
        _write_synced(staging, sealed)
        try:
            registered = enclave.catalog.register(dataset, actor)
        except CatalogError as exc:
            raise IngestError(f"the match of PSI {match.session_id} cannot be kept: {exc}") from None
        publish_dataset(enclave, staging, final, actor)
    finally:
        staging.unlink(missing_ok=True)
    return registered


def open_derived(enclave: Enclave, names: Collection[str]) -> dict[str, pa.Table]:
    """The derived datasets among ``names``, each opened with its operator's data key and
    checked against its catalog entry (enclave side only; the tables go to a worker in memory).

    Raises JobRefused (``D-SHREDDED``, ``D-INTEGRITY``) before any data reaches a worker.
    """
    return {d.name: _open(enclave, d) for d in enclave.catalog.list() if d.name in names and is_derived(d)}


def _open(enclave: Enclave, dataset: Dataset) -> pa.Table:
    name = dataset.name
    try:
        blob = enclave.paths.derived_dataset(name).read_bytes()
    except FileNotFoundError:
        raise _damaged(name, "its sealed file is missing") from None
    try:
        owner, key_id = sealed_by(blob)
        # Checked before opening for a clear reason; the seal binds both all the same.
        if owner != dataset.extra.get("operator"):
            raise _damaged(name, "its file is sealed for another operator (files were swapped)")
        if key_id not in {r.key_id for r in enclave.data_keys.records(owner)}:
            raise _damaged(name, "its file is sealed under a key never issued to its operator")
        data = enclave.data_keys.open(blob, _context(dataset))
    except KeyDestroyed:
        raise JobRefused(
            SHREDDED_RULE,
            f"dataset {name} was crypto-shredded when its operator exited: its data key was "
            "destroyed and nothing can read it any more; it leaves the catalog at the next sweep",
        ) from None
    except DataKeyError:
        # The key store's message would name whose data was moved here: never told to a submitter.
        raise _damaged(name, "its sealed file was altered or moved from another dataset") from None
    if hashlib.sha256(data).hexdigest() != dataset.content_hash:
        raise _damaged(name, "its content does not hash to the catalog's content hash")
    table = pa.ipc.open_stream(data).read_all()
    if table.column_names != [c.name for c in dataset.columns]:
        raise _damaged(name, "its columns differ from its catalog entry")
    return table


def _damaged(name: str, why: str) -> JobRefused:
    return JobRefused(
        INTEGRITY_RULE,
        f"dataset {name} cannot be opened: {why}; the job was refused before reading any data. "
        "Ask the authority to restore the file or run the PSI again",
    )


def _context(dataset: Dataset) -> str:
    """What the seal binds besides its header: a file moved to another dataset, or stored
    for different content, does not open."""
    return f"derived/{dataset.name}/{dataset.extra.get('operator')}/{dataset.content_hash}"


def _write_synced(path: Path, data: bytes) -> None:
    path.unlink(missing_ok=True)
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
