"""Record-level products (明细级产品): rows of one dataset, generalized to k-anonymity.

A record job names a dataset and the columns wanted — never SQL — and the scenario's k.
Identifiers, hidden and sensitive columns are refused (``X-COLUMN``). Every dimension and
quasi-identifier wanted is a quasi-identifier of the product: each combination of their
values must be shared by at least k rows; measures ride along. The rows are read in an
isolated worker; :func:`deid.kanon.search_generalization` then picks the least coarse
combination of the generalization ladders (the caller's, else dates truncated to the year
and then dropped, other quasi-identifiers dropped) that reaches k within the suppression
budget, or the job is refused (``X-K-ANON``). The product is quarantined with its
k-anonymity report, which the review gate recounts on the table (``SDC-K-ANON``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from sqlglot import exp

from deid.errors import AnonymityNotMet, DeidError
from deid.generalize import DateTruncate, Generalization, Suppress
from deid.kanon import search_generalization
from sandbox.catalog import Column, Tag
from sandbox.enclave import Enclave
from sandbox.errors import JobError
from sandbox.jobs import ENCLAVE_OWNER, JobOutcome, JobTrail, execute_checked, new_job_id
from sandbox.policy import ScenarioPolicy

COLUMN_RULE, KANON_RULE = "X-COLUMN", "X-K-ANON"
_QUASI = (Tag.DIMENSION, Tag.QUASI_IDENTIFIER)
_PAYLOAD = (Tag.MEASURE,)


@dataclass(frozen=True)
class RecordJob:
    """Rows of ``columns`` of ``dataset``, k-anonymous on the quasi-identifiers among them."""

    dataset: str
    columns: tuple[str, ...]
    k: int
    actor: str
    scenario: str
    policy: ScenarioPolicy
    ladders: Mapping[str, Sequence[Generalization]] = field(default_factory=dict)
    max_suppression: float = 0.05
    job_id: str = ""
    owner: str = ENCLAVE_OWNER
    """Whose data key seals the result at rest (see :mod:`deid.datakeys`)."""


def run_records(enclave: Enclave, job: RecordJob) -> JobOutcome:
    """Read, generalize to k, quarantine with the k-anonymity report; refusals name their rule."""
    details = {"scenario": job.scenario, "dataset": job.dataset, "columns": list(job.columns), "k": job.k}
    trail = JobTrail(enclave, job.actor, job.job_id or new_job_id(), details, job.owner)
    try:
        columns = _wanted(job)
    except ValueError as exc:
        return trail.refused(str(exc), COLUMN_RULE, job.dataset)
    quasi = tuple(c.name for c in columns if c.tag in _QUASI)
    trail.details["tables"] = [job.dataset]
    trail.started()
    query = exp.select(*(exp.column(c.name) for c in columns)).from_(exp.table_(job.dataset))
    try:
        rows = execute_checked(enclave, query.sql(dialect="duckdb"), frozenset({job.dataset}))
    except JobError as exc:
        return trail.failed(exc)
    ladders = {name: job.ladders.get(name) or _default_ladder(col) for name, col in _by_name(columns, quasi)}
    try:
        product = search_generalization(rows, quasi, job.k, ladders, max_suppression=job.max_suppression)
    except AnonymityNotMet as exc:
        return trail.refused(str(exc), KANON_RULE, "")
    except DeidError as exc:
        return trail.refused(f"the generalization cannot be applied: {exc}", KANON_RULE, "")
    kept = tuple(q for q in quasi if q in product.table.column_names)
    sources = {
        "kind": "record",
        "kanon_report": product.report.to_json(),
        "quasi_identifiers": list(kept),
        "generalization": product.to_json(),
        "dataset": job.dataset,
    }
    return trail.quarantined(product.table, sources, {"suppressed_rows": product.suppressed_rows})


def _wanted(job: RecordJob) -> list[Column]:
    """The wanted columns as the scenario tags them; ValueError names one that may not leave as rows."""
    dataset = job.policy.datasets.get(job.dataset)
    if dataset is None:
        raise ValueError(f"dataset {job.dataset!r} is not in the scenario")
    if not job.columns or len(set(job.columns)) != len(job.columns):
        raise ValueError("name each wanted column once, at least one")
    found = {c.name: c for c in dataset.columns}
    wanted = []
    for name in job.columns:
        column = found.get(name)
        if column is None or column.tag not in (*_QUASI, *_PAYLOAD):
            tag = "unknown" if column is None else str(column.tag)
            raise ValueError(f"column {name!r} ({tag}) cannot leave in a record-level product")
        wanted.append(column)
    if not any(c.tag in _QUASI for c in wanted):
        raise ValueError("a record-level product needs a dimension or quasi-identifier to group its rows by")
    return wanted


def _by_name(columns: Sequence[Column], names: Sequence[str]) -> list[tuple[str, Column]]:
    found = {c.name: c for c in columns}
    return [(name, found[name]) for name in names]


def _default_ladder(column: Column) -> list[Generalization]:
    if column.type == "DATE":
        return [DateTruncate(column.name, "year"), Suppress(column.name)]
    return [Suppress(column.name)]
