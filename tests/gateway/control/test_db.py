"""The control-plane database: versioned migrations, SQLite settings, transactions, errors."""

from __future__ import annotations

import multiprocessing
import time
from multiprocessing.synchronize import Barrier
from pathlib import Path

import pytest
from sqlalchemy import Connection, create_engine, insert, inspect, select, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.schema import CreateTable

from gateway.control import MIGRATIONS, ControlPlane, billing_schema, control_url, db, schema
from gateway.control.db import Step, schema_version
from gateway.errors import StoreError
from ledger import Ledger
from tests.gateway.control.conftest import START, Clock

_FORK = multiprocessing.get_context("fork")
LATEST = MIGRATIONS[-1][0]


def _versions(url: str) -> list[int]:
    engine = create_engine(url)
    with engine.connect() as conn:
        found = list(conn.scalars(select(schema_version.c.version).order_by(schema_version.c.version)))
    engine.dispose()
    return found


def test_fresh_database_gets_every_migration_once(cp: ControlPlane, tmp_path: Path) -> None:
    assert [m[0] for m in MIGRATIONS] == sorted({m[0] for m in MIGRATIONS})
    assert cp.version() == LATEST
    assert _versions(control_url(tmp_path)) == [m[0] for m in MIGRATIONS]
    with cp.transaction(write=False) as conn:
        for table in schema.metadata.sorted_tables:
            assert conn.scalar(select(text("count(*)")).select_from(table)) == 0


def test_reopening_applies_nothing_and_keeps_rows(tmp_path: Path, log: Ledger) -> None:
    url = control_url(tmp_path)
    first = ControlPlane.open(url, log)
    with first.transaction() as conn:
        conn.execute(
            insert(schema.organisations).values(
                id="org_x", name="x", kind="audit", operator_id=None, id_reference="r", created_at=START
            )
        )
    first.close()
    again = ControlPlane.open(url, log)
    with again.transaction(write=False) as conn:
        assert conn.scalar(select(schema.organisations.c.created_at)) == START
    again.close()
    assert _versions(url) == [m[0] for m in MIGRATIONS]


def test_a_newer_database_is_refused(tmp_path: Path, log: Ledger) -> None:
    url = control_url(tmp_path)
    ControlPlane.open(url, log).close()
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            insert(schema_version).values(version=LATEST + 1, description="future", applied_at=START)
        )
    engine.dispose()
    with pytest.raises(StoreError, match=f"schema version {LATEST + 1}.*upgrade Veilbox") as caught:
        ControlPlane.open(url, log)
    assert caught.value.rule == "G-SCHEMA"


def _slowly(step: Step) -> Step:
    def slow(conn: Connection) -> None:
        step(conn)
        time.sleep(0.2)

    return slow


def _open_together(url: str, ledger: str, start: Barrier, out: multiprocessing.Queue[str]) -> None:
    # A slow step keeps the race window open: without the lock taken at BEGIN, every
    # process would read version 0 and try to migrate.
    db.MIGRATIONS = tuple((version, about, _slowly(step)) for version, about, step in MIGRATIONS)
    with Ledger.open(ledger) as log:
        start.wait(timeout=30)
        try:
            ControlPlane.open(url, log).close()
            out.put("ok")
        except Exception as exc:
            out.put(f"{type(exc).__name__}: {exc}")


def test_processes_opening_a_fresh_database_at_once_migrate_it_once(tmp_path: Path, log: Ledger) -> None:
    url, processes = control_url(tmp_path), 4
    start = _FORK.Barrier(processes)
    out: multiprocessing.Queue[str] = _FORK.Queue()
    children = [
        _FORK.Process(target=_open_together, args=(url, str(log.path), start, out)) for _ in range(processes)
    ]
    for child in children:
        child.start()
    results = [out.get(timeout=60) for _ in children]
    for child in children:
        child.join(timeout=60)
        assert child.exitcode == 0
    assert results == ["ok"] * processes
    assert _versions(url) == [m[0] for m in MIGRATIONS]


def test_version_2_adds_its_tables_to_a_version_1_database(
    tmp_path: Path, log: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = control_url(tmp_path)
    monkeypatch.setattr(db, "MIGRATIONS", MIGRATIONS[:1])
    ControlPlane.open(url, log).close()
    engine = create_engine(url)
    assert "products" not in inspect(engine).get_table_names()
    monkeypatch.undo()
    reopened = ControlPlane.open(url, log)
    assert reopened.version() >= 2 and _versions(url)[:2] == [1, 2]
    assert {t.name for t in billing_schema.metadata.sorted_tables} <= set(inspect(engine).get_table_names())
    reopened.close()
    engine.dispose()


def test_the_tables_compile_for_postgresql() -> None:
    for table in [*schema.metadata.sorted_tables, *billing_schema.metadata.sorted_tables, schema_version]:
        assert "CREATE TABLE" in str(CreateTable(table).compile(dialect=postgresql.dialect()))


def test_sqlite_runs_durable_wal_with_foreign_keys(cp: ControlPlane) -> None:
    with cp.transaction(write=False) as conn:
        settings = {
            pragma: conn.exec_driver_sql(f"PRAGMA {pragma}").scalar()
            for pragma in ("journal_mode", "synchronous", "foreign_keys", "busy_timeout")
        }
    assert settings == {"journal_mode": "wal", "synchronous": 2, "foreign_keys": 1, "busy_timeout": 30_000}


def test_foreign_keys_are_enforced(cp: ControlPlane) -> None:
    with pytest.raises(StoreError, match="FOREIGN KEY") as caught, cp.transaction() as conn:
        conn.execute(
            insert(schema.users).values(
                id="usr_x", organisation_id="org_missing", name="n", role="auditor", id_reference="r",
                active=True, created_at=START,
            )
        )  # fmt: skip
    assert caught.value.rule == "G-STORE" and caught.value.status == 503


def test_a_write_transaction_holds_the_write_lock_from_its_start(tmp_path: Path, log: Ledger) -> None:
    url = control_url(tmp_path)
    first, second = ControlPlane.open(url, log), ControlPlane.open(url, log)
    probe = create_engine(url, connect_args={"timeout": 0})
    with first.transaction():  # has written nothing yet
        with probe.connect() as conn, pytest.raises(Exception, match="locked"):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        with second.transaction(write=False) as conn:  # readers still read
            assert conn.scalar(select(text("count(*)")).select_from(schema.users)) == 0
    probe.dispose()
    first.close()
    second.close()


def test_a_failed_block_rolls_back(cp: ControlPlane) -> None:
    with pytest.raises(RuntimeError), cp.transaction() as conn:
        conn.execute(
            insert(schema.organisations).values(
                id="org_y", name="y", kind="audit", operator_id=None, id_reference="r", created_at=START
            )
        )
        raise RuntimeError("stop")
    with cp.transaction(write=False) as conn:
        assert conn.scalar(select(schema.organisations.c.id)) is None


def test_an_unopenable_database_is_a_store_error(tmp_path: Path, log: Ledger) -> None:
    with pytest.raises(StoreError, match="unable to open") as caught:
        ControlPlane.open(control_url(tmp_path / "missing" / "dir"), log)
    assert caught.value.rule == "G-STORE"
    with pytest.raises(StoreError, match="URL is unusable"):
        ControlPlane.open("not a url", log)


def test_the_clock_must_be_timezone_aware(tmp_path: Path, log: Ledger) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        ControlPlane.open(control_url(tmp_path), log, clock=Clock(START.replace(tzinfo=None)))
