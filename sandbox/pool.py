"""A pool of isolated worker processes that run checked SQL on the enclave's data.

Jobs never run in the calling process. Each worker is a separate Python process with its
own locked, read-only DuckDB (see :mod:`sandbox._worker`). A job that overruns a limit
fails with a reason; a worker that dies or hangs is killed and replaced, and the pool
carries on. The CPU time each worker reports for a job is noted for metering
(:mod:`sandbox.usage`).
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import selectors
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa

from sandbox import usage
from sandbox._worker import FRAME_LENGTH, arrow_stream, write_frame
from sandbox.errors import JobError, JobResourceError, JobTimeout
from sandbox.limits import Limits

_GRACE_S = 5.0


class _Worker:
    def __init__(self, base: Path, limits: Limits) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "sandbox._worker", str(base), str(limits.memory_mb), str(limits.threads),
             str(limits.address_space_mb)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            env=_worker_env(),
        )  # fmt: skip

    def call(
        self, request: dict[str, Any], deadline: float, tables: Sequence[bytes] = ()
    ) -> tuple[dict[str, Any], bytes]:
        assert self.process.stdin is not None and self.process.stdout is not None
        write_frame(self.process.stdin, json.dumps(request).encode())  # type: ignore[arg-type]
        for table in tables:  # one Arrow IPC frame per name in request["tables"], in order
            write_frame(self.process.stdin, table)  # type: ignore[arg-type]
        self.process.stdin.flush()
        header = self._read(deadline)
        payload = self._read(deadline)
        return json.loads(header), payload

    def _read(self, deadline: float) -> bytes:
        (size,) = FRAME_LENGTH.unpack(self._read_exact(FRAME_LENGTH.size, deadline))
        return self._read_exact(size, deadline)

    def _read_exact(self, size: int, deadline: float) -> bytes:
        """Read exactly ``size`` bytes from the worker, unbuffered, giving up at ``deadline``."""
        assert self.process.stdout is not None
        fd = self.process.stdout.fileno()
        chunks: list[bytes] = []
        remaining = size
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_READ)
            while remaining:
                if not sel.select(max(0.0, deadline - time.monotonic())):
                    raise TimeoutError
                chunk = os.read(fd, min(remaining, 1 << 20))
                if not chunk:
                    raise EOFError
                chunks.append(chunk)
                remaining -= len(chunk)
        return b"".join(chunks)

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()


class WorkerPool:
    """Runs SQL in worker processes; safe to call from many threads."""

    def __init__(self, base: Path, *, workers: int = 2, limits: Limits | None = None) -> None:
        self._base = base
        self.limits = limits or Limits()
        self.workers = workers
        self._idle: queue.Queue[_Worker] = queue.Queue()
        self._all: set[_Worker] = set()
        self._lock = threading.Lock()
        self._closed = False
        for _ in range(workers):
            self._add()

    def _add(self) -> None:
        worker = _Worker(self._base, self.limits)
        with self._lock:
            self._all.add(worker)
        self._idle.put(worker)

    def run(
        self,
        sql: str,
        datasets: Sequence[tuple[str, Path]],
        generation: str,
        *,
        timeout_s: float | None = None,
        tables: Mapping[str, pa.Table] | None = None,
    ) -> pa.Table:
        """Run ``sql`` with ``datasets`` attached; returns the result table (for the enclave only).

        ``tables`` are handed to the worker in memory (Arrow IPC over its pipe) and exist
        under their names for this one query only: never written to disk, never attached to
        the engine that later jobs share.

        Raises JobTimeout, JobResourceError or JobError with a reason the submitter can read.
        """
        if self._closed:
            raise JobError("the worker pool is closed")
        timeout = self.limits.timeout_s if timeout_s is None else timeout_s
        in_memory = dict(tables or {})
        names = sorted(in_memory)
        request = {
            "sql": sql,
            "datasets": [[name, str(path)] for name, path in datasets],
            "generation": generation,
            "timeout_s": timeout,
            "cpu_s": self.limits.cpu_s,
            "max_result_bytes": self.limits.max_result_bytes,
            "tables": names,
        }
        frames = [arrow_stream(in_memory[name]) for name in names]
        worker = self._idle.get()
        try:
            header, payload = worker.call(request, time.monotonic() + timeout + _GRACE_S, frames)
        except TimeoutError:
            self._replace(worker)
            raise JobTimeout(f"the job ran past its {timeout} s limit and its worker was stopped") from None
        except (EOFError, BrokenPipeError, OSError):
            self._replace(worker)
            raise _death(worker) from None
        self._idle.put(worker)
        usage.note_cpu(header.get("cpu_s"))
        if header["ok"]:
            return pa.ipc.open_stream(payload).read_all()
        kind, message = header["kind"], header["message"]
        if kind == "timeout":
            raise JobTimeout(message)
        if kind == "memory":
            raise JobResourceError(message)
        raise JobError(message)

    def _replace(self, worker: _Worker) -> None:
        worker.kill()
        with self._lock:
            self._all.discard(worker)
        if not self._closed:
            self._add()

    def close(self) -> None:
        """Stop every worker."""
        self._closed = True
        with self._lock:
            workers, self._all = list(self._all), set()
        for worker in workers:
            worker.kill()

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _death(worker: _Worker) -> JobError:
    code = worker.process.wait()
    if code == -signal.SIGXCPU:
        return JobResourceError("the job ran past its CPU-time limit and its worker was stopped")
    if code in (-signal.SIGKILL, -signal.SIGSEGV, -signal.SIGABRT, 1):
        return JobResourceError(f"the job's worker died (exit {code}), most likely past its memory limit")
    return JobError(f"the job's worker died unexpectedly (exit {code})")


def _worker_env() -> dict[str, str]:
    """A minimal environment: no credentials or proxies leak into the worker."""
    keep = ("PATH", "LANG", "LC_ALL", "PYTHONPATH", "HOME", "TMPDIR")
    env = {k: os.environ[k] for k in keep if k in os.environ}
    env["PYTHONNOUSERSITE"] = "1"
    return env
