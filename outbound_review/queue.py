"""The review queue (出域审核): nothing leaves without human decisions that respect separation of duties.

States::

    pending_review ──approve──▶ approved ──release──▶ released
          │   ▲                   │
          │   └──── (second approval still needed stays pending_review)
          ├──reject──▶ rejected   (final, with a reason)
          └──return──▶ returned   (needs changes; a new job is submitted)

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
from dataclasses import dataclass
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

    def pending(self, reviewer_organisation: str) -> list[ReviewItem]:
        """Items a reviewer of ``reviewer_organisation`` may decide (never its own organisation's)."""
        with self._store.transaction() as db:
            rows = db.execute(
                "SELECT job_id FROM items WHERE state = 'pending_review' ORDER BY job_id"
            ).fetchall()
            items = [_load(db, job_id) for (job_id,) in rows]
        return [i for i in items if i.organisation != reviewer_organisation]

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
            if item.state != "pending_review":
                raise ReviewRefused("R-STATE", f"job {job_id} is {item.state}, not pending review")
            if reviewer == item.submitter or organisation == item.organisation:
                raise ReviewRefused(
                    "R-SEPARATION", "results are reviewed by someone outside the submitter's organisation"
                )
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

    def mark_released(self, job_id: str, actor: str, artifact_sha256: str) -> int:
        """Record that an approved result left as a signed artifact; returns the ledger index."""
        with self._store.transaction(write=True) as db:
            item = _load(db, job_id)
            if item.state != "approved":
                raise ReviewRefused(
                    "R-STATE", f"job {job_id} is {item.state}: only approved results are released"
                )
            receipt = self._ledger.append(
                actor,
                "result.released",
                job_id,
                {"artifact_sha256": artifact_sha256, "result_sha256": item.result_sha256},
            )
            db.execute("UPDATE items SET state = 'released' WHERE job_id = ?", (job_id,))
            return receipt.index

    def approval_index(self, job_id: str) -> int:
        """The ledger index of the decision that approved ``job_id``."""
        with self._store.transaction() as db:
            row = db.execute(
                "SELECT MAX(ledger_index) FROM decisions WHERE job_id = ? AND decision = 'approve'", (job_id,)
            ).fetchone()
        if row is None or row[0] is None:
            raise ReviewRefused("R-STATE", f"job {job_id} has no approval")
        return int(row[0])


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
