"""The gate between quarantine and release (出域): checks on arrival, a signed artifact on the way out.

:meth:`Gate.admit` takes a quarantined result with what the enclave recorded about it, runs
every disclosure rule and the differencing control against everything already released,
keeps the exact table it checked, and queues it with the evidence a reviewer needs.
:meth:`Gate.mitigate` lets a reviewer suppress failing cells or round counts before anyone
approves. :meth:`Gate.release` writes an approved result as a signed artifact and re-runs
the differencing control inside the transaction that records the release, so two results
approved side by side can never both leave when together they isolate a small group.

::

    ROOT/review.sqlite              the queue, its decisions and the release descriptions
    ROOT/results/JOB/SHA256.arrow   every version of a result the gate checked, sealed under
                                    the operator's data key (deid.datakeys); SHA256 is the
                                    hash of the Arrow bytes inside
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import threading
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
import sqlglot
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlglot import exp

from deid.datakeys import DataKeys
from deid.errors import DataKeyError
from ledger import Ledger, PublicKey
from outbound_review._rules import CheckParameters, Outcome, ResultEvidence, RuleOutcome
from outbound_review.checks import CheckReport, round_counts, run_checks, suppress
from outbound_review.describe import describe_release
from outbound_review.differencing import RULE_ID, DifferencingFinding, ReleaseDescriptor, ReleaseIndex
from outbound_review.errors import ReviewError, ReviewRefused
from outbound_review.queue import ReviewItem, ReviewQueue, read_releases
from outbound_review.release import write_release

MANIFEST_FORMAT = "veilbox-release/1"
_LISTED = 10


@dataclass(frozen=True)
class SourceDataset:
    """A dataset a result was computed from, as the reviewer and the manifest describe it."""

    name: str
    level: int
    content_sha256: str
    rows: int


@dataclass(frozen=True)
class Submission:
    """Who asked for a quarantined result, in which scenario, over which data, under which thresholds.

    ``operator`` is the submitter's operator organisation: nobody of it may review the result,
    and the differencing control compares releases of the same operator across scenarios.
    ``expected_epsilon`` and ``expected_bounds`` are the scenario's per-query ε and the
    catalog's bounds a differentially private result must match.
    """

    job_id: str
    submitter: str
    operator: str
    scenario: str
    purpose: str
    sources: tuple[SourceDataset, ...]
    parameters: CheckParameters = field(default_factory=CheckParameters)
    expected_epsilon: float | None = None
    expected_bounds: Mapping[str, Sequence[float]] | None = None

    def __post_init__(self) -> None:
        if not self.sources:
            raise ReviewError(f"job {self.job_id}: name the datasets the result was computed from")

    @property
    def level(self) -> int:
        """The highest classification level among the sources."""
        return max((s.level for s in self.sources), default=1)


@dataclass(frozen=True)
class Release:
    """A released artifact: where it was written, its hash, and its ledger entry."""

    job_id: str
    folder: Path
    artifact_sha256: str
    ledger_index: int


class Gate:
    """The review queue with its checks, the released-results index, and the release signer."""

    def __init__(
        self,
        root: Path,
        ledger: Ledger,
        keys: DataKeys,
        key: Ed25519PrivateKey | None = None,
        key_name: str = "release",
    ) -> None:
        """Open the gate at ``root``, keeping results sealed with ``keys``; without ``key`` it
        checks and queues but cannot release (a process that must not hold the platform's
        signing key opens it so)."""
        self._root, self._keys = root, keys
        root.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.queue = ReviewQueue(root / "review.sqlite", ledger)
        self._key, self._key_name = key, key_name
        self._lock = threading.Lock()
        self._index, self._seq, self._seq_of = ReleaseIndex(), 0, dict[str, int]()

    @property
    def public_key(self) -> PublicKey:
        """The key a verifier pins to check this platform's releases."""
        return PublicKey.from_private(self._key_name, self._signer())

    def _signer(self) -> Ed25519PrivateKey:
        if self._key is None:
            raise ReviewError("this gate was opened without the release key: releases are signed elsewhere")
        return self._key

    def close(self) -> None:
        self.queue.close()

    def admit(self, submission: Submission, table: pa.Table, metadata: Mapping[str, Any]) -> ReviewItem:
        """Check a quarantined result and queue it for review; returns the queued item.

        ``metadata`` is what the enclave stored with the result (its SQL or code, the
        measured per-cell evidence, a DP guarantee, model checks). Missing evidence is not
        an error here: the checks fail the result for it, and a reviewer sees why.
        """
        evidence = evidence_from(metadata, submission)
        description = _describe(submission, table, metadata, evidence)
        with self._lock:
            self._refresh(None)
            findings, watermark = self._findings(description, submission.parameters), self._seq
        report = _with_differencing(run_checks(table, evidence, submission.parameters), description, findings)
        kept = self._results(submission.job_id)
        fresh = not kept.exists()
        digest = self._keep(submission.job_id, submission.operator, table)
        record = {
            "purpose": submission.purpose,
            "code": metadata.get("sql") or metadata.get("code") or metadata.get("features_sql") or "",
            "rendered_sql": metadata.get("rendered_sql"),
            "sources": [asdict(s) for s in submission.sources],
            "rows": table.num_rows,
            "columns": table.column_names,
            "quarantine_sha256": metadata.get("sha256"),
            "report": report.to_json(),
            "measured": _evidence_json(evidence),
            "differencing": [_finding_json(f) for f in findings],
            "checked_through": watermark,
            "description": None if description is None else description.to_json(),
            "dp_guarantee": metadata.get("guarantee"),
            "mitigations": [],
        }
        item = ReviewItem(
            job_id=submission.job_id,
            submitter=submission.submitter,
            organisation=submission.operator,
            scenario=submission.scenario,
            level=submission.level,
            result_sha256=digest,
            worst_check=report.worst,
            evidence=record,
        )
        try:
            return self.queue.submit(item)
        except BaseException:
            if fresh:  # never touch what an earlier admission of the same job kept
                shutil.rmtree(kept, ignore_errors=True)
            raise

    def result(self, job_id: str) -> pa.Table:
        """The exact table under review (after any mitigation): for reviewers, never submitters."""
        return self._load(self.queue.get(job_id))

    def report(self, job_id: str) -> CheckReport:
        """The current check report of ``job_id``."""
        return _report_from(self.queue.get(job_id).evidence["report"])

    def mitigate(
        self,
        job_id: str,
        reviewer: str,
        organisation: str,
        action: Literal["suppress", "round"],
        reason: str,
        *,
        base: int = 0,
    ) -> ReviewItem:
        """Apply a mitigation to a pending result: ``suppress`` blanks every cell a rule failed
        (those rules then pass, and the blanked cells leave the differencing description);
        ``round`` rounds the count columns to ``base``. The checks are re-run on the result."""
        item = self.queue.get(job_id)
        record = dict(item.evidence)
        table = self._load(item)
        report = _report_from(record["report"])
        evidence = ResultEvidence.from_json(record["measured"])
        if action == "suppress":
            failing = [o for o in report.outcomes if o.outcome == "fail" and o.cells]
            if not failing:
                raise ReviewRefused("R-MITIGATION", f"job {job_id} has no failing cell to suppress")
            mitigated, note = suppress(table, evidence, failing)
            blanked = {row for o in failing for row, _ in o.cells}
            outcomes = [
                RuleOutcome(o.rule, "pass", f"mitigated: {note}") if o in failing else o
                for o in report.outcomes
            ]
            description = record["description"] and _without_rows(record["description"], table, blanked)
        elif action == "round":
            mitigated, note = round_counts(table, base, evidence.count_columns)
            outcomes, description = list(report.outcomes), record["description"]
        else:
            raise ReviewRefused("R-MITIGATION", f"unknown mitigation {action!r}: use suppress or round")
        with self._lock:
            self._refresh(None)
            findings = self._findings(
                None if description is None else ReleaseDescriptor.from_json(description), report.parameters
            )
            watermark = self._seq
        report = _with_differencing(
            CheckReport(tuple(o for o in outcomes if o.rule != RULE_ID), report.parameters),
            None if description is None else ReleaseDescriptor.from_json(description),
            findings,
        )
        record.update(
            report=report.to_json(),
            description=description,
            differencing=[_finding_json(f) for f in findings],
            checked_through=watermark,
            mitigations=[*record["mitigations"], {"action": action, "note": note, "by": reviewer}],
        )
        digest = self._keep(job_id, item.organisation, mitigated)
        return self.queue.revise(
            job_id,
            reviewer,
            organisation,
            reason,
            result_sha256=digest,
            worst_check=report.worst,
            evidence=record,
        )

    def release(self, job_id: str, actor: str, out: Path) -> Release:
        """Write an approved result to ``out`` as a signed artifact and record its release.

        Refused (``SDC-DIFFERENCING``) when a result released since this one was checked
        now differences with it; the item stays approved and can be returned or rejected.
        Nothing is left in ``out`` when the release is refused.
        """
        item = self.queue.get(job_id)
        if item.state != "approved":
            raise ReviewRefused(
                "R-STATE", f"job {job_id} is {item.state}: only approved results are released"
            )
        manifest = {
            "format": MANIFEST_FORMAT,
            "job_id": job_id,
            "scenario": item.scenario,
            "operator": item.organisation,
            "submitter": item.submitter,
            "purpose": item.evidence["purpose"],
            "datasets": {
                s["name"]: {k: v for k, v in s.items() if k != "name"} for s in item.evidence["sources"]
            },
            "code_sha256": hashlib.sha256(str(item.evidence["code"]).encode("utf-8")).hexdigest(),
            "quarantine_sha256": item.evidence["quarantine_sha256"],
            "result_sha256": item.result_sha256,
            "checks": item.evidence["report"],
            "differencing": item.evidence["differencing"],
            "mitigations": item.evidence["mitigations"],
            "reviewers": self.queue.decisions(job_id),
            "approval_ledger_index": self.queue.approval_index(job_id),
            "dp_guarantee": item.evidence["dp_guarantee"],
            "release_key": self.public_key.vkey,
        }
        artifact = write_release(out, self._load(item), manifest, self._signer(), self._key_name)
        try:
            index = self.queue.mark_released(
                job_id, actor, artifact, description=item.evidence["description"], guard=self._recheck
            )
        except BaseException:
            shutil.rmtree(out, ignore_errors=True)
            raise
        return Release(job_id, out, artifact, index)

    def _recheck(self, db: sqlite3.Connection, item: ReviewItem) -> None:
        description = item.evidence["description"]
        if description is None:
            return
        params = _report_from(item.evidence["report"]).parameters
        with self._lock:
            self._refresh(db)
            findings = self._findings(ReleaseDescriptor.from_json(description), params)
            since = int(item.evidence["checked_through"])
            new = [f for f in findings if any(self._seq_of.get(r, 0) > since for r in f.other_release_ids)]
        if new:
            raise ReviewRefused(
                RULE_ID,
                f"results released since {item.job_id} was checked now difference with it: "
                + "; ".join(f.explanation for f in new[:_LISTED])
                + ". Return or reject it; a new job can be reviewed against every release",
            )

    def _refresh(self, db: sqlite3.Connection | None) -> None:
        """Bring the in-memory index up to every committed release (lock held)."""
        rows = read_releases(db, self._seq) if db is not None else self.queue.releases_after(self._seq)
        for seq, body in rows:
            release = ReleaseDescriptor.from_json(body)
            self._index.add(release)
            self._seq, self._seq_of[release.release_id] = seq, seq

    def _findings(
        self, description: ReleaseDescriptor | None, params: CheckParameters
    ) -> list[DifferencingFinding]:
        return [] if description is None else self._index.check(description, params.min_cell)

    def _results(self, job_id: str) -> Path:
        return self._root / "results" / job_id

    def _keep(self, job_id: str, owner: str, table: pa.Table) -> str:
        """Store one version of a result, content-addressed, sealed under ``owner``'s data key,
        written atomically; returns its hash."""
        sink = pa.BufferOutputStream()
        with pa.ipc.new_file(sink, table.schema) as writer:
            writer.write_table(table)
        data = sink.getvalue().to_pybytes()
        digest = hashlib.sha256(data).hexdigest()
        folder = self._results(job_id)
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        staging = folder / f".{digest}.{os.getpid()}.tmp"
        try:
            staging.write_bytes(self._keys.seal(owner, data, f"{job_id}/{digest}"))
        except DataKeyError as exc:
            raise ReviewError(f"the result of job {job_id} cannot be kept: {exc}") from None
        os.replace(staging, folder / f"{digest}.arrow")
        return digest

    def _load(self, item: ReviewItem) -> pa.Table:
        path = self._results(item.job_id) / f"{item.result_sha256}.arrow"
        try:
            data = self._keys.open(path.read_bytes(), f"{item.job_id}/{item.result_sha256}")
        except FileNotFoundError:
            raise ReviewError(
                f"the checked result of job {item.job_id} is missing from {path.parent}"
            ) from None
        except DataKeyError as exc:
            raise ReviewError(f"the checked result of job {item.job_id} cannot be read: {exc}") from None
        if hashlib.sha256(data).hexdigest() != item.result_sha256:
            raise ReviewError(f"the checked result of job {item.job_id} was altered after it was checked")
        return pa.ipc.open_file(data).read_all()


