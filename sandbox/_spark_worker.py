"""A Spark job worker: runs checked Spark SQL on a Spark driver and returns Arrow bytes.

Started by :mod:`sandbox._spark` as ``python -m sandbox._spark_worker MASTER MEMORY_MB SCRATCH CONF``
(CONF: further Spark settings as JSON, never one of :data:`sandbox.backend.SPARK_SETTINGS`).
It speaks :mod:`sandbox._worker`'s framed protocol, and first sends one header when Spark is up.
With a ``local[N]`` master the whole Spark engine runs in this process's JVM; with a cluster
URL this process is the driver and the cluster's executors read the datasets.

Defence in depth, each layer able to stop an escape on its own:

- the SQL: rendered from a policy-checked tree by :mod:`sandbox._spark_sql`, and checked
  again here before Spark sees it (one SELECT over the job's datasets, allow-listed
  functions only, no comments and so no hints);
- the engine: ANSI mode (an overflow fails, as on DuckDB), UTC, an in-memory catalog, SQL on
  files disabled, no UI, bound to loopback; the datasets are read-only Parquet views;
- the process: a job past its wall time is cancelled, and the parent kills the process
  group (the JVM with it) if that does not stop it.

The JVM reserves its own address space and writes shuffle files, so Spark cannot run under
the address-space and file-size limits of the DuckDB worker: its memory is bounded by the
driver heap, and it writes only in a scratch directory the parent removes with it. The
CPU-time limit is not enforced here (the wall-time limit is); the CPU time of the whole
process tree is still reported for metering.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pyarrow as pa

from sandbox._spark_sql import check_rendered
from sandbox._worker import read_frame, redact, write_frame
from sandbox.backend import SPARK_SETTINGS


class _Spark:
    """One Spark session, with the current job's datasets registered as temporary views."""

    def __init__(self, master: str, memory_mb: int, scratch: str, extra: dict[str, str]) -> None:
        from pyspark.sql import SparkSession  # noqa: PLC0415 - only this process imports Spark

        settings = {
            "spark.sql.shuffle.partitions": "4",
            **extra,
            **SPARK_SETTINGS,
            "spark.driver.memory": f"{memory_mb}m",
            "spark.local.dir": scratch,
            "spark.sql.warehouse.dir": str(Path(scratch) / "warehouse"),
            "spark.driver.extraJavaOptions": f"-Djava.io.tmpdir={scratch}",
        }
        builder = SparkSession.builder.master(master).appName("veilbox-enclave")
        for key, value in settings.items():
            builder = builder.config(key, value)
        self.session = builder.getOrCreate()
        self.session.sparkContext.setLogLevel("OFF")
        self._generation: str | None = None
        self._views: list[str] = []

    def register(self, datasets: list[list[str]], generation: str) -> None:
        if generation == self._generation:
            return
        for name in self._views:
            self.session.catalog.dropTempView(name)
        self._views = []
        for name, path in datasets:
            self.session.read.parquet(path).createOrReplaceTempView(name)
            self._views.append(name)
        self._generation = generation

    def cpu_seconds(self) -> float:
        """CPU time used so far by this process and the JVM it started."""
        usage = resource.getrusage(resource.RUSAGE_SELF)
        total = usage.ru_utime + usage.ru_stime
        process = getattr(getattr(self.session.sparkContext, "_gateway", None), "proc", None)
        try:
            fields = Path(f"/proc/{getattr(process, 'pid', '')}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (AttributeError, OSError, IndexError, ValueError):
            pass  # no JVM of our own (or no /proc): this process's time is what we can tell
        return total


def _run(spark: _Spark, request: dict[str, Any]) -> tuple[dict[str, Any], bytes]:
    before = spark.cpu_seconds()
    header, payload = _execute(spark, request)
    header["cpu_s"] = round(spark.cpu_seconds() - before, 6)
    return header, payload


def _execute(spark: _Spark, request: dict[str, Any]) -> tuple[dict[str, Any], bytes]:
    started = time.perf_counter()
    datasets = request["datasets"]
    try:
        check_rendered(request["sql"], [name for name, _ in datasets])
    except ValueError as exc:
        return {"ok": False, "kind": "engine", "message": f"the Spark worker refused the SQL: {exc}"}, b""
    try:
        spark.register(datasets, request["generation"])
    except Exception as exc:
        return {
            "ok": False,
            "kind": "engine",
            "message": f"the enclave could not open its data: {_reason(exc)}",
        }, b""
    context = spark.session.sparkContext
    group = f"job-{time.monotonic_ns()}"
    context.setJobGroup(group, "veilbox job", interruptOnCancel=True)
    expired = threading.Event()

    def cancel() -> None:
        expired.set()
        context.cancelJobGroup(group)

    timer = threading.Timer(float(request["timeout_s"]), cancel)
    timer.start()
    try:
        table = _normalized(spark.session.sql(request["sql"]).toArrow())
    except Exception as exc:
        if expired.is_set():
            return {
                "ok": False,
                "kind": "timeout",
                "message": f"the job ran past its {request['timeout_s']} s limit",
            }, b""
        if "OutOfMemoryError" in str(exc):
            # A JVM out of memory is not trusted with another job: the parent sees this worker
            # die, reports the job past its memory limit and starts another.
            os._exit(1)
        return {"ok": False, "kind": "engine", "message": _reason(exc)}, b""
    finally:
        timer.cancel()
        context.setJobGroup("idle", "", interruptOnCancel=False)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    payload = sink.getvalue().to_pybytes()
    if len(payload) > int(request["max_result_bytes"]):
        return {
            "ok": False,
            "kind": "too_large",
            "message": f"the result is {len(payload)} bytes, over the limit",
        }, b""
    elapsed = (time.perf_counter() - started) * 1000
    return {"ok": True, "rows": table.num_rows, "elapsed_ms": round(elapsed, 3)}, payload


def _reason(exc: Exception) -> str:
    """A Spark error as one line, its error class kept and any quoted data replaced by '…'."""
    text = str(exc).strip()
    return f"{type(exc).__name__}: {redact(text)}"


def _normalized(table: pa.Table) -> pa.Table:
    """Arrow types as DuckDB returns them: Spark's large strings and lists become the plain ones."""
    fields = []
    for f in table.schema:
        kind = f.type
        if pa.types.is_large_string(kind):
            kind = pa.string()
        elif pa.types.is_large_list(kind):
            kind = pa.list_(kind.value_type)
        fields.append(pa.field(f.name, kind))
    schema = pa.schema(fields)
    return table if schema == table.schema else table.cast(schema)


def main() -> None:
    """Start Spark, say so, then serve requests until the parent closes standard input."""
    master, memory_mb, scratch, extra = sys.argv[1], int(sys.argv[2]), sys.argv[3], json.loads(sys.argv[4])
    requests = sys.stdin.buffer
    replies = os.fdopen(os.dup(1), "wb")
    # The JVM inherits descriptor 1: point it at standard error so nothing corrupts the protocol.
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    spark = _Spark(master, memory_mb, scratch, extra)
    write_frame(replies, json.dumps({"ok": True, "ready": True}).encode())
    replies.flush()
    while (frame := read_frame(requests)) is not None:
        try:
            header, payload = _run(spark, json.loads(frame))
        except Exception as exc:  # a bug here must fail the job, not kill the worker silently
            header, payload = {"ok": False, "kind": "internal", "message": type(exc).__name__}, b""
        write_frame(replies, json.dumps(header).encode())
        write_frame(replies, payload)
        replies.flush()
    spark.session.stop()


if __name__ == "__main__":
    main()
