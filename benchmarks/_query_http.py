"""Veilbox through its HTTP API: ``veilbox serve`` on 127.0.0.1, populated and queried over HTTP.

The server is the shipped command in a child process (uvicorn, the API and its job runner
process, which opens the enclave with its default two workers), started once per size over
the city's workdir. The authority is bootstrapped as ``veilbox init`` does; an operator, its
developer and an authorization are created through the API. A job is timed from the
``POST /v1/jobs?wait=…`` (which holds the answer while the job is queued or running and
answers as soon as the runner moves it) until it reports ``pending_review``: its result is in
quarantine and the review gate has checked it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from time import perf_counter
from typing import Any

import httpx2

from benchmarks._query_data import COLUMNS, DELTA, EPSILON, MIN_CELL, UNIT, WORKERS
from benchmarks._query_engines import guarantee_noise
from benchmarks._query_set import Cells, EngineFailed, Noise, Prepared, cells_of
from benchmarks._query_workers import peak_mib, reset_peaks, worker_pids
from benchmarks._report import check, progress
from deid.datakeys import DataKeys
from gateway.control import ControlPlane, bootstrap, control_url
from ledger import Ledger
from sandbox.enclave import Paths
from sandbox.limits import Limits
from sandbox.quarantine import Quarantine

_START_TIMEOUT_S = 180.0
_JOB_TIMEOUT_S = 600.0
_STOP_TIMEOUT_S = 60.0
_SCENARIO_EPSILON = 1000.0  # the most the API accepts; a scenario runs a handful of jobs
_WAIT_S = 30
_ENDED = ("refused", "failed", "released", "rejected", "returned", "closed")


@dataclass
class Throughput:
    """Jobs run by concurrent clients: each job's latency and the wall time of the whole run."""

    clients: int
    latencies: list[float] = field(default_factory=list)
    wall_s: float = 0.0