def evidence_from(metadata: Mapping[str, Any], submission: Submission) -> ResultEvidence:
    """The evidence the rules read, from what the enclave stored with a result.

    A DP guarantee makes a ``dp`` result, recorded model checks a ``model``, a k-anonymity
    report a ``record``-level output; measured per-cell evidence an ``aggregate``. Anything
    else — no measurement, or a measurement the enclave marked unavailable — is an
    aggregate whose evidence is unavailable, which fails ``SDC-EVIDENCE``.
    """
    if metadata.get("guarantee") is not None:
        return ResultEvidence(
            kind="dp",
            dp_guarantee=metadata["guarantee"],
            expected_epsilon=submission.expected_epsilon,
            expected_bounds=submission.expected_bounds,
        )
    if metadata.get("kind") == "model":
        return ResultEvidence(kind="model", model_checks=list(metadata.get("checks") or []))
    if metadata.get("kanon_report") is not None:
        return ResultEvidence(
            kind="record",
            kanon_report=metadata["kanon_report"],
            quasi_identifiers=tuple(metadata.get("quasi_identifiers") or ()),
        )
    measured = metadata.get("evidence")
    if not isinstance(measured, Mapping):
        return ResultEvidence(unavailable="the enclave recorded no per-cell evidence for this output")
    if "unavailable" in measured:
        return ResultEvidence(unavailable=str(measured["unavailable"]))
    try:
        return ResultEvidence.from_json(measured)
    except TypeError as exc:
        return ResultEvidence(unavailable=f"the recorded evidence is unreadable: {exc}")


