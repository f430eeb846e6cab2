"""Rectifications (整改) past their deadline: the job runner flags each once.

A ``rectify`` outcome of an annual evaluation (:mod:`gateway.evaluation`) gives the
operator 30 days; when they pass with no second evaluation of that year, the
rectification is marked overdue and ``evaluation.rectify_overdue`` recorded, so the
authority sees it.
"""

from __future__ import annotations

from sqlalchemy import select, update

from gateway.control.db import ControlPlane
from gateway.control.evaluation_tables import evaluations

RULE = "G-EVALUATION"
"""The rule refusing an outcome for a year whose evaluation is already final or re-evaluated."""


def flag_overdue(cp: ControlPlane, actor: str) -> list[str]:
    """Flag, once each, rectifications whose deadline passed with no second evaluation;
    returns the evaluations flagged (recorded as ``evaluation.rectify_overdue``)."""
    now = cp.now()
    flagged = []
    with cp.transaction() as conn:
        later = select(evaluations.c.id).where(evaluations.c.round == 2)
        candidates = conn.execute(
            select(evaluations).where(
                evaluations.c.outcome == "rectify",
                evaluations.c.round == 1,
                evaluations.c.rectify_due <= now,
                evaluations.c.overdue_at.is_(None),
            )
        ).mappings()
        for row in list(candidates):
            again = conn.scalar(
                later.where(
                    evaluations.c.operator_id == row["operator_id"], evaluations.c.year == row["year"]
                )
            )
            if again is not None:
                continue
            conn.execute(update(evaluations).where(evaluations.c.id == row["id"]).values(overdue_at=now))
            details = {"year": row["year"], "rectify_due": row["rectify_due"].isoformat()}
            cp.ledger.append(actor, "evaluation.rectify_overdue", row["operator_id"], details)
            flagged.append(row["id"])
    return flagged
