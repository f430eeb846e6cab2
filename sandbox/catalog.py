"""The public data resource catalog (公共数据资源目录): datasets, their columns and column tags.

Column tags are the policy's vocabulary:

- ``identifier``: pseudonymized; usable only as a join key or inside COUNT(DISTINCT …).
- ``quasi_identifier``: may be a dimension only under group-size thresholds.
- ``dimension``: may be grouped by and output.
- ``measure``: aggregated, clamped to the declared bounds [lower, upper].
- ``sensitive``: aggregated only with differential privacy.
- ``hidden``: never referenced.

The catalog lives in SQLite beside the enclave (never inside the data file that jobs can
open), and every registration and tag change is a ledger entry.
"""

from __future__ import annotations

import json
import math
import re
import sqlite3
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from deid.sqlite_store import SqliteStore
from ledger import Ledger
from sandbox.errors import CatalogError

_NAME_RE = re.compile(r"[a-z][a-z0-9_]{0,62}\Z")
_SCHEMA_VERSION = 1
_SCHEMA = (
    "CREATE TABLE datasets (name TEXT PRIMARY KEY, registration_code TEXT UNIQUE NOT NULL, "
    "body TEXT NOT NULL)",
)
_TYPES = {"VARCHAR", "BIGINT", "INTEGER", "DOUBLE", "DATE", "BOOLEAN", "TIMESTAMP"}


class Tag(StrEnum):
    """What a column may be used for; see the module docstring."""

    IDENTIFIER = "identifier"
    QUASI_IDENTIFIER = "quasi_identifier"
    DIMENSION = "dimension"
    MEASURE = "measure"
    SENSITIVE = "sensitive"
    HIDDEN = "hidden"


def check_name(kind: str, name: str) -> str:
    """Return ``name`` if it is a lower-case SQL-safe identifier, else raise CatalogError."""
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise CatalogError(
            f"{kind} name {name!r} must be lower-case letters, digits and _ (max 63), starting with a letter"
        )
    return name


@dataclass(frozen=True)
class Column:
    """One column of a dataset and how the policy lets it be used."""

    name: str
    type: str
    tag: Tag
    lower: float | None = None
    upper: float | None = None
    domain: tuple[str, ...] | None = None
    join_domain: str | None = None
    entity: str | None = None
    description: str = ""

    def __post_init__(self) -> None:
        check_name("column", self.name)
        if self.type not in _TYPES:
            raise CatalogError(f"column {self.name}: type {self.type} is not one of {sorted(_TYPES)}")
        object.__setattr__(self, "tag", Tag(self.tag))
        numeric = self.type in {"BIGINT", "INTEGER", "DOUBLE"}
        if self.tag in (Tag.MEASURE, Tag.SENSITIVE):
            if not numeric:
                raise CatalogError(f"column {self.name}: a {self.tag} must be numeric, not {self.type}")
            if not (_finite(self.lower) and _finite(self.upper) and self.lower < self.upper):  # type: ignore[operator]
                raise CatalogError(
                    f"column {self.name}: a {self.tag} needs declared finite bounds lower < upper "
                    "(clamping uses them; they are never taken from the data)"
                )
        elif self.lower is not None or self.upper is not None:
            raise CatalogError(f"column {self.name}: only measures and sensitive columns carry bounds")
        if self.tag is Tag.IDENTIFIER and not self.join_domain:
            raise CatalogError(f"column {self.name}: an identifier needs a join domain")
        if self.domain is not None:
            if self.tag not in (Tag.DIMENSION, Tag.QUASI_IDENTIFIER):
                raise CatalogError(f"column {self.name}: only dimensions declare a public domain of values")
            object.__setattr__(self, "domain", tuple(str(v) for v in self.domain))

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["tag"] = str(self.tag)
        data["domain"] = list(self.domain) if self.domain is not None else None
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Column:
        domain = data.get("domain")
        return cls(**{**data, "domain": tuple(domain) if domain is not None else None})


@dataclass(frozen=True)
class Dataset:
    """A catalog entry: what the data is, who provides it, how it may be used."""

    name: str
    provider: str
    level: int
    columns: tuple[Column, ...]
    row_count: int = 0
    content_hash: str = ""
    description: str = ""
    core_items: tuple[str, ...] = ()
    update_frequency: str = "unspecified"
    constraints: str = ""
    registration_code: str = ""
    registered_at: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    unique_columns: tuple[str, ...] = ()
    """Identifier columns measured at ingest to hold each non-null value on at most one row:
    a DP query over such a column alone needs no contribution bounding."""

    def __post_init__(self) -> None:
        check_name("dataset", self.name)
        if not isinstance(self.level, int) or not 1 <= self.level <= 4:
            raise CatalogError(
                f"dataset {self.name}: classification level must be 1 to 4, not {self.level!r}"
            )
        if not self.provider:
            raise CatalogError(f"dataset {self.name}: a provider department is required")
        names = [c.name for c in self.columns]
        if not names or len(set(names)) != len(names):
            raise CatalogError(f"dataset {self.name}: columns must be non-empty and unique")
        object.__setattr__(self, "unique_columns", tuple(self.unique_columns))
        if any(u not in names for u in self.unique_columns):
            raise CatalogError(
                f"dataset {self.name}: unique columns {list(self.unique_columns)} must be its columns"
            )

    def column(self, name: str) -> Column:
        """The column called ``name``; CatalogError if there is none."""
        for c in self.columns:
            if c.name == name:
                return c
        raise CatalogError(f"dataset {self.name} has no column {name!r}")

    def schema(self) -> dict[str, Any]:
        """What a developer may see: names, types, tags, bounds, descriptions — never values."""
        return {
            "name": self.name,
            "provider": self.provider,
            "level": self.level,
            "description": self.description,
            "update_frequency": self.update_frequency,
            "registration_code": self.registration_code,
            "row_count": self.row_count,
            "columns": [c.to_json() for c in self.columns],
        }


