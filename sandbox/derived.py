"""Datasets the enclave derives for one scenario: the records a PSI found on an operator's list.

A match is stored like an ingested dataset — its own DuckDB file, a catalog entry with its
content hash, a ledger entry — holding one identifier column of pseudonyms, so that the
scenario's aggregate jobs can join it to the datasets it came from (``JOIN psi_… m ON
e.uscc = m.uscc``). Its catalog entry names the scenario and operator it belongs to
(``extra``); only that scenario's policy includes it, and other tenants never see it.
"""

from __future__ import annotations

import os

import pyarrow as pa

from sandbox.catalog import Column, Dataset, Tag
from sandbox.enclave import Enclave
from sandbox.ingest import content_hash_of, publish_dataset, unique_identifiers, write_dataset
from sandbox.psi import Match

DERIVED_PSI = "psi_match"


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
    join domain) belonging to ``scenario`` of ``operator``; returns its catalog entry."""
    table = pa.table({column: pa.array(match.pseudonyms, pa.string())})
    columns = (Column(column, "VARCHAR", Tag.IDENTIFIER, join_domain=match.domain),)
    dataset = Dataset(
        name=name,
        provider=f"psi:{operator}",
        level=level,
        columns=columns,
        row_count=table.num_rows,
        content_hash=content_hash_of(table),
        unique_columns=unique_identifiers(table, columns),
        description=f"records of the {match.domain} domain on the operator's list (PSI {match.session_id})",
        extra={
            "derived": DERIVED_PSI,
            "scenario": scenario,
            "operator": operator,
            "session": match.session_id,
        },
    )
    final = enclave.paths.dataset(name)
    staging = final.with_name(f".{name}.{os.getpid()}.staging.duckdb")
    try:
        write_dataset(staging, name, table)
        registered = enclave.catalog.register(dataset, actor)
        publish_dataset(enclave, staging, final, actor)
    finally:
        staging.unlink(missing_ok=True)
    return registered
