"""Confined Python jobs: custom code (models) run under bubblewrap, or not at all.

A job is Python source that reads ``inputs`` (a dict of pyarrow Tables handed over from
the enclave as Arrow IPC files) and sets ``result`` to a pyarrow Table or a JSON value.
It runs in a bubblewrap sandbox: every namespace unshared (no network, no view of other
processes), the interpreter, its standard library and the virtual environment bound
read-only, a private ``/tmp``, the inputs read-only and one writable output directory —
no home, no enclave directory, no ``/etc`` beyond what the dynamic linker needs — and
address-space, CPU, open-file and file-size limits applied before the job's code runs.
The parent kills the whole sandbox at the wall-time limit, and notes the CPU time it
spent for metering (:mod:`sandbox.usage`).

If bubblewrap is missing or cannot create namespaces here, jobs are refused with
ConfinementError: never run unconfined.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from sandbox import usage
from sandbox.errors import ConfinementError, JobError, JobResourceError, JobTimeout

_RUNNER = r"""
import json, os, resource, sys
limits = json.loads(sys.argv[1])
for name, value in (("RLIMIT_AS", limits["as"]), ("RLIMIT_CPU", limits["cpu"]),
                    ("RLIMIT_NOFILE", 64), ("RLIMIT_FSIZE", limits["fsize"])):
    resource.setrlimit(getattr(resource, name), (value, value))
import pyarrow as pa
import pyarrow.ipc as ipc
inputs = {}
for entry in sorted(os.listdir("/job/in")):
    if entry.endswith(".arrow"):
        with pa.memory_map("/job/in/" + entry) as source:
            inputs[entry[:-6]] = ipc.open_file(source).read_all()
namespace = {"inputs": inputs, "__name__": "__job__"}
with open("/job/in/job.py", encoding="utf-8") as f:
    exec(compile(f.read(), "job.py", "exec"), namespace)
result = namespace.get("result")
if isinstance(result, pa.Table):
    with ipc.new_file("/job/out/result.arrow", result.schema) as writer:
        writer.write_table(result)
elif result is not None:
    with open("/job/out/result.json", "w", encoding="utf-8") as f:
        json.dump(result, f)