class Platform:
    """A served platform over ``workdir`` with an operator, its developer and an authorization."""

    def __init__(self, workdir: Path, log: Path, limits: Limits) -> None:
        self.workdir = workdir
        authority = _bootstrap(workdir)
        port = _free_port()
        self.url = f"http://127.0.0.1:{port}"
        self._log = log.open("wb")
        command = [sys.executable, "-c", "from gateway.cli import main; main()", "serve"]
        self.process = subprocess.Popen(
            [
                *command,
                *("--workdir", str(workdir), "--host", "127.0.0.1", "--port", str(port)),
                *("--workers", str(WORKERS), "--worker-memory-mb", str(limits.memory_mb)),
                *("--job-timeout", str(limits.timeout_s)),
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        # The answers are read as the enclave reads them: unsealed with the operator's data key.
        self._ledger = Ledger.open(Paths(workdir).ledger)
        self._keys = DataKeys(Paths(workdir).data_keys, self._ledger)
        self._quarantine = Quarantine(Paths(workdir).quarantine, self._keys)
        self.peaks: dict[str, list[float]] = {}
        try:
            self._wait_until_up(log)
            self._authority = authority
            with self.client(authority) as admin:
                self._populate(admin)
        except BaseException:
            self.close()
            raise

    def client(self, token: str | None = None) -> httpx2.Client:
        """An HTTP client of the platform, as the developer unless another token is given."""
        headers = {"Authorization": f"Bearer {token or self._developer}"}
        return httpx2.Client(base_url=self.url, headers=headers, timeout=_JOB_TIMEOUT_S)

    def scenario(self) -> str:
        """A newly approved scenario over the city for DP queries; returns its id.

        Every round of jobs gets its own scenario, so no round's budget or answer cache
        depends on another's.
        """
        with self.client(self._operator) as operator:
            applied = _post(
                operator,
                "/v1/scenarios",
                {
                    "authorization_id": self._authorization,
                    "name": "query path benchmark",
                    "purpose": "population and employment statistics for public service planning",
                    "datasets": {name: list(columns) for name, columns in COLUMNS.items()},
                    "output_forms": ["aggregate"],
                    "privacy_unit": ".".join(UNIT),
                    "requested_epsilon": _SCENARIO_EPSILON,
                },
            )
        terms = {
            "epsilon": _SCENARIO_EPSILON,
            "query_epsilon": EPSILON,
            "delta": DELTA,
            "max_rows": 1,
            "max_groups": 1,
            "allow_dp": True,
            "min_cell": MIN_CELL,
        }
        with self.client(self._authority) as admin:
            approved = _post(
                admin, f"/v1/scenarios/{applied['id']}/approve", {"terms": terms, "reason": "fits"}, 200
            )
        return str(approved["id"])

    def run(self, http: httpx2.Client, scenario: str, prepared: Prepared, tag: str) -> tuple[float, str]:
        """Seconds from POST /v1/jobs until the job is pending review, the submission held until
        the runner has moved the job on (long polling)."""
        body = {"scenario_id": scenario, "sql": prepared.query.text(tag), "dp": True}
        start = perf_counter()
        job = _post(http, f"/v1/jobs?wait={_WAIT_S}", body)
        while job["status"] not in ("pending_review", *_ENDED):
            job = _get(http, f"/v1/jobs/{job['id']}?wait={_WAIT_S}")
        elapsed = perf_counter() - start
        if job["status"] == "failed":  # a worker limit (time, memory) stopped it
            raise EngineFailed(str(job.get("reason")))
        check(
            job["status"] == "pending_review",
            f"HTTP {prepared.query.name}: {job['status']} {job.get('rule')} {job.get('reason')}",
        )
        return elapsed, str(job["id"])

    def timed(self, http: httpx2.Client, scenario: str, prepared: Prepared, tag: str) -> tuple[float, str]:
        """One job, with its worker's peak memory recorded."""
        workers = worker_pids(self.process.pid)
        reset_peaks(workers)
        elapsed, job_id = self.run(http, scenario, prepared, tag)
        peak = peak_mib(workers)
        if peak is not None:
            self.peaks.setdefault(prepared.query.name, []).append(peak)
        return elapsed, job_id

    def answer(self, job_id: str, prepared: Prepared, tag: str) -> tuple[Cells, Noise]:
        """The quarantined answer of ``job_id`` and the noise its guarantee declares."""
        table, metadata = self._quarantine.load(job_id)
        return cells_of(table.to_pylist(), prepared.kinds, tag), guarantee_noise(metadata, prepared)

    def throughput(
        self, clients: int, jobs: int, queries: Sequence[Prepared]
    ) -> tuple[Throughput, list[tuple[str, Prepared, str]]]:
        """``jobs`` jobs shared by ``clients`` threads that start together, each job in its own scenario.

        Client ``n`` runs the set's queries in turn from the ``n``-th, so every level runs the
        same mix. Returns the timings and (job id, query, tag) of every job, for checking.
        """
        each = jobs // clients
        scenarios = [[self.scenario() for _ in range(each)] for _ in range(clients)]
        result = Throughput(clients)
        done: list[tuple[str, Prepared, str]] = []
        errors: list[BaseException] = []
        lock = threading.Lock()
        start_line = threading.Barrier(clients + 1)

        def client(number: int) -> None:
            with self.client() as http:
                start_line.wait()
                try:
                    for i, scenario in enumerate(scenarios[number]):
                        prepared = queries[(number + i) % len(queries)]
                        tag = f"_c{clients}x{number}j{i}"
                        elapsed, job_id = self.run(http, scenario, prepared, tag)
                        with lock:
                            result.latencies.append(elapsed)
                            done.append((job_id, prepared, tag))
                except BaseException as exc:  # raised again below, where it fails the run
                    errors.append(exc)

        threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
        for thread in threads:
            thread.start()
        start_line.wait()
        start = perf_counter()
        for thread in threads:
            thread.join()
        result.wall_s = perf_counter() - start
        if errors:
            raise errors[0]
        return result, done

    def close(self) -> None:
        """Stop the server as an operator would (SIGINT); its runner stops its workers."""
        workers = worker_pids(self.process.pid)
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(_STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                for pid in [*workers, self.process.pid]:
                    _kill(pid)
                self.process.wait()
        self._log.close()
        self._keys.close()
        self._ledger.close()

    def _wait_until_up(self, log: Path) -> None:
        """Wait until the API answers and its runner has published the enclave's keys."""
        deadline = time.monotonic() + _START_TIMEOUT_S
        with httpx2.Client(base_url=self.url, timeout=5.0) as http:
            while time.monotonic() < deadline:
                check(self.process.poll() is None, f"the server stopped; see {log}")
                try:
                    if http.get("/v1/keys").status_code == 200:
                        return
                except httpx2.TransportError:
                    pass
                time.sleep(0.1)
        raise AssertionError(f"the server did not start in {_START_TIMEOUT_S:.0f} s; see {log}")

    def _populate(self, admin: httpx2.Client) -> None:
        operator = _post(
            admin,
            "/v1/organisations",
            {"name": "城市数据运营有限公司", "kind": "operator", "id_reference": "REF-bench-op"},
        )
        tokens = {}
        for role in ("operator", "developer"):
            user = _post(
                admin,
                "/v1/users",
                {
                    "organisation_id": operator["id"],
                    "name": f"基准{role}",
                    "role": role,
                    "id_reference": f"RN-bench-{role}",
                },
            )
            tokens[role] = _post(admin, f"/v1/users/{user['id']}/tokens", {"label": "benchmark"})["token"]
        self._operator, self._developer = tokens["operator"], tokens["developer"]
        authorization = _post(
            admin,
            "/v1/authorizations",
            {
                "operator_id": operator["id"],
                "mode": "whole",
                "datasets": sorted(COLUMNS),
                "category": "public_welfare",
            },
        )
        self._authorization = authorization["id"]
        progress(f"query: serving {self.workdir.name} at {self.url} with {WORKERS} enclave workers")


def _bootstrap(workdir: Path) -> str:
    """The first authority user's token, created as ``veilbox init`` creates it."""
    log = Ledger.open(workdir / "ledger")
    control = ControlPlane.open(control_url(workdir), log)
    try:
        _, token = bootstrap(control, organisation="市大数据局", name="基准管理员", id_reference="RN-bench-1")
        return token
    finally:
        control.close()
        log.close()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _post(http: httpx2.Client, path: str, body: dict[str, Any], status: int = 201) -> Any:
    response = http.post(path, json=body)
    check(response.status_code == status, f"POST {path}: {response.status_code} {response.text[:500]}")
    return response.json()


def _get(http: httpx2.Client, path: str) -> Any:
    response = http.get(path)
    check(response.status_code == 200, f"GET {path}: {response.status_code} {response.text[:500]}")
    return response.json()


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
