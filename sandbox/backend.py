"""Which engine runs a deployment's queries: DuckDB (the embedded default) or Apache Spark.

Both run the same policy-checked, DP-rewritten query; only the last step, rendering the
checked tree as SQL, knows the engine (:mod:`sandbox._render`, :mod:`sandbox._spark_sql`).
A :class:`Backend` renders for its engine and runs the SQL in isolated worker processes
under the enclave's limits; quarantine, budget and ledger do not know which one ran.

A deployment chooses in ``WORKDIR/backend.json`` (absent: DuckDB for everything)::

    {"backend": "spark", "spark_master": "local[2]"}
    {"backend": "duckdb", "spark_datasets": ["province_population"]}

With ``"backend": "spark"`` every aggregate query job (plain, DP, its disclosure evidence, the
inputs of Python jobs) runs on Spark; ``spark_datasets`` instead sends only the jobs that read
one of those datasets there. ``spark_master`` is Spark's master URL: ``local[N]`` runs Spark
inside the worker process, a cluster URL (``spark://host:7077``) in production. Verification,
record-level products, model feature queries and every job reading a dataset derived for one
operator (sealed, handed to a worker in memory only) stay on DuckDB, which every enclave keeps.

The Spark backend needs ``pip install veilbox[spark]`` and a Java 17 runtime.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Protocol

import pyarrow as pa
from sqlglot import exp

from sandbox._render import Renderer
from sandbox.catalog import check_name
from sandbox.errors import BackendError, CatalogError
from sandbox.policy import CheckedQuery, ScenarioPolicy
from sandbox.pool import WorkerPool

BACKENDS = ("duckdb", "spark")
"""The engines a deployment can choose."""
CONFIG_FILE = "backend.json"
"""The file in a working directory that chooses its engine."""
SPARK_SETTINGS: Mapping[str, str] = MappingProxyType(
    {
        "spark.sql.ansi.enabled": "true",  # overflow and bad casts fail, as on DuckDB, never wrap
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.catalogImplementation": "in-memory",  # no Hive metastore, nothing persists
        "spark.sql.runSQLOnFiles": "false",  # no SELECT … FROM parquet.`/any/path`
        "spark.sql.parquet.inferTimestampNTZ.enabled": "true",
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.driver.bindAddress": "127.0.0.1",
        "spark.driver.host": "127.0.0.1",
    }
)
"""Settings every Spark worker runs with; ``spark_conf`` may add others, never change these."""


@dataclass(frozen=True)
class BackendConfig:
    """A deployment's choice of engine: the default for every job, and datasets sent to Spark."""

    backend: str = "duckdb"
    spark_master: str = "local[2]"
    spark_datasets: frozenset[str] = field(default_factory=frozenset)
    spark_conf: Mapping[str, str] = field(default_factory=dict)
    """More Spark settings (executor memory, shuffle partitions …); never one of SPARK_SETTINGS."""

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise BackendError(f"backend must be one of {', '.join(BACKENDS)}, not {self.backend!r}")
        if not isinstance(self.spark_master, str) or not self.spark_master.strip():
            raise BackendError("spark_master must be a Spark master URL such as local[2]")
        try:
            names = frozenset(check_name("dataset", name) for name in self.spark_datasets)
        except (CatalogError, TypeError):
            raise BackendError("spark_datasets must list dataset names") from None
        object.__setattr__(self, "spark_datasets", names)
        conf = dict(self.spark_conf)
        if not all(
            isinstance(k, str) and k.startswith("spark.") and isinstance(v, str) for k, v in conf.items()
        ):
            raise BackendError("spark_conf maps Spark setting names (spark.…) to text values")
        if fixed := sorted(set(conf) & set(SPARK_SETTINGS)):
            raise BackendError(f"spark_conf may not change {', '.join(fixed)}: the enclave relies on them")
        object.__setattr__(self, "spark_conf", MappingProxyType(conf))

    def engine_for(self, tables: Collection[str]) -> str:
        """The engine for a job reading ``tables``: Spark if it is the default or any table is sent there."""
        return "spark" if self.backend == "spark" or self.spark_datasets & set(tables) else "duckdb"

    def to_json(self) -> dict[str, Any]:
        """The configuration as ``backend.json`` holds it."""
        return {
            "backend": self.backend,
            "spark_master": self.spark_master,
            "spark_datasets": sorted(self.spark_datasets),
            "spark_conf": dict(self.spark_conf),
        }

    @classmethod
    def from_json(cls, data: object) -> BackendConfig:
        """Parse ``backend.json``'s object; BackendError if it is not one."""
        keys = {"backend", "spark_master", "spark_datasets", "spark_conf"}
        if not isinstance(data, dict) or set(data) - keys:
            raise BackendError(f"{CONFIG_FILE} must be an object with keys among {', '.join(sorted(keys))}")
        datasets, conf = data.get("spark_datasets", []), data.get("spark_conf", {})
        if not isinstance(datasets, list) or not isinstance(conf, dict):
            raise BackendError("spark_datasets must be a list of dataset names, spark_conf an object")
        master = str(data.get("spark_master", "local[2]"))
        return cls(str(data.get("backend", "duckdb")), master, frozenset(datasets), conf)


