"""Schema version 5: the authority's annual evaluations (年度评估) of operators.

Their own MetaData keeps version 1 pinned to its tables (see :mod:`gateway.control.db`);
references are checked by the service that writes them (:mod:`gateway.evaluation`).
"""

from __future__ import annotations

from sqlalchemy import JSON, Column, Index, Integer, MetaData, String, Table

from gateway.control.schema import ID_CHARS, NAME_CHARS, TEXT_CHARS, UtcDateTime

metadata = MetaData()

evaluations = Table(
    "evaluations",
    metadata,
    Column("id", String(ID_CHARS), primary_key=True),
    Column("operator_id", String(ID_CHARS), nullable=False),
    Column("year", Integer, nullable=False),
    Column("round", Integer, nullable=False),  # 1: the evaluation; 2: after a rectification
    Column("outcome", String(NAME_CHARS), nullable=False),
    Column("reason", String(TEXT_CHARS), nullable=False),
    Column("report", JSON, nullable=False),
    Column("report_sha256", String(64), nullable=False),
    Column("decided_by", String(ID_CHARS), nullable=False),
    Column("decided_at", UtcDateTime(), nullable=False),
    Column("rectify_due", UtcDateTime(), nullable=True),
    Column("overdue_at", UtcDateTime(), nullable=True),
    Index("evaluations_operator_year", "operator_id", "year", "round", unique=True),
)
