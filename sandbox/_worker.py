"""A job worker process: runs checked SQL on a locked, read-only DuckDB and returns Arrow bytes.

Started by :mod:`sandbox.pool` as ``python -m sandbox._worker``. It speaks a small framed
protocol on its standard input and output: a request is a length-prefixed JSON object,
followed by one length-prefixed Arrow IPC stream per name in its ``tables`` (the in-memory
tables of that one job); a reply is a length-prefixed JSON header followed by a
length-prefixed Arrow IPC stream.
Nothing is pickled, so a compromised worker cannot make the parent run code. Every header
carries ``cpu_s``, the CPU time (all the engine's threads) the request took, for metering.

Defence in depth, each layer able to stop an escape on its own:

- the engine: a read-only base database, every dataset attached READ_ONLY, then
  ``enable_external_access=false`` (no files, no network, no ATTACH/COPY), no extension
  auto-install or auto-load, no spilling to disk, a memory limit and thread count, and
  ``lock_configuration=true`` so no job can change any of it;
- each job runs on its own cursor, so temporary objects die with it; the in-memory tables a
  job is handed (datasets derived for one operator, which are never attached) are
  registered on that cursor alone and unregistered after it, so neither another job nor
  the warm engine itself ever sees them, and nothing of them is written to disk;
- the process: address-space, CPU-time, open-file and file-size limits, and the parent
  kills it if it overruns its wall time.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import resource
import struct
import sys
import threading
import time
from typing import Any, BinaryIO

import duckdb
import pyarrow as pa

FRAME_LENGTH = struct.Struct("<Q")
_TABLE_NAME_RE = re.compile(r"[a-z][a-z0-9_]{0,62}\Z")
# Engine messages can quote the data they choked on (e.g. a failed cast); the submitter
# sees them with literals replaced.
_LITERAL_RE = re.compile(r"'[^']*'|\"[^\"]*\"|\b\d[\d.,eE+-]*\b")


def read_frame(stream: BinaryIO) -> bytes | None:
    """One length-prefixed frame, or None at end of stream."""
    head = stream.read(FRAME_LENGTH.size)
    if len(head) < FRAME_LENGTH.size:
        return None
    (size,) = FRAME_LENGTH.unpack(head)
    data = stream.read(size)
    if len(data) < size:
        return None
    return data


def write_frame(stream: BinaryIO, data: bytes) -> None:
    stream.write(FRAME_LENGTH.pack(len(data)))
    stream.write(data)


def arrow_stream(table: pa.Table) -> bytes:
    """``table`` as one Arrow IPC stream."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    data: bytes = sink.getvalue().to_pybytes()
    return data


def redact(message: str) -> str:
    """An engine error message with quoted strings and numbers replaced by '…'."""
    return _LITERAL_RE.sub("…", message.splitlines()[0] if message else "")[:300]


class _Engine:
    """The locked base connection; rebuilt when the set of datasets changes."""

    def __init__(self, base: str, memory_mb: int, threads: int) -> None:
        self._base, self._memory_mb, self._threads = base, memory_mb, threads
        self._con: duckdb.DuckDBPyConnection | None = None
        self._generation: str | None = None
        self._search_path = ""

    def cursor(self, datasets: list[list[str]], generation: str) -> duckdb.DuckDBPyConnection:
        if self._con is None or generation != self._generation:
            self._connect(datasets)
            self._generation = generation
        assert self._con is not None
        cur = self._con.cursor()
        if self._search_path:
            cur.execute(f"SET search_path = '{self._search_path}'")
        return cur

    def _connect(self, datasets: list[list[str]]) -> None:
        if self._con is not None:
            self._con.close()
        con = duckdb.connect(
            self._base,
            read_only=True,
            config={"threads": self._threads, "memory_limit": f"{self._memory_mb}MB"},
        )
        for name, path in datasets:
            con.execute(f"ATTACH '{_quote(path)}' AS \"ds_{name}\" (READ_ONLY)")
        for setting in (
            "SET temp_directory = ''",
            "SET enable_external_access = false",
            "SET autoinstall_known_extensions = false",
            "SET autoload_known_extensions = false",
            "SET lock_configuration = true",
        ):
            con.execute(setting)
        self._con = con
        self._search_path = ",".join(f"ds_{name}.main" for name, _ in datasets)


def _quote(path: str) -> str:
    if "'" in path or "\0" in path:
        raise ValueError("dataset paths may not contain quotes")
    return path


