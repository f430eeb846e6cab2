"""Ending an authorization (退出), past the control plane: shred, delete, report.

:func:`gateway.control.authorizations.revoke` closes permissions in one transaction. Here,
after it, the API process withdraws the closed jobs from review and deletes their results;
when the operator has exited (no authorization left in force) it also destroys the
operator's data keys — every quarantined result and review copy it left, every dataset
the enclave derived for it (PSI matches), and every backup of them, becomes unreadable at
once — and deletes its released artifacts. The report lists those derived datasets as
shredded; the job runner's sweep then deletes their unreadable files and catalog entries,
and the PSI keys of closed jobs. An authorization that ends while the operator holds
another leaves its key alive: the derived datasets of the scenarios it closed are listed
as pending the sweep, which deletes them.

Logs are kept: the ledger is never pruned, and the control plane keeps every job,
scenario and decision record; the report states the date until which they are retained
at the least. The report is written once as canonical JSON, its SHA-256 recorded in the
ledger as ``authorization.exit_report``, so an auditor can check the file against the log.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from gateway.control import Principal, Role, schema
from gateway.control.authorizations import ExitSummary, visible_authorization
from gateway.control.identity import require_role
from gateway.control.renewals import months_before
from gateway.errors import NotFound
from gateway.platform import Platform
from ledger import canonical_json
from sandbox.catalog import Dataset
from sandbox.derived import is_derived

RETENTION_MONTHS = 12
"""Logs outlive an exit by at least this long (the ledger itself is never pruned)."""


@dataclass(frozen=True)
class ExitReport:
    """What an authorization's end closed, deleted and destroyed, and how long its logs stay."""

    authorization_id: str
    operator_id: str
    exited: bool
    voluntary: bool
    reason: str
    ended_at: str
    ended_by: str
    tokens_revoked: int
    scenarios_closed: list[str]
    jobs_closed: list[str]
    results_deleted: list[str]
    releases_deleted: list[str]
    derived_datasets_shredded: list[str]
    derived_datasets_pending_sweep: list[str]
    data_keys_destroyed: list[dict[str, str]]
    logs_retained_until: str
    ledger_size_at_end: int

    def to_json(self) -> dict[str, Any]:
        """The report as plain JSON values."""
        return asdict(self)


def finish(
    platform: Platform, principal: Principal, summary: ExitSummary, *, reason: str, voluntary: bool
) -> tuple[ExitReport, str]:
    """Carry out what a revocation leaves to the API process; returns the report and its SHA-256."""
    operator = summary.operator_id
    for job_id in summary.jobs_closed:
        platform.gate.queue.withdraw(
            job_id, principal.user_id, f"authorization {summary.authorization_id} ended"
        )
    affected = _operator_jobs(platform, operator) if summary.exited else list(summary.jobs_closed)
    platform.layout.remove_results(affected)
    keys, released = [], []
    if summary.exited:
        why = f"operator {operator} exited: authorization {summary.authorization_id} ended ({reason})"
        keys = [
            {"key_id": r.key_id, "fingerprint": r.fingerprint, "destroyed_at": r.destroyed_at or ""}
            for r in platform.keys.destroy(operator, actor=principal.user_id, reason=why)
        ]
        released = _delete_releases(platform, affected)
    derived = _derived(platform, operator, summary)
    ended = platform.control.now()
    report = ExitReport(
        authorization_id=summary.authorization_id,
        operator_id=operator,
        exited=summary.exited,
        voluntary=voluntary,
        reason=reason,
        ended_at=ended.isoformat(),
        ended_by=principal.user_id,
        tokens_revoked=summary.tokens_revoked,
        scenarios_closed=list(summary.scenarios_closed),
        jobs_closed=list(summary.jobs_closed),
        results_deleted=affected,
        releases_deleted=released,
        derived_datasets_shredded=sorted(d.name for d in derived if summary.exited),
        derived_datasets_pending_sweep=sorted(d.name for d in derived if not summary.exited),
        data_keys_destroyed=keys,
        logs_retained_until=_retained_until(ended).isoformat(),
        ledger_size_at_end=platform.ledger.size,
    )
    document = canonical_json(report.to_json())
    digest = hashlib.sha256(document).hexdigest()
    folder = platform.layout.exit_reports
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    staging = folder / f".{summary.authorization_id}.{os.getpid()}.tmp"
    staging.write_bytes(document)
    os.replace(staging, folder / f"{summary.authorization_id}.json")
    platform.ledger.append(
        principal.user_id,
        "authorization.exit_report",
        summary.authorization_id,
        {"sha256": digest, "operator_id": operator, "exited": summary.exited},
    )
    return report, digest


def report_of(platform: Platform, principal: Principal, authorization_id: str) -> dict[str, Any]:
    """The exit report of an ended authorization (authority and auditors), with its SHA-256."""
    require_role(principal, {Role.AUTHORITY, Role.AUDITOR}, "reading an exit report")
    with platform.control.transaction(write=False) as conn:
        visible_authorization(conn, principal, authorization_id)
    try:
        document = (platform.layout.exit_reports / f"{authorization_id}.json").read_bytes()
    except FileNotFoundError:
        raise NotFound(
            "G-STATE", f"authorization {authorization_id} has not ended: it has no exit report"
        ) from None
    return {"sha256": hashlib.sha256(document).hexdigest(), "report": json.loads(document)}


def _derived(platform: Platform, operator_id: str, summary: ExitSummary) -> list[Dataset]:
    """The datasets derived for the operator that this end concerns: every one on an exit
    (its key is gone), else those of the scenarios it closed."""
    return [
        d
        for d in platform.catalog.list()
        if is_derived(d)
        and d.extra.get("operator") == operator_id
        and (summary.exited or d.extra.get("scenario") in summary.scenarios_closed)
    ]


def _operator_jobs(platform: Platform, operator_id: str) -> list[str]:
    with platform.control.transaction(write=False) as conn:
        query = (
            select(schema.jobs.c.id)
            .where(schema.jobs.c.operator_id == operator_id)
            .order_by(schema.jobs.c.id)
        )
        return list(conn.scalars(query))


def _delete_releases(platform: Platform, job_ids: list[str]) -> list[str]:
    deleted = []
    for job_id in job_ids:
        folder = platform.layout.releases / job_id
        if folder.exists():
            shutil.rmtree(folder, ignore_errors=True)
            deleted.append(job_id)
    return deleted


def _retained_until(ended: datetime) -> datetime:
    return months_before(ended, -RETENTION_MONTHS)