def load_config(root: Path) -> BackendConfig:
    """The engine configuration of the working directory ``root`` (DuckDB if it has none)."""
    path = Path(root) / CONFIG_FILE
    if not path.exists():
        return BackendConfig()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BackendError(f"{path} cannot be read as JSON: {exc}") from None
    return BackendConfig.from_json(data)


def save_config(root: Path, config: BackendConfig) -> None:
    """Write ``config`` as the engine configuration of the working directory ``root``."""
    Path(root).mkdir(parents=True, exist_ok=True)
    (Path(root) / CONFIG_FILE).write_text(json.dumps(config.to_json(), indent=2) + "\n", encoding="utf-8")


class Backend(Protocol):
    """An engine: renders checked queries for itself and runs SQL in isolated workers."""

    name: str

    def renderer(self, statement: exp.Select, policy: ScenarioPolicy) -> Renderer:
        """The renderer for rewrites of ``statement`` (checked under ``policy``)."""
        ...

    def render(self, checked: CheckedQuery, policy: ScenarioPolicy) -> str:
        """The checked query as this engine runs it; UnsupportedOnBackend if it cannot run it exactly."""
        ...

    def run(
        self,
        sql: str,
        datasets: Sequence[tuple[str, Path]],
        generation: str,
        *,
        timeout_s: float | None = None,
        tables: Mapping[str, pa.Table] | None = None,
    ) -> pa.Table:
        """Run ``sql`` over ``datasets`` (name, enclave file) and ``tables`` handed over in memory.

        JobError subclasses on failure.
        """
        ...

    def close(self) -> None:
        """Stop the engine's workers."""
        ...


class DuckDBBackend:
    """The embedded default: the enclave's DuckDB worker pool, rendering with DuckDB's native hash."""

    name = "duckdb"

    def __init__(self, pool: Callable[[], WorkerPool]) -> None:
        self._pool = pool

    def renderer(self, statement: exp.Select, policy: ScenarioPolicy) -> Renderer:
        return Renderer()

    def render(self, checked: CheckedQuery, policy: ScenarioPolicy) -> str:
        return checked.render()

    def run(
        self,
        sql: str,
        datasets: Sequence[tuple[str, Path]],
        generation: str,
        *,
        timeout_s: float | None = None,
        tables: Mapping[str, pa.Table] | None = None,
    ) -> pa.Table:
        return self._pool().run(sql, datasets, generation, timeout_s=timeout_s, tables=tables)

    def close(self) -> None:
        """The pool belongs to the enclave, which stops it."""
