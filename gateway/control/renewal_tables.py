"""Schema version 4: renewal applications (续期申请) and the expiry warnings already given.

Their own MetaData keeps version 1 pinned to its tables (see :mod:`gateway.control.db`);
references to authorizations and users are checked by the service functions that write them.
"""

from __future__ import annotations

from sqlalchemy import Column, Index, Integer, MetaData, String, Table

from gateway.control.schema import ID_CHARS, NAME_CHARS, TEXT_CHARS, UtcDateTime

metadata = MetaData()

renewals = Table(
    "renewals",
    metadata,
    Column("id", String(ID_CHARS), primary_key=True),
    Column("authorization_id", String(ID_CHARS), nullable=False),
    Column("operator_id", String(ID_CHARS), nullable=False),
    Column("requested_by", String(ID_CHARS), nullable=False),
    Column("requested_at", UtcDateTime(), nullable=False),
    Column("current_ends_at", UtcDateTime(), nullable=False),
    Column("requested_ends_at", UtcDateTime(), nullable=False),
    Column("note", String(TEXT_CHARS), nullable=False),
    Column("status", String(NAME_CHARS), nullable=False),
    Column("decided_by", String(ID_CHARS), nullable=True),
    Column("decided_at", UtcDateTime(), nullable=True),
    Column("reason", String(TEXT_CHARS), nullable=True),
    Index("renewals_authorization", "authorization_id", "status"),
)

expiry_warnings = Table(
    "expiry_warnings",
    metadata,
    Column("authorization_id", String(ID_CHARS), primary_key=True),
    Column("days_before", Integer, primary_key=True, autoincrement=False),
    Column("ends_at", UtcDateTime(), primary_key=True),
    Column("warned_at", UtcDateTime(), nullable=False),
)
"""One row per warning given; ``ends_at`` is part of the key so a renewed term warns afresh."""