def _run(engine: _Engine, request: dict[str, Any], tables: dict[str, bytes]) -> tuple[dict[str, Any], bytes]:
    """Run one request; every reply header says how much CPU time the request took here."""
    before = _cpu_used()
    header, payload = _execute(engine, request, tables, before)
    header["cpu_s"] = round(_cpu_used() - before, 6)
    return header, payload


def _execute(
    engine: _Engine, request: dict[str, Any], tables: dict[str, bytes], cpu_before: float
) -> tuple[dict[str, Any], bytes]:
    if any(not _TABLE_NAME_RE.match(name) for name in tables):
        return {"ok": False, "kind": "internal", "message": "an in-memory table has an unusable name"}, b""
    soft_cpu = int(cpu_before + float(request["cpu_s"])) + 1
    _, hard_cpu = resource.getrlimit(resource.RLIMIT_CPU)
    resource.setrlimit(resource.RLIMIT_CPU, (soft_cpu, hard_cpu))
    started = time.perf_counter()
    try:
        cur = engine.cursor(request["datasets"], request["generation"])
    except duckdb.Error as exc:
        return {
            "ok": False,
            "kind": "engine",
            "message": f"the enclave could not open its data: {redact(str(exc))}",
        }, b""
    timer = threading.Timer(float(request["timeout_s"]), cur.interrupt)
    timer.start()
    try:
        for name, data in tables.items():
            cur.register(name, pa.ipc.open_stream(data).read_all())
        relation = cur.sql(request["sql"])
        table = relation.to_arrow_table() if relation is not None else None
    except duckdb.InterruptException:
        return {
            "ok": False,
            "kind": "timeout",
            "message": f"the job ran past its {request['timeout_s']} s limit",
        }, b""
    except duckdb.OutOfMemoryException:
        return {"ok": False, "kind": "memory", "message": "the job ran past its memory limit"}, b""
    except duckdb.Error as exc:
        return {"ok": False, "kind": "engine", "message": f"{type(exc).__name__}: {redact(str(exc))}"}, b""
    finally:
        timer.cancel()
        for name in tables:
            with contextlib.suppress(duckdb.Error):
                cur.unregister(name)
        cur.close()
    if table is None:
        return {"ok": False, "kind": "engine", "message": "the statement returned no result set"}, b""
    payload = arrow_stream(table)
    if len(payload) > int(request["max_result_bytes"]):
        return {
            "ok": False,
            "kind": "too_large",
            "message": f"the result is {len(payload)} bytes, over the limit",
        }, b""
    elapsed = (time.perf_counter() - started) * 1000
    return {"ok": True, "rows": table.num_rows, "elapsed_ms": round(elapsed, 3)}, payload


def _read_tables(stream: BinaryIO, names: list[str]) -> dict[str, bytes] | None:
    """The Arrow IPC frames that follow a request, one per name; None at end of stream."""
    tables: dict[str, bytes] = {}
    for name in names:
        data = read_frame(stream)
        if data is None:
            return None
        tables[str(name)] = data
    return tables


def _cpu_used() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _limit_process(address_space_mb: int) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (address_space_mb << 20, address_space_mb << 20))
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))
    # Results leave through the pipe; the worker has no business writing files.
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))


def main() -> None:
    """Serve requests until the parent closes standard input."""
    base, memory_mb, threads, address_space_mb = (
        sys.argv[1],
        int(sys.argv[2]),
        int(sys.argv[3]),
        int(sys.argv[4]),
    )
    requests, replies = sys.stdin.buffer, os.fdopen(os.dup(1), "wb")
    sys.stdout = sys.stderr  # stray prints must never corrupt the protocol
    _limit_process(address_space_mb)
    engine = _Engine(base, memory_mb, threads)
    while (frame := read_frame(requests)) is not None:
        try:
            request = json.loads(frame)
            tables = _read_tables(requests, request.get("tables") or [])
            if tables is None:
                return  # the parent closed the pipe mid-request
            header, payload = _run(engine, request, tables)
        except Exception as exc:  # a bug here must fail the job, not kill the worker silently
            header, payload = {"ok": False, "kind": "internal", "message": type(exc).__name__}, b""
        write_frame(replies, json.dumps(header).encode())
        write_frame(replies, payload)
        replies.flush()


if __name__ == "__main__":
    main()
