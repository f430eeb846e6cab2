"""The enclave working directory and the services that live in it.

::

    WORKDIR/
      enclave/                 mode 0700: nothing here ever leaves
        keys/master.key        the master key (pseudonyms, vault), mode 0600
        base.duckdb            an empty read-only database workers start from
        datasets/NAME.duckdb   one file per dataset, written once at ingestion
        derived/NAME.sealed    a dataset derived for one operator (a PSI match), sealed under
                               that operator's data key: never attached, opened per job
        vault.sqlite           the encrypted identifier vault
      catalog.sqlite           the resource catalog (schemas and tags, never values)
      budget.sqlite            privacy budgets and their charges
      quarantine/              job results awaiting review, sealed under their owner's data key
      data-keys/keys.sqlite    per-operator data keys (see deid.datakeys): keep it off the
                               backups of everything else, so destroying a key shreds them too
      ledger/                  the platform's audit ledger
      backend.json             which engine runs queries (optional; see sandbox.backend)

With the Spark backend, ``enclave/spark/`` holds each dataset exported as Parquet and
``enclave/spark-scratch/`` the Spark driver's working files.

Each dataset has its own file so that ingesting a new one never contends with workers
reading the others (DuckDB lets a file have one writer or many readers, not both).
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar, cast

import duckdb
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from deid.budget import PrivacyBudget
from deid.datakeys import DataKeys
from deid.keys import MasterKey
from deid.pseudonym import Pseudonymizer
from deid.vault import IdentifierVault
from ledger import Ledger
from sandbox.backend import Backend, BackendConfig, DuckDBBackend, load_config
from sandbox.catalog import Catalog, check_name
from sandbox.limits import Limits
from sandbox.pool import WorkerPool
from sandbox.quarantine import Quarantine

T = TypeVar("T")


@dataclass(frozen=True)
class Paths:
    """Where each part of a working directory lives."""

    root: Path

    @property
    def enclave(self) -> Path:
        return self.root / "enclave"

    @property
    def master_key(self) -> Path:
        return self.enclave / "keys" / "master.key"

    @property
    def base(self) -> Path:
        return self.enclave / "base.duckdb"

    @property
    def datasets(self) -> Path:
        return self.enclave / "datasets"

    @property
    def vault(self) -> Path:
        return self.enclave / "vault.sqlite"

    @property
    def catalog(self) -> Path:
        return self.root / "catalog.sqlite"

    @property
    def quarantine(self) -> Path:
        return self.root / "quarantine"

    @property
    def budget(self) -> Path:
        return self.root / "budget.sqlite"

    @property
    def ledger(self) -> Path:
        return self.root / "ledger"

    @property
    def data_keys(self) -> Path:
        return self.root / "data-keys" / "keys.sqlite"

    @property
    def derived(self) -> Path:
        return self.enclave / "derived"

    def dataset(self, name: str) -> Path:
        return self.datasets / f"{check_name('dataset', name)}.duckdb"

    def derived_dataset(self, name: str) -> Path:
        """The sealed file of a dataset derived for one operator (see :mod:`sandbox.derived`)."""
        return self.derived / f"{check_name('dataset', name)}.sealed"


class Enclave:
    """A working directory opened: ledger, catalog, keys, vault, quarantine and a worker pool."""

    def __init__(
        self,
        paths: Paths,
        ledger: Ledger,
        master: MasterKey,
        limits: Limits,
        workers: int,
        backend: BackendConfig | None = None,
    ) -> None:
        self.paths = paths
        self.ledger = ledger
        self.catalog = Catalog(paths.catalog, ledger)
        self.master = master
        self.pseudonymizer = Pseudonymizer(master)
        self.vault = IdentifierVault(paths.vault, master)
        self.data_keys = DataKeys(paths.data_keys, ledger)
        self.quarantine = Quarantine(paths.quarantine, self.data_keys)
        self._limits, self._workers = limits, workers
        self.backend_config = backend or BackendConfig()
        """Which engine runs which jobs (see :mod:`sandbox.backend`)."""
        self._pool: WorkerPool | None = None
        self._spark: Backend | None = None
        self._budget: PrivacyBudget | None = None
        self._starting = {name: threading.Lock() for name in ("_pool", "_spark", "_budget")}

    @classmethod
    def open(
        cls,
        workdir: Path,
        *,
        origin: str | None = None,
        limits: Limits | None = None,
        workers: int = 2,
        backend: BackendConfig | None = None,
    ) -> Enclave:
        """Open (creating if needed) the working directory ``workdir``.

        ``backend`` chooses the query engine; by default the working directory's
        ``backend.json`` does (see :mod:`sandbox.backend`), and without one DuckDB runs everything.
        """
        paths = Paths(Path(workdir))
        paths.root.mkdir(parents=True, exist_ok=True)
        paths.enclave.mkdir(mode=0o700, exist_ok=True)
        paths.datasets.mkdir(mode=0o700, exist_ok=True)
        paths.derived.mkdir(mode=0o700, exist_ok=True)
        if not paths.base.exists():
            duckdb.connect(str(paths.base)).close()
        ledger = Ledger.open(paths.ledger, origin=origin)
        backend = backend or load_config(paths.root)
        master = MasterKey.load_or_create(paths.master_key)
        return cls(paths, ledger, master, limits or Limits(), workers, backend)

    def _started(self, name: str, start: Callable[[], T]) -> T:
        """The service in attribute ``name``, started by ``start`` on first use.

        The job runner's threads share one enclave: each service starts once however many
        threads reach it first, and one slow to start (Spark's driver) holds up no other.
        """
        service = getattr(self, name)
        if service is None:
            with self._starting[name]:
                service = getattr(self, name)
                if service is None:
                    service = start()
                    setattr(self, name, service)
        return cast(T, service)

    @property
    def budget(self) -> PrivacyBudget:
        """The privacy budget store, opened on first use."""
        return self._started("_budget", lambda: PrivacyBudget(self.paths.budget, self.ledger))

    @property
    def pool(self) -> WorkerPool:
        """The worker pool, started on first use."""
        return self._started(
            "_pool", lambda: WorkerPool(self.paths.base, workers=self._workers, limits=self._limits)
        )

    @property
    def duckdb(self) -> Backend:
        """The DuckDB engine, on the worker pool: every enclave has it."""
        return DuckDBBackend(lambda: self.pool)

    @property
    def spark(self) -> Backend:
        """The Spark engine, its driver started on first use; BackendError if it cannot be used."""
        return self._started("_spark", self._start_spark)

    def _start_spark(self) -> Backend:
        from sandbox._spark import SparkBackend  # noqa: PLC0415 - DuckDB deployments never load it

        return SparkBackend(
            self.paths.enclave,
            self.backend_config,
            self._limits,
            lambda name: self.catalog.get(name).content_hash,
        )

    def engine_for(self, tables: Collection[str]) -> Backend:
        """The engine that runs an aggregate query job reading ``tables``, as configured.

        A job reading a dataset derived for one operator runs on DuckDB whatever the
        configuration: such a dataset is handed to a worker in memory only, and Spark would
        write it to its shuffle files.
        """
        if self.backend_config.engine_for(tables) == "duckdb":
            return self.duckdb
        derived = {d.name for d in self.catalog.list() if d.extra.get("derived")}
        return self.duckdb if derived & set(tables) else self.spark

    @property
    def release_key_name(self) -> str:
        """The name verifiers see on this platform's release signatures."""
        return f"{self.ledger.origin}/release"

    def release_key(self) -> Ed25519PrivateKey:
        """The platform's release-signing key, derived from the master key.

        Derived rather than stored so that it lives and dies with the enclave's one secret;
        its public half is published, never the key.
        """
        return Ed25519PrivateKey.from_private_bytes(self.master.derive("release/ed25519"))

    def input_key(self) -> X25519PrivateKey:
        """The key callers seal raw inputs to (see :mod:`deid.seal`), derived from the master key."""
        return X25519PrivateKey.from_private_bytes(self.master.derive("inputs/x25519"))

    def attachments(self) -> tuple[list[tuple[str, Path]], str]:
        """Every registered dataset's file, and a generation tag that changes when the set does.

        Datasets derived for one operator (``extra["derived"]``) are sealed, not DuckDB files:
        workers never attach them; a job that reads one is handed it in memory.
        """
        registered = [d for d in self.catalog.list() if not d.extra.get("derived")]
        datasets = [(d.name, self.paths.dataset(d.name)) for d in registered]
        codes = ",".join(f"{d.name}:{d.registration_code}:{d.content_hash}" for d in registered)
        return datasets, hashlib.sha256(codes.encode()).hexdigest()[:16]

    def close(self) -> None:
        if self._spark is not None:
            self._spark.close()
        if self._pool is not None:
            self._pool.close()
        if self._budget is not None:
            self._budget.close()
        self.vault.close()
        self.data_keys.close()
        self.catalog.close()
        self.ledger.close()

    def __enter__(self) -> Enclave:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