class Catalog:
    """The catalog store. Every change is recorded in the ledger before it is committed."""

    def __init__(self, path: Path, ledger: Ledger) -> None:
        self._ledger = ledger
        self._store = SqliteStore(
            path, what="catalog", error=CatalogError, schema=_SCHEMA, version=_SCHEMA_VERSION
        )
        self._db = self._store.db

    def close(self) -> None:
        self._store.close()

    def register(self, dataset: Dataset, actor: str) -> Dataset:
        """Register a dataset (登记): assigns its registration code and records it in the ledger."""
        with self._store.transaction(write=True):
            if self._db.execute("SELECT 1 FROM datasets WHERE name = ?", (dataset.name,)).fetchone():
                raise CatalogError(f"a dataset named {dataset.name!r} is already registered")
            count = self._db.execute("SELECT COUNT(*) FROM datasets").fetchone()[0]
            now = datetime.now(UTC)
            stored = replace(
                dataset,
                registration_code=f"DS-{now.year}-{count + 1:06d}",
                registered_at=now.strftime("%Y-%m-%dT%H:%M:%SZ"),
            )
            self._db.execute(
                "INSERT INTO datasets VALUES (?, ?, ?)",
                (stored.name, stored.registration_code, json.dumps(_to_json(stored), ensure_ascii=False)),
            )
            self._ledger.append(
                actor,
                "dataset.registered",
                stored.name,
                {
                    "registration_code": stored.registration_code,
                    "provider": stored.provider,
                    "level": stored.level,
                    "row_count": stored.row_count,
                    "content_hash": stored.content_hash,
                    "unique_columns": list(stored.unique_columns),
                    "tags": {c.name: str(c.tag) for c in stored.columns},
                },
            )
        return stored

    def unregister(self, name: str, actor: str, reason: str) -> None:
        """Remove a dataset's entry (its ledger history stays)."""
        with self._store.transaction(write=True):
            if not self._db.execute("DELETE FROM datasets WHERE name = ?", (name,)).rowcount:
                raise CatalogError(f"no dataset named {name!r} is registered")
            self._ledger.append(actor, "dataset.unregistered", name, {"reason": reason})

    def get(self, name: str) -> Dataset:
        """The registered dataset ``name``; CatalogError if there is none."""
        with self._store.transaction() as db:
            return self._get(db, name)

    def _get(self, db: sqlite3.Connection, name: str) -> Dataset:
        row = db.execute("SELECT body FROM datasets WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise CatalogError(f"no dataset named {name!r} is registered")
        return _from_json(json.loads(row[0]))

    def list(self) -> list[Dataset]:
        """Every registered dataset, by name."""
        with self._store.transaction() as db:
            rows = db.execute("SELECT body FROM datasets ORDER BY name").fetchall()
        return [_from_json(json.loads(r[0])) for r in rows]

    def retag(self, name: str, column: str, actor: str, **changes: Any) -> Dataset:
        """Change a column's tag, bounds, domain or description, recorded in the ledger."""
        with self._store.transaction(write=True) as db:
            dataset = self._get(db, name)
            old = dataset.column(column)
            new = replace(old, **changes)
            columns = tuple(new if c.name == column else c for c in dataset.columns)
            updated = replace(dataset, columns=columns)
            self._db.execute(
                "UPDATE datasets SET body = ? WHERE name = ?",
                (json.dumps(_to_json(updated), ensure_ascii=False), name),
            )
            self._ledger.append(
                actor, "column.retagged", f"{name}.{column}", {"from": old.to_json(), "to": new.to_json()}
            )
        return updated


def _finite(value: float | None) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _to_json(dataset: Dataset) -> dict[str, Any]:
    data = asdict(dataset)
    data["columns"] = [c.to_json() for c in dataset.columns]
    data["core_items"] = list(dataset.core_items)
    data["unique_columns"] = list(dataset.unique_columns)
    return data


def _from_json(data: dict[str, Any]) -> Dataset:
    columns = tuple(Column.from_json(c) for c in data.pop("columns"))
    return Dataset(columns=columns, **{**data, "core_items": tuple(data["core_items"])})


def columns_by_name(columns: Sequence[Column]) -> dict[str, Column]:
    """Index columns by name."""
    return {c.name: c for c in columns}