def _describe(
    submission: Submission, table: pa.Table, metadata: Mapping[str, Any], evidence: ResultEvidence
) -> ReleaseDescriptor | None:
    """The result's population for the differencing control; None for DP and model outputs,
    whose protection (noise, the model checks) does not rest on cell sizes."""
    if evidence.kind in ("dp", "model"):
        return None
    datasets = [s.name for s in submission.sources]
    statement = None
    if evidence.kind == "aggregate" and evidence.unavailable is None:
        try:
            statement = sqlglot.parse_one(str(metadata.get("rendered_sql") or ""), read="duckdb")
        except sqlglot.errors.ParseError:
            statement = None
    if isinstance(statement, exp.Select):
        return describe_release(
            statement,
            datasets,
            table,
            _evidence_json(evidence),
            release_id=submission.job_id,
            scenario=submission.scenario,
            operator=submission.operator,
        )
    return ReleaseDescriptor.create(
        submission.job_id, submission.scenario, submission.operator, datasets, {}, opaque=True
    )


def _with_differencing(
    report: CheckReport, description: ReleaseDescriptor | None, findings: Sequence[DifferencingFinding]
) -> CheckReport:
    outcome: Outcome
    if description is None:
        outcome, why = "pass", "not applicable: noise or the model checks protect this output"
    elif any(f.kind != "opaque" for f in findings):
        outcome, why = "fail", _listed([f for f in findings if f.kind != "opaque"])
    elif findings:
        outcome, why = "review", _listed(list(findings))
    else:
        outcome, why = "pass", "no earlier release in scope subtracts with it below the minimum cell"
    return CheckReport((*report.outcomes, RuleOutcome(RULE_ID, outcome, why)), report.parameters)


