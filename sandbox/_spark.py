"""The Spark backend: checked queries rendered for Spark, run by a Spark driver in a worker process.

The driver runs in :mod:`sandbox._spark_worker`, a process of its own started and watched
like the DuckDB workers (:mod:`sandbox.pool`): the same framed protocol, the same wall-time
limit and kill, the same replacement of a worker that dies. One driver serves the enclave;
Spark spreads a job over its own threads (``local[N]``) or a cluster's executors.

Spark reads the datasets as Parquet: each dataset's DuckDB file is exported once into
``enclave/spark/``, named by the content hash the catalog registered, so a re-registered
dataset gets a fresh export and an unchanged one is never exported twice. With a cluster
master that directory must be on storage the executors share.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import duckdb
import pyarrow as pa
from sqlglot import exp

from sandbox._render import Renderer
from sandbox._spark_sql import SparkRenderer
from sandbox.backend import BackendConfig
from sandbox.errors import BackendError, JobError
from sandbox.limits import Limits
from sandbox.policy import CheckedQuery, ScenarioPolicy
from sandbox.pool import WorkerPool, _Worker, _worker_env

STARTUP_S = 180.0
"""How long a Spark driver may take to start (a cold JVM takes 10-20 s on a small machine)."""


class _SparkWorker(_Worker):
    """A worker process running a Spark driver; ready once it says Spark is up."""

    def __init__(self, scratch_root: Path, config: BackendConfig, limits: Limits) -> None:
        scratch_root.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.scratch = Path(tempfile.mkdtemp(prefix="driver-", dir=scratch_root))
        env = _worker_env()
        env |= {k: os.environ[k] for k in ("JAVA_HOME", "SPARK_HOME") if k in os.environ}
        env["SPARK_LOCAL_IP"] = "127.0.0.1"  # a local driver listens on loopback only
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "sandbox._spark_worker",
                config.spark_master,
                str(limits.memory_mb),
                str(self.scratch),
                json.dumps(dict(config.spark_conf)),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            env=env,
        )
        try:
            self._read(time.monotonic() + STARTUP_S)
        except (TimeoutError, EOFError, OSError):
            self.kill()
            raise JobError("the Spark engine did not start; check that Java 17 is installed") from None

    def kill(self) -> None:
        super().kill()
        shutil.rmtree(self.scratch, ignore_errors=True)


class _SparkPool(WorkerPool):
    """A worker pool of Spark drivers (one is the norm: Spark parallelises inside it)."""

    def __init__(self, scratch: Path, config: BackendConfig, limits: Limits, workers: int = 1) -> None:
        self._scratch, self._config = scratch, config
        super().__init__(scratch, workers=workers, limits=limits)

    def _add(self) -> None:
        worker = _SparkWorker(self._scratch, self._config, self.limits)
        with self._lock:
            self._all.add(worker)
        self._idle.put(worker)


class SparkBackend:
    """Renders checked queries for Spark and runs them on a Spark driver in a worker process."""

    name = "spark"

    def __init__(
        self, root: Path, config: BackendConfig, limits: Limits, content_hash: Callable[[str], str]
    ) -> None:
        """``root`` is the enclave directory; ``content_hash`` gives a dataset's registered hash."""
        self.check_runtime()
        self._exports, self._scratch = root / "spark", root / "spark-scratch"
        self._config, self._limits, self._content_hash = config, limits, content_hash
        self._pool: _SparkPool | None = None
        self._lock = threading.Lock()

    @staticmethod
    def check_runtime() -> None:
        """BackendError unless pyspark and a Java runtime are installed here."""
        if importlib.util.find_spec("pyspark") is None:
            raise BackendError("the Spark backend needs pyspark: pip install 'veilbox[spark]'")
        if shutil.which("java", path=os.environ.get("PATH")) is None and "JAVA_HOME" not in os.environ:
            raise BackendError("the Spark backend needs a Java 17 runtime (java on PATH or JAVA_HOME)")

    def renderer(self, statement: exp.Select, policy: ScenarioPolicy) -> Renderer:
        return SparkRenderer.for_statement(statement, policy)

    def render(self, checked: CheckedQuery, policy: ScenarioPolicy) -> str:
        renderer = SparkRenderer.for_statement(checked.statement, policy)
        assert isinstance(renderer, SparkRenderer)
        return renderer.query(checked)

    def run(
        self,
        sql: str,
        datasets: Sequence[tuple[str, Path]],
        generation: str,
        *,
        timeout_s: float | None = None,
        tables: Mapping[str, pa.Table] | None = None,
    ) -> pa.Table:
        if tables:  # the enclave sends such jobs to DuckDB; Spark would spill them to disk
            raise JobError("datasets derived for one operator are read on DuckDB only, never on Spark")
        exported = [(name, self.export(name, path)) for name, path in datasets]
        return self.pool().run(sql, exported, generation, timeout_s=timeout_s)

    def pool(self) -> _SparkPool:
        """The driver's pool, started (and waited for) on first use."""
        with self._lock:
            if self._pool is None:
                self._pool = _SparkPool(self._scratch, self._config, self._limits)
            return self._pool

    def export(self, name: str, path: Path) -> Path:
        """The Parquet copy of dataset ``name`` (its enclave file ``path``), made if missing."""
        target = self._exports / f"{name}-{self._content_hash(name)[:24]}.parquet"
        with self._lock:
            if target.exists():
                return target
            self._exports.mkdir(mode=0o700, exist_ok=True)
            staging = target.with_name(f".{target.name}.{os.getpid()}.staging")
            if "'" in str(staging):
                raise JobError("the enclave's path may not contain quotes")
            try:
                with duckdb.connect(str(path), read_only=True) as con:
                    # ``name`` passed check_name: lower-case letters, digits and underscores only.
                    con.execute(f"COPY \"{name}\" TO '{staging}' (FORMAT PARQUET)")
                os.replace(staging, target)
            except (duckdb.Error, OSError) as exc:
                raise JobError(
                    f"dataset {name} could not be prepared for Spark ({type(exc).__name__})"
                ) from None
            finally:
                staging.unlink(missing_ok=True)
            for stale in self._exports.glob(f"{name}-*.parquet"):
                if stale != target:
                    stale.unlink(missing_ok=True)
            return target

    def close(self) -> None:
        with self._lock:
            if self._pool is not None:
                self._pool.close()
                self._pool = None
