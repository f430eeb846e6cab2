"""The review queue (出域审核): nothing leaves without human decisions that respect separation of duties.

States::

    pending_review ──approve──▶ approved ──release──▶ released
          │   ▲                   │
          │   └──── (second approval still needed stays pending_review)
          ├──reject──▶ rejected   (final, with a reason)
          └──return──▶ returned   (needs changes; a new job is submitted)

An approved result that has not left yet may still be rejected or returned (for instance
when a result released meanwhile now differences with it). A reviewer may replace a
pending result by a mitigated version (:meth:`ReviewQueue.revise`) before anyone approves.

Rules, each enforced here and refused with its id:

- ``R-SEPARATION``: neither the submitter nor anyone of the submitter's organisation may
  review the result;
- ``R-REASON``: every decision carries a reason;
- ``R-TWO-REVIEWERS``: results over datasets of classification level ≥ 3, and results with
  any failed disclosure check, need two distinct approving reviewers before they are
  approved — for failed checks the approvals are explicit overrides and both are recorded;
- ``R-STATE``: decisions only on pending results; release only of approved ones.

Every state change is a ledger entry (who, when, decision, reason, result hash).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from deid.sqlite_store import SqliteStore
from ledger import Ledger
from outbound_review.errors import ReviewError, ReviewRefused

State = Literal["pending_review", "approved", "released", "rejected", "returned"]
Decision = Literal["approve", "reject", "return"]
TWO_REVIEWER_LEVEL = 3

_SCHEMA = (
    "CREATE TABLE items (job_id TEXT PRIMARY KEY, state TEXT NOT NULL, body TEXT NOT NULL)",
    "CREATE TABLE decisions (job_id TEXT NOT NULL, reviewer TEXT NOT NULL, organisation TEXT NOT NULL, "
    "decision TEXT NOT NULL, reason TEXT NOT NULL, ledger_index INTEGER NOT NULL)",
    "CREATE TABLE releases (seq INTEGER PRIMARY KEY AUTOINCREMENT, job_id TEXT NOT NULL UNIQUE, "
    "body TEXT NOT NULL)",
)


@dataclass(frozen=True)
class ReviewItem:
    """A quarantined result waiting for, or past, review — with the evidence a reviewer needs."""

    job_id: str
    submitter: str
    organisation: str
    scenario: str
    level: int
    result_sha256: str
    worst_check: Literal["pass", "review", "fail"]
    evidence: dict[str, Any]
    state: State = "pending_review"
    approvals: tuple[str, ...] = ()

    @property
    def approvals_needed(self) -> int:
        """Distinct approving reviewers this result needs."""
        return 2 if self.level >= TWO_REVIEWER_LEVEL or self.worst_check == "fail" else 1


class ReviewQueue:
    """Review items and decisions in SQLite; every change also goes to the ledger."""

    def __init__(self, path: Path, ledger: Ledger) -> None:
        self._ledger = ledger
        self._store = SqliteStore(path, what="review queue", error=ReviewError, schema=_SCHEMA)

    def close(self) -> None:
        self._store.close()

    def submit(self, item: ReviewItem) -> ReviewItem:
        """Put a quarantined result in the queue as pending review."""
        with self._store.transaction(write=True) as db:
            if db.execute("SELECT 1 FROM items WHERE job_id = ?", (item.job_id,)).fetchone():
                raise ReviewRefused("R-STATE", f"job {item.job_id} is already in the review queue")
            db.execute("INSERT INTO items VALUES (?, ?, ?)", (item.job_id, "pending_review", _body(item)))
            self._ledger.append(
                item.submitter,
                "review.requested",
                item.job_id,
                {"result_sha256": item.result_sha256, "level": item.level, "worst_check": item.worst_check},
            )
        return item

    def get(self, job_id: str) -> ReviewItem:
        """One item with its current state and approvals."""
        with self._store.transaction() as db:
            return _load(db, job_id)

    def items(self, state: State) -> list[ReviewItem]:
        """Every item in ``state``, oldest job id first."""
        with self._store.transaction() as db:
            rows = db.execute("SELECT job_id FROM items WHERE state = ? ORDER BY job_id", (state,)).fetchall()
            return [_load(db, job_id) for (job_id,) in rows]

    def pending(self, reviewer_organisation: str) -> list[ReviewItem]:
        """Items a reviewer of ``reviewer_organisation`` may decide (never its own organisation's)."""
        return [i for i in self.items("pending_review") if i.organisation != reviewer_organisation]

    def decide(
        self, job_id: str, reviewer: str, organisation: str, decision: Decision, reason: str
    ) -> ReviewItem:
        """Record a reviewer's decision; returns the item in its new state."""
        if not reason.strip():
            raise ReviewRefused("R-REASON", "every decision needs a reason the submitter can act on")
        if decision not in ("approve", "reject", "return"):
            raise ReviewRefused("R-STATE", f"unknown decision {decision!r}")
        with self._store.transaction(write=True) as db:
            item = _load(db, job_id)
            # An approved result that has not left yet may still be withdrawn.
            if item.state != "pending_review" and not (item.state == "approved" and decision != "approve"):
                raise ReviewRefused("R-STATE", f"job {job_id} is {item.state}, not pending review")
            _check_separation(item, reviewer, organisation)
            if decision == "approve" and reviewer in item.approvals:
                raise ReviewRefused(
                    "R-TWO-REVIEWERS", "a second approval must come from a different reviewer"
                )
            state = _next_state(item, decision)
            action = (
                "review.override"
                if decision == "approve" and item.worst_check == "fail"
                else f"review.{decision}"
            )
            receipt = self._ledger.append(
                reviewer,
                action,
                job_id,
                {"decision": decision, "reason": reason, "state": state, "result_sha256": item.result_sha256},
            )
            db.execute(
                "INSERT INTO decisions VALUES (?, ?, ?, ?, ?, ?)",
                (job_id, reviewer, organisation, decision, reason, receipt.index),
            )
            db.execute("UPDATE items SET state = ? WHERE job_id = ?", (state, job_id))
            return _load(db, job_id)

    def withdraw(self, job_id: str, actor: str, reason: str) -> ReviewItem | None:
        """Close an open item because the platform ended the job (an authorization ended), as
        ``review.withdrawn``; None if the job was never queued, unchanged if already decided."""
        with self._store.transaction(write=True) as db:
            try:
                item = _load(db, job_id)
            except ReviewRefused:
                return None
            if item.state not in ("pending_review", "approved", "returned"):
                return item
            self._ledger.append(
                actor, "review.withdrawn", job_id, {"reason": reason, "result_sha256": item.result_sha256}
            )
            db.execute("UPDATE items SET state = 'rejected' WHERE job_id = ?", (job_id,))
            return _load(db, job_id)

    def revise(
        self,
        job_id: str,
        reviewer: str,
        organisation: str,
        reason: str,
        *,
        result_sha256: str,
        worst_check: Literal["pass", "review", "fail"],
        evidence: Mapping[str, Any],
    ) -> ReviewItem:
        """Replace a pending result by a reviewer's mitigated version, recorded as ``review.mitigated``.

        Only before any approval: an approval is of one exact table, never carried over.
        """
        if not reason.strip():
            raise ReviewRefused("R-REASON", "a mitigation needs a reason the submitter can act on")
        with self._store.transaction(write=True) as db:
            item = _load(db, job_id)
            if item.state != "pending_review":
                raise ReviewRefused("R-STATE", f"job {job_id} is {item.state}, not pending review")
            _check_separation(item, reviewer, organisation)
            if item.approvals:
                raise ReviewRefused(
                    "R-STATE", f"job {job_id} already has an approval; mitigate before approving"
                )
            revised = replace(
                item, result_sha256=result_sha256, worst_check=worst_check, evidence=dict(evidence)
            )
            self._ledger.append(
                reviewer,
                "review.mitigated",
                job_id,
                {
                    "reason": reason,
                    "from_sha256": item.result_sha256,
                    "result_sha256": result_sha256,
                    "worst_check": worst_check,
                },
            )
            db.execute("UPDATE items SET body = ? WHERE job_id = ?", (_body(revised), job_id))
            return _load(db, job_id)

    def mark_released(
        self,
        job_id: str,
        actor: str,
        artifact_sha256: str,
        *,
        description: Mapping[str, Any] | None = None,
        guard: Callable[[sqlite3.Connection, ReviewItem], None] | None = None,
    ) -> int:
        """Record that an approved result left as a signed artifact; returns the ledger index.

        ``description`` is stored with the release for the differencing control; ``guard``
        runs inside the same write transaction, after every earlier release is committed and
        before this one is, so a check it makes cannot be overtaken by a concurrent release.
        """
        with self._store.transaction(write=True) as db:
            item = _load(db, job_id)
            if item.state != "approved":
                raise ReviewRefused(
                    "R-STATE", f"job {job_id} is {item.state}: only approved results are released"
                )
            if guard is not None:
                guard(db, item)
            receipt = self._ledger.append(
                actor,
                "result.released",
                job_id,
                {"artifact_sha256": artifact_sha256, "result_sha256": item.result_sha256},
            )
            if description is not None:
                db.execute(
                    "INSERT INTO releases (job_id, body) VALUES (?, ?)",
                    (job_id, json.dumps(description, sort_keys=True)),
                )
            db.execute("UPDATE items SET state = 'released' WHERE job_id = ?", (job_id,))
            return receipt.index

    def releases_after(self, seq: int) -> list[tuple[int, dict[str, Any]]]:
        """Stored release descriptions with a sequence number above ``seq``, in release order."""
        with self._store.transaction() as db:
            return read_releases(db, seq)

    def decisions(self, job_id: str) -> list[dict[str, Any]]:
        """Every decision on ``job_id``, oldest first: who, of which organisation, what, why, where logged."""
        with self._store.transaction() as db:
            _load(db, job_id)
            rows = db.execute(
                "SELECT reviewer, organisation, decision, reason, ledger_index FROM decisions "
                "WHERE job_id = ? ORDER BY ledger_index",
                (job_id,),
            ).fetchall()
        keys = ("reviewer", "organisation", "decision", "reason", "ledger_index")
        return [dict(zip(keys, row, strict=True)) for row in rows]

    def approval_index(self, job_id: str) -> int:
        """The ledger index of the decision that approved ``job_id``."""
        with self._store.transaction() as db:
            row = db.execute(
                "SELECT MAX(ledger_index) FROM decisions WHERE job_id = ? AND decision = 'approve'", (job_id,)
            ).fetchone()
        if row is None or row[0] is None:
            raise ReviewRefused("R-STATE", f"job {job_id} has no approval")
        return int(row[0])


def read_releases(db: sqlite3.Connection, seq: int) -> list[tuple[int, dict[str, Any]]]:
    """Release descriptions stored after sequence number ``seq`` (inside a transaction)."""
    rows = db.execute("SELECT seq, body FROM releases WHERE seq > ? ORDER BY seq", (seq,)).fetchall()
    return [(int(n), json.loads(body)) for n, body in rows]


def _check_separation(item: ReviewItem, reviewer: str, organisation: str) -> None:
    if reviewer == item.submitter or organisation == item.organisation:
        raise ReviewRefused(
            "R-SEPARATION", "results are reviewed by someone outside the submitter's organisation"
        )


def _next_state(item: ReviewItem, decision: Decision) -> State:
    if decision == "reject":
        return "rejected"
    if decision == "return":
        return "returned"
    return "approved" if len(item.approvals) + 1 >= item.approvals_needed else "pending_review"


def _body(item: ReviewItem) -> str:
    fields = {k: v for k, v in item.__dict__.items() if k not in ("state", "approvals")}
    return json.dumps(fields, ensure_ascii=False, sort_keys=True)


def _load(db: Any, job_id: str) -> ReviewItem:
    row = db.execute("SELECT state, body FROM items WHERE job_id = ?", (job_id,)).fetchone()
    if row is None:
        raise ReviewRefused("R-STATE", f"job {job_id} is not in the review queue")
    approvals = tuple(
        r[0]
        for r in db.execute(
            "SELECT reviewer FROM decisions WHERE job_id = ? AND decision = 'approve' ORDER BY ledger_index",
            (job_id,),
        )
    )
    return ReviewItem(**json.loads(row[1]), state=row[0], approvals=approvals)
