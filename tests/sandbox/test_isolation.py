"""Worker isolation: jobs that try to read or write files, reach the network, or overrun
their memory or time fail cleanly, the enclave files stay read-only, and the pool survives."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from sandbox.enclave import Enclave
from sandbox.errors import JobError, JobResourceError, JobTimeout
from sandbox.limits import Limits
from sandbox.pool import WorkerPool


@pytest.fixture(scope="module")
def enclave_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[tuple[str, Path]]]:
    root = tmp_path_factory.mktemp("enclave")
    duckdb.connect(str(root / "base.duckdb")).close()
    con = duckdb.connect(str(root / "residents.duckdb"))
    con.execute("CREATE TABLE residents AS SELECT range AS id, range % 8 AS district FROM range(20000)")
    con.close()
    (root / "secret.csv").write_text("raw,identifier\n110105194912310021,x\n")
    return root / "base.duckdb", [("residents", root / "residents.duckdb")]


@pytest.fixture(scope="module")
def pool(enclave_files: tuple[Path, list[tuple[str, Path]]]) -> Iterator[WorkerPool]:
    base, _ = enclave_files
    with WorkerPool(base, workers=2, limits=Limits(timeout_s=3, cpu_s=20, memory_mb=128)) as started:
        yield started


def _run(pool: WorkerPool, files: tuple[Path, list[tuple[str, Path]]], sql: str) -> list[dict[str, object]]:
    return list(pool.run(sql, files[1], "g1").to_pylist())


def test_a_query_runs_in_a_worker(
    pool: WorkerPool, enclave_files: tuple[Path, list[tuple[str, Path]]]
) -> None:
    rows = _run(pool, enclave_files, "SELECT district, COUNT(*) AS n FROM residents GROUP BY 1 ORDER BY 1")
    assert rows[0] == {"district": 0, "n": 2500}


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM read_csv('{secret}')",
        "SELECT * FROM '{secret}'",
        "SELECT * FROM read_text('/etc/passwd')",
        "COPY (SELECT 1) TO '{out}'",
        "ATTACH '{out}.duckdb' AS x",
        "EXPORT DATABASE '{outdir}'",
        "INSTALL httpfs",
        "LOAD httpfs",
        "SELECT * FROM read_csv('http://127.0.0.1:9/x.csv')",
        "SET enable_external_access = true",
        "SET lock_configuration = false",
        "CREATE TABLE residents_copy AS SELECT * FROM residents",
        "INSERT INTO residents VALUES (1, 1)",
        "DELETE FROM residents",
        "SELECT getenv('HOME')",
    ],
)
def test_escapes_fail_cleanly(
    pool: WorkerPool, enclave_files: tuple[Path, list[tuple[str, Path]]], tmp_path: Path, sql: str
) -> None:
    secret = enclave_files[0].parent / "secret.csv"
    statement = sql.format(secret=secret, out=tmp_path / "out.csv", outdir=tmp_path / "export")
    with pytest.raises(JobError) as refused:
        _run(pool, enclave_files, statement)
    assert "110105194912310021" not in str(refused.value)
    assert not list(tmp_path.iterdir()), "nothing may be written"
    assert _run(pool, enclave_files, "SELECT COUNT(*) AS n FROM residents") == [{"n": 20000}]


def test_memory_overrun_fails_and_the_pool_survives(
    pool: WorkerPool, enclave_files: tuple[Path, list[tuple[str, Path]]]
) -> None:
    with pytest.raises(JobResourceError, match="memory"):
        _run(pool, enclave_files, "SELECT list(range) FROM range(100000000)")
    assert _run(pool, enclave_files, "SELECT COUNT(*) AS n FROM residents") == [{"n": 20000}]


def test_time_overrun_fails_and_the_pool_survives(
    pool: WorkerPool, enclave_files: tuple[Path, list[tuple[str, Path]]]
) -> None:
    with pytest.raises(JobTimeout):
        _run(pool, enclave_files, "SELECT SUM(a.range * b.range) FROM range(200000) a, range(200000) b")
    assert _run(pool, enclave_files, "SELECT COUNT(*) AS n FROM residents") == [{"n": 20000}]


def test_engine_errors_do_not_echo_data(
    pool: WorkerPool, enclave_files: tuple[Path, list[tuple[str, Path]]]
) -> None:
    with pytest.raises(JobError) as failed:
        _run(pool, enclave_files, "SELECT CAST('psn_0123456789abcdef' AS INTEGER)")
    assert "psn_0123456789abcdef" not in str(failed.value)
    assert "Conversion" in str(failed.value)


def test_temporary_objects_do_not_outlive_their_job(
    pool: WorkerPool, enclave_files: tuple[Path, list[tuple[str, Path]]]
) -> None:
    for _ in range(4):  # land on every worker
        _run(pool, enclave_files, "CREATE TEMP TABLE stash AS SELECT 42 AS leaked")
    for _ in range(4):
        with pytest.raises(JobError, match="CatalogException"):
            _run(pool, enclave_files, "SELECT * FROM stash")


def test_enclave_files_are_opened_read_only(
    pool: WorkerPool, enclave_files: tuple[Path, list[tuple[str, Path]]]
) -> None:
    _, datasets = enclave_files
    before = datasets[0][1].read_bytes()
    with pytest.raises(JobError, match="read-only"):
        _run(pool, enclave_files, "UPDATE residents SET district = 0")
    assert datasets[0][1].read_bytes() == before


def test_a_crashed_worker_is_replaced(enclave_files: tuple[Path, list[tuple[str, Path]]]) -> None:
    base, _ = enclave_files
    with WorkerPool(base, workers=1, limits=Limits(timeout_s=3, memory_mb=128)) as single:
        worker = next(iter(single._all))
        worker.process.kill()
        with pytest.raises(JobError):
            _run(single, enclave_files, "SELECT 1 AS one")
        assert _run(single, enclave_files, "SELECT 1 AS one") == [{"one": 1}]


MATCHED = pa.table({"id": pa.array([1, 5, 9], pa.int64())})
"""An in-memory table handed to one job, as a dataset derived for one operator is."""


def test_an_in_memory_table_joins_for_its_job_and_no_other(
    pool: WorkerPool, enclave_files: tuple[Path, list[tuple[str, Path]]]
) -> None:
    joined = (
        "SELECT r.district, COUNT(*) AS n FROM residents r JOIN matched m ON r.id = m.id "
        "GROUP BY 1 ORDER BY 1"
    )
    for _ in range(4):  # land on every worker
        rows = pool.run(joined, enclave_files[1], "g1", tables={"matched": MATCHED}).to_pylist()
        assert rows == [{"district": 1, "n": 2}, {"district": 5, "n": 1}]
    for _ in range(4):  # the same warm engines, the next jobs
        with pytest.raises(JobError, match="CatalogException"):
            _run(pool, enclave_files, "SELECT * FROM matched")


def test_an_in_memory_table_leaves_the_lockdown_as_strict(
    pool: WorkerPool, enclave_files: tuple[Path, list[tuple[str, Path]]]
) -> None:
    settings = (
        "SELECT current_setting('enable_external_access') AS external, "
        "current_setting('lock_configuration') AS locked, current_setting('temp_directory') AS spill, "
        "(SELECT COUNT(*) FROM matched) AS n"
    )
    assert pool.run(settings, enclave_files[1], "g1", tables={"matched": MATCHED}).to_pylist() == [
        {"external": False, "locked": True, "spill": "", "n": 3}
    ]


@pytest.mark.parametrize(
    "sql",
    [
        "COPY matched TO '{out}'",
        "COPY (SELECT * FROM matched) TO '{out}' (FORMAT parquet)",
        "EXPORT DATABASE '{outdir}'",
        "ATTACH '{out}.duckdb' AS x",
        "CREATE TABLE kept AS SELECT * FROM matched",
        "SET enable_external_access = true",
        "SET temp_directory = '{outdir}'",
    ],
)
def test_an_in_memory_table_cannot_be_written_out(
    pool: WorkerPool, enclave_files: tuple[Path, list[tuple[str, Path]]], tmp_path: Path, sql: str
) -> None:
    statement = sql.format(out=tmp_path / "out.csv", outdir=tmp_path / "export")
    with pytest.raises(JobError):
        pool.run(statement, enclave_files[1], "g1", tables={"matched": MATCHED})
    assert not list(tmp_path.iterdir()), "nothing may be written"


def test_an_in_memory_table_needs_a_plain_name(
    pool: WorkerPool, enclave_files: tuple[Path, list[tuple[str, Path]]]
) -> None:
    for name in ("Matched", "m; DROP", "", "ds_x.main.t"):
        with pytest.raises(JobError, match="unusable name"):
            pool.run("SELECT 1 AS one", enclave_files[1], "g1", tables={name: MATCHED})
    assert _run(pool, enclave_files, "SELECT 1 AS one") == [{"one": 1}]


def test_threads_sharing_a_fresh_enclave_start_one_pool_and_one_budget(tmp_path: Path) -> None:
    # The job runner's threads share one enclave; a pool started twice would leave a worker
    # process no one stops, and two budget stores would each hold a connection.
    enclave = Enclave.open(tmp_path / "work", workers=1)
    barrier = threading.Barrier(8)

    def first_use(_: int) -> tuple[int, int]:
        barrier.wait()
        return id(enclave.pool), id(enclave.budget)

    try:
        with ThreadPoolExecutor(max_workers=8) as threads:
            seen = set(threads.map(first_use, range(8)))
        assert seen == {(id(enclave.pool), id(enclave.budget))}
        assert enclave.pool.workers == 1
    finally:
        enclave.close()
