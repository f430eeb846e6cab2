"""The control-plane database: engine, versioned migrations and transactions.

The embedded default is one SQLite file beside the workdir's other stores
(:func:`control_url`); any SQLAlchemy URL of a server database such as PostgreSQL works
too, because the tables and every statement are SQLAlchemy Core over portable types.

SQLite runs in WAL mode with ``synchronous=FULL`` (a commit survives power loss) and
foreign keys on. Write transactions start with ``BEGIN IMMEDIATE``: two transactions that
read under a shared lock and then both try to write deadlock on the lock upgrade, which no
busy timeout can resolve, whereas taking the write lock up front makes writers queue. The
driver's own implicit BEGIN is switched off so that ours is the only one (SQLAlchemy's
documented pysqlite recipe). Switching a new file to WAL is the one lock SQLite does not
wait for, so that step alone is retried.

Migrations are ``MIGRATIONS``, applied in order, one transaction each, and recorded in
``schema_version``. Each transaction re-reads the version after taking the write lock, so
of several processes opening a fresh database at once exactly one applies each step.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import (
    Column,
    Connection,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    create_engine,
    event,
    func,
    insert,
    select,
)
from sqlalchemy import text as sql
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from gateway.control import billing_schema, evaluation_tables, oversight_schema, renewal_tables, schema
from gateway.errors import StoreError
from ledger import Ledger

BUSY_MILLISECONDS = 30_000
_WAL_RETRY_SECONDS = 0.005

Step = Callable[[Connection], None]

_WRITE = "veilbox_write"
# Any constant shared by every process: the advisory lock that serializes migrations on
# PostgreSQL, where schema_version may not exist yet to be locked itself.
_MIGRATION_LOCK = 0x7662_7863  # "vbxc"

_versions = MetaData()
schema_version = Table(
    "schema_version",
    _versions,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("description", String(schema.NAME_CHARS), nullable=False),
    Column("applied_at", schema.UtcDateTime(), nullable=False),
)


def _create_tables(conn: Connection) -> None:
    # Version 1 is schema.py as first released. A later change to schema.py ships as a new
    # migration that alters the tables, and this step is then pinned to version 1's tables.
    schema.metadata.create_all(conn)


def _create_billing_tables(conn: Connection) -> None:
    # Version 2 is billing_schema.py as first released, pinned the same way.
    billing_schema.metadata.create_all(conn)


MIGRATIONS: tuple[tuple[int, str, Step], ...] = (
    (1, "organisations, users, tokens, authorizations, scenarios and jobs", _create_tables),
    (
        2,
        "products, price caps, revenue limits, charges, meters, statements, revenue shares",
        _create_billing_tables,
    ),
    (
        3,
        "quality feedback, security incidents, operator suspensions and webhooks",
        oversight_schema.create_tables,
    ),
    (4, "renewal applications and expiry warnings", renewal_tables.metadata.create_all),
    (5, "annual evaluations of operators", evaluation_tables.metadata.create_all),
)
"""Every schema version as (version, description, step), in ascending order."""


def control_url(workdir: Path) -> str:
    """The URL of a workdir's embedded control-plane database."""
    return f"sqlite:///{workdir}/control.sqlite"


def _utc_now() -> datetime:
    return datetime.now(UTC)


