"""Confined Python jobs: they compute on the inputs they are given and can reach nothing else.

The escape tests need bubblewrap; CI installs it (``make test`` does when it can). Without
it, confined jobs must be refused, which the last tests check everywhere."""

from __future__ import annotations

import shutil
import socket
from pathlib import Path

import pyarrow as pa
import pytest

from sandbox import usage
from sandbox.confine import ConfinedLimits, run_confined
from sandbox.errors import ConfinementError, JobError, JobResourceError, JobTimeout

needs_bwrap = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed here")


@needs_bwrap
def test_a_job_computes_on_its_inputs() -> None:
    code = "import pyarrow.compute as pc\nresult = {'total': pc.sum(inputs['t']['x']).as_py()}"
    assert run_confined(code, {"t": pa.table({"x": [1, 2, 3]})}).value == {"total": 6}
    table = run_confined("result = inputs['t'].slice(1)", {"t": pa.table({"x": [1, 2, 3]})}).table
    assert table is not None and table.to_pylist() == [{"x": 2}, {"x": 3}]


@needs_bwrap
def test_no_network_no_host_files_no_writes_no_secrets(tmp_path: Path) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    (tmp_path / "enclave-secret.txt").write_text("110105194912310021")
    code = f"""
import os, socket
seen = {{}}
def attempt(name, action):
    try:
        action()
        seen[name] = "allowed"
    except OSError as exc:
        seen[name] = type(exc).__name__
attempt("network", lambda: socket.create_connection(("127.0.0.1", {port}), timeout=2))
attempt("dns", lambda: socket.getaddrinfo("pypi.org", 443))
attempt("passwd", lambda: open("/etc/passwd").read())
attempt("secret", lambda: open({str(tmp_path / "enclave-secret.txt")!r}).read())
attempt("write_usr", lambda: open("/usr/planted", "w"))
attempt("write_inputs", lambda: open("/job/in/planted", "w"))
seen["environment"] = sorted(os.environ)
result = seen
"""
    seen = run_confined(code, {}).value
    listener.close()
    assert seen["network"] != "allowed" and seen["dns"] != "allowed"
    assert seen["passwd"] == "FileNotFoundError" and seen["secret"] == "FileNotFoundError"
    assert seen["write_usr"] != "allowed" and seen["write_inputs"] != "allowed"
    assert set(seen["environment"]) <= {"HOME", "PATH", "PWD", "LC_CTYPE", "PYTHONDONTWRITEBYTECODE"}


@needs_bwrap
def test_memory_time_and_cpu_limits() -> None:
    with pytest.raises(JobResourceError):
        run_confined("block = bytearray(8 << 30)\nresult = 1", {}, limits=ConfinedLimits(memory_mb=512))
    with pytest.raises(JobTimeout):
        run_confined("import time\ntime.sleep(60)", {}, limits=ConfinedLimits(timeout_s=1))
    with pytest.raises(JobResourceError):
        run_confined("while True: pass", {}, limits=ConfinedLimits(timeout_s=30, cpu_s=1))


@needs_bwrap
def test_the_cpu_time_of_a_confined_job_is_noted_for_metering() -> None:
    with usage.measure() as used:
        run_confined("result = {'x': sum(i * i for i in range(1_000_000))}", {})
    assert used.cpu_s > 0 and not used.tables


@needs_bwrap
def test_job_errors_and_missing_results_are_reported() -> None:
    with pytest.raises(JobError, match="ValueError: boom"):
        run_confined("raise ValueError('boom')", {})
    with pytest.raises(JobError, match="set no result"):
        run_confined("x = 1", {})
    with pytest.raises(JobError, match="over the"):
        run_confined("result = 'x' * 4096", {}, limits=ConfinedLimits(max_output_bytes=1024))


def test_without_bubblewrap_jobs_are_refused_never_run_unconfined(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    with pytest.raises(ConfinementError, match="refused rather than run unconfined"):
        run_confined(f"open({str(marker)!r}, 'w')\nresult = 1", {}, bwrap=str(tmp_path / "no-bwrap"))
    assert not marker.exists()


def test_a_bubblewrap_that_cannot_sandbox_is_refused(tmp_path: Path) -> None:
    fake = tmp_path / "bwrap"
    fake.write_text("#!/bin/sh\necho 'No permissions to create new namespace' >&2\nexit 1\n")
    fake.chmod(0o755)
    with pytest.raises(ConfinementError, match="cannot create a sandbox"):
        run_confined("result = 1", {}, bwrap=str(fake))