def _listed(findings: Sequence[DifferencingFinding]) -> str:
    more = f"; and {len(findings) - _LISTED} more" if len(findings) > _LISTED else ""
    return "; ".join(f.explanation for f in findings[:_LISTED]) + more


def _without_rows(description: Mapping[str, Any], table: pa.Table, rows: set[int]) -> dict[str, Any]:
    """A stored description minus the cells of suppressed rows, which no longer leave."""
    found = ReleaseDescriptor.from_json(description)
    gone = {tuple(table.column(c)[r].as_py() for c in found.grouping) for r in rows}
    kept = {key: n for key, n in found.cells if key not in gone}
    return replace(found, cells=tuple(kept.items())).to_json()


def _evidence_json(evidence: ResultEvidence) -> dict[str, Any]:
    data = asdict(evidence)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in data.items()}


def _finding_json(finding: DifferencingFinding) -> dict[str, Any]:
    data = asdict(finding)
    data["group_key"] = None if finding.group_key is None else [str(v) for v in finding.group_key]
    data["other_release_ids"] = list(finding.other_release_ids)
    return data


def _report_from(data: Mapping[str, Any]) -> CheckReport:
    outcomes = tuple(
        RuleOutcome(o["rule"], o["outcome"], o["explanation"], tuple((int(r), str(c)) for r, c in o["cells"]))
        for o in data["outcomes"]
    )
    return CheckReport(outcomes, CheckParameters(**data["parameters"]))