class ControlPlane:
    """The control-plane database, the ledger its changes are recorded in, and the clock."""

    def __init__(self, engine: Engine, ledger: Ledger, clock: Callable[[], datetime]) -> None:
        self._engine = engine
        self._clock = clock
        self.ledger = ledger
        # SQLite makes a writer that finds the lock taken sleep and retry (1, 2, 5, 10 … ms);
        # writers of one process queue here instead and start the moment the last one ends.
        self._writers = threading.RLock() if engine.dialect.name == "sqlite" else contextlib.nullcontext()

    @classmethod
    def open(cls, url: str, ledger: Ledger, *, clock: Callable[[], datetime] | None = None) -> ControlPlane:
        """Open (creating and migrating if needed) the database at ``url``.

        ``clock`` returns the current time, timezone-aware; tests inject one. Raises
        StoreError ``G-SCHEMA`` if the database is newer than this Veilbox, ``G-STORE`` if
        it cannot be opened.
        """
        try:
            engine = create_engine(url)
        except SQLAlchemyError as exc:
            raise StoreError("G-STORE", f"the control-plane database URL is unusable: {exc}") from exc
        if engine.dialect.name == "sqlite":
            event.listen(engine, "connect", _configure_sqlite)
            event.listen(engine, "begin", _begin_sqlite)
        plane = cls(engine, ledger, clock or _utc_now)
        try:
            plane._migrate()
        except BaseException:
            plane.close()
            raise
        return plane

    def close(self) -> None:
        """Close every pooled connection; committed changes are on disk."""
        self._engine.dispose()

    def now(self) -> datetime:
        """The current time from the clock, in UTC."""
        now = self._clock()
        if now.tzinfo is None:
            raise ValueError("the control plane's clock must return timezone-aware datetimes")
        return now.astimezone(UTC)

    @contextmanager
    def transaction(self, *, write: bool = True) -> Iterator[Connection]:
        """One transaction, committed when the block ends and rolled back if it raises.

        ``write=False`` opens a read snapshot that does not queue behind writers. Database
        errors leave as StoreError ``G-STORE``; errors raised inside the block pass through.
        The service functions open their own transactions: call them outside this block, as
        a second write transaction in the same thread would wait for the first.
        """
        try:
            with self._writers if write else contextlib.nullcontext(), self._engine.connect() as conn:
                conn.execution_options(**{_WRITE: write})
                with conn.begin():
                    yield conn
        except SQLAlchemyError as exc:
            reason = exc.orig if isinstance(exc, DBAPIError) else type(exc).__name__
            raise StoreError(
                "G-STORE", f"the control-plane database {self._engine.url!r} failed: {reason}"
            ) from exc

    def version(self) -> int:
        """The schema version the database holds."""
        with self.transaction(write=False) as conn:
            return _current_version(conn)

    def _migrate(self) -> None:
        known = MIGRATIONS[-1][0]
        while True:
            with self.transaction() as conn:
                if conn.dialect.name == "postgresql":
                    conn.execute(sql("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
                _versions.create_all(conn)
                current = _current_version(conn)
                if current > known:
                    raise StoreError(
                        "G-SCHEMA",
                        f"the control-plane database {self._engine.url!r} has schema version {current}, "
                        f"but this Veilbox knows versions up to {known}: upgrade Veilbox to open it",
                    )
                pending = [m for m in MIGRATIONS if m[0] > current]
                if not pending:
                    return
                version, description, step = pending[0]
                step(conn)
                conn.execute(
                    insert(schema_version).values(
                        version=version, description=description, applied_at=self.now()
                    )
                )


def _current_version(conn: Connection) -> int:
    return conn.scalar(select(func.max(schema_version.c.version))) or 0


def _configure_sqlite(dbapi_connection: sqlite3.Connection, _record: object) -> None:
    # isolation_level=None stops the driver issuing BEGIN itself; _begin_sqlite issues ours.
    dbapi_connection.isolation_level = None
    dbapi_connection.execute(f"PRAGMA busy_timeout = {BUSY_MILLISECONDS}").close()
    _enable_wal(dbapi_connection)
    for pragma in ("synchronous = FULL", "foreign_keys = ON"):
        dbapi_connection.execute(f"PRAGMA {pragma}").close()


def _enable_wal(dbapi_connection: sqlite3.Connection) -> None:
    # Switching a new file to WAL needs an exclusive lock that SQLite tries once, without
    # the busy timeout: processes creating the file together retry until one has switched it.
    deadline = time.monotonic() + BUSY_MILLISECONDS / 1000
    while True:
        try:
            dbapi_connection.execute("PRAGMA journal_mode = WAL").close()
            return
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorname != "SQLITE_BUSY" or time.monotonic() > deadline:
                raise
            time.sleep(_WAL_RETRY_SECONDS)


def _begin_sqlite(conn: Connection) -> None:
    write = conn.get_execution_options().get(_WRITE, True)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")