"""


@dataclass(frozen=True)
class ConfinedLimits:
    """Limits for one confined job."""

    timeout_s: float = 60.0
    cpu_s: int = 60
    memory_mb: int = 2048
    max_output_bytes: int = 64 << 20


@dataclass(frozen=True)
class ConfinedResult:
    """What a confined job produced: a table or a JSON value (for the enclave only)."""

    table: pa.Table | None
    value: Any = None


def run_confined(
    code: str,
    inputs: Mapping[str, pa.Table],
    *,
    limits: ConfinedLimits | None = None,
    bwrap: str | None = None,
) -> ConfinedResult:
    """Run ``code`` confined; raises ConfinementError if confinement is unavailable."""
    limits = limits or ConfinedLimits()
    executable = check_bwrap(bwrap or shutil.which("bwrap") or "")
    with tempfile.TemporaryDirectory(prefix="veilbox-job-") as tmp:
        root = Path(tmp)
        (root / "in").mkdir()
        (root / "out").mkdir()
        (root / "in" / "job.py").write_text(code, encoding="utf-8")
        for name, table in inputs.items():
            _write_input(root / "in" / f"{name}.arrow", table)
        _execute([executable, *_sandbox_args(root), *_python(limits)], limits)
        return _collect(root / "out", limits)


@functools.lru_cache(maxsize=4)
def check_bwrap(executable: str) -> str:
    """Return ``executable`` if it can build a sandbox here; ConfinementError otherwise."""
    if not executable or not os.access(executable, os.X_OK):
        raise ConfinementError(
            "bubblewrap (bwrap) is not installed, so Python jobs are refused rather than run unconfined; "
            "install it with 'apt-get install bubblewrap'"
        )
    probe = subprocess.run(
        [executable, "--unshare-all", "--die-with-parent", "--ro-bind", "/", "/", "true"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    if probe.returncode != 0:
        raise ConfinementError(
            f"bubblewrap cannot create a sandbox here ({probe.stderr.strip()[:200]}); Python jobs are refused"
        )
    return executable


def _write_input(path: Path, table: pa.Table) -> None:
    with pa.ipc.new_file(str(path), table.schema) as writer:
        writer.write_table(table)


def _sandbox_args(root: Path) -> list[str]:
    args = [
        "--unshare-all", "--die-with-parent", "--new-session", "--clearenv",
        "--setenv", "PATH", "/usr/bin:/bin", "--setenv", "HOME", "/job",
        "--setenv", "PYTHONDONTWRITEBYTECODE", "1",
        "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp",  # noqa: S108 - a private tmpfs inside the sandbox
    ]  # fmt: skip
    for path in (
        "/usr",
        "/lib",
        "/lib64",
        "/bin",
        "/etc/ld.so.cache",
        "/etc/ld.so.conf",
        "/etc/ld.so.conf.d",
    ):
        args += ["--ro-bind-try", path, path]
    # The interpreter behind the virtual environment, the environment itself, and any
    # installed package directory outside both (an editable install's source tree).
    for prefix in sorted({sys.base_prefix, sys.prefix, *_package_roots()}):
        args += ["--ro-bind", prefix, prefix]
    args += [
        "--ro-bind",
        str(root / "in"),
        "/job/in",
        "--bind",
        str(root / "out"),
        "/job/out",
        "--chdir",
        "/job",
    ]
    return args


def _package_roots() -> set[str]:
    return {str(Path(pa.__file__).resolve().parents[1])}


def _python(limits: ConfinedLimits) -> list[str]:
    rlimits = {"as": limits.memory_mb << 20, "cpu": limits.cpu_s, "fsize": limits.max_output_bytes}
    return ["--", sys.executable, "-I", "-c", _RUNNER, json.dumps(rlimits)]


def _execute(command: list[str], limits: ConfinedLimits) -> None:
    with tempfile.TemporaryFile() as errors:
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=errors, start_new_session=True)
        finished = _exits_within(process.pid, limits.timeout_s)
        if not finished:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
        # Reaped here rather than by Popen, so that the CPU time of the sandbox and of
        # everything it waited for can be read and metered (sandbox.usage).
        _, status, spent = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        usage.note_cpu(spent.ru_utime + spent.ru_stime)
        if not finished:
            raise JobTimeout(f"the Python job ran past its {limits.timeout_s} s limit and was stopped")
        errors.seek(0)
        stderr = errors.read()
    if process.returncode == 0:
        return
    last = (stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or [""])[0][:300]
    if "File too large" in last:
        raise JobError(f"the Python job's result is over the {limits.max_output_bytes}-byte limit")
    # bwrap reports a job killed by signal N as exit status 128 + N.
    if "MemoryError" in last or process.returncode - 128 in (signal.SIGKILL, signal.SIGXCPU):
        raise JobResourceError(f"the Python job ran past its memory or CPU limit ({last or 'killed'})")
    raise JobError(f"the Python job failed: {last}")


def _exits_within(pid: int, timeout_s: float) -> bool:
    """Whether process ``pid`` (a child not yet reaped) ends within ``timeout_s`` seconds."""
    handle = os.pidfd_open(pid)
    try:
        with selectors.DefaultSelector() as waiting:
            waiting.register(handle, selectors.EVENT_READ)
            return bool(waiting.select(timeout_s))
    finally:
        os.close(handle)


def _collect(out: Path, limits: ConfinedLimits) -> ConfinedResult:
    table_path, value_path = out / "result.arrow", out / "result.json"
    for path in (table_path, value_path):
        if path.exists() and path.stat().st_size > limits.max_output_bytes:
            raise JobError(f"the Python job's result is over the {limits.max_output_bytes}-byte limit")
    if table_path.exists():
        with pa.memory_map(str(table_path)) as source:
            return ConfinedResult(pa.ipc.open_file(source).read_all())
    if value_path.exists():
        try:
            return ConfinedResult(None, json.loads(value_path.read_text(encoding="utf-8")))
        except ValueError:
            raise JobError("the Python job's result is not valid JSON") from None
    raise JobError("the Python job set no result")
