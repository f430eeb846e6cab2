"""One SQLite file as a durable store: WAL, full sync, a versioned schema, mapped errors.

The enclave's small stores (privacy budgets, consents, the identifier vault, the catalog)
all keep state this way. A store has one connection; its transactions are serialized by
a lock, and across processes by SQLite's own locking (a write transaction takes the write
lock before it reads, so what it read still holds when it commits). Every SQLite error
leaves as the owner's error type with a message naming the file.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from ledger.errors import VeilboxError

BUSY_SECONDS = 60.0


class SqliteStore:
    """A SQLite file opened for durable, transactional use."""

    def __init__(
        self, path: Path, *, what: str, error: type[VeilboxError], schema: Sequence[str], version: int = 1
    ) -> None:
        self.path, self._what, self._error = path, what, error
        self._lock = threading.Lock()
        try:
            self.db = sqlite3.connect(
                path, timeout=BUSY_SECONDS, isolation_level=None, check_same_thread=False
            )
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
        except sqlite3.Error as exc:
            raise error(f"the {what} {path} cannot be opened: {exc}") from None
        try:
            self._migrate(schema, version)
        except BaseException:
            self.db.close()
            raise

    @contextmanager
    def transaction(self, *, write: bool = False) -> Iterator[sqlite3.Connection]:
        """One transaction (one snapshot for reads); rolled back if anything inside raises."""
        with self._lock:
            try:
                self.db.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                try:
                    yield self.db
                    self.db.execute("COMMIT")
                except BaseException:
                    if self.db.in_transaction:
                        self.db.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                raise self._error(f"the {self._what} {self.path} failed: {exc}") from None

    def close(self) -> None:
        """Close the file; every committed change is on disk."""
        with self._lock:
            self.db.close()

    def _migrate(self, schema: Sequence[str], version: int) -> None:
        with self.transaction(write=True) as db:
            found = db.execute("PRAGMA user_version").fetchone()[0]
            if found > version:
                raise self._error(
                    f"the {self._what} has schema version {found}; this Veilbox reads up to {version}"
                )
            if found < version:
                for statement in schema:
                    db.execute(statement)
                db.execute(f"PRAGMA user_version = {int(version)}")
