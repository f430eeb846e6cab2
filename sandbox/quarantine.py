"""Quarantine: where job results wait inside the enclave for the privacy layer and outbound review.

A result is written once (Arrow IPC file plus a metadata document), atomically, under the
job's id, with the SHA-256 of its Arrow bytes. Both files are sealed under the data key of
the job's owner (:mod:`deid.datakeys`), so destroying that key when the operator exits
makes them unreadable, backups included. Nothing here returns a result to a submitter:
reading is for the enclave's own review and release steps.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from deid.datakeys import DataKeys
from deid.errors import DataKeyError
from sandbox.errors import SandboxError

_JOB_RE = re.compile(r"[A-Za-z0-9_-]{1,64}\Z")


@dataclass(frozen=True)
class QuarantinedResult:
    """A stored result's identity: never its values."""

    job_id: str
    sha256: str
    rows: int
    columns: tuple[str, ...]


class Quarantine:
    """Results by job id under one directory."""

    def __init__(self, root: Path, keys: DataKeys) -> None:
        self._root, self._keys = root, keys
        root.mkdir(parents=True, exist_ok=True, mode=0o700)

    def put(self, job_id: str, table: pa.Table, metadata: dict[str, Any], owner: str) -> QuarantinedResult:
        """Store a result sealed under ``owner``'s data key; refuses to overwrite an existing one."""
        final = self._dir(job_id)
        if final.exists():
            raise SandboxError(f"job {job_id} already has a quarantined result")
        sink = pa.BufferOutputStream()
        with pa.ipc.new_file(sink, table.schema) as writer:
            writer.write_table(table)
        data = sink.getvalue().to_pybytes()
        result = QuarantinedResult(
            job_id, hashlib.sha256(data).hexdigest(), table.num_rows, tuple(table.column_names)
        )
        staging = self._root / f".{job_id}.{os.getpid()}.tmp"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(mode=0o700)
        document = {
            **metadata,
            "job_id": job_id,
            "owner": owner,
            "sha256": result.sha256,
            "rows": result.rows,
            "columns": list(result.columns),
        }
        try:
            for name, content in (("result.arrow", data), ("meta.json", json.dumps(document).encode())):
                (staging / name).write_bytes(self._keys.seal(owner, content, f"{job_id}/{name}"))
        except DataKeyError as exc:
            shutil.rmtree(staging, ignore_errors=True)
            raise SandboxError(f"the result of job {job_id} cannot be kept: {exc}") from None
        os.rename(staging, final)
        return result

    def load(self, job_id: str) -> tuple[pa.Table, dict[str, Any]]:
        """A stored result and its metadata, after checking the stored bytes still hash right."""
        folder = self._dir(job_id)
        try:
            data = self._open(folder, job_id, "result.arrow")
            meta = json.loads(self._open(folder, job_id, "meta.json"))
        except FileNotFoundError:
            raise SandboxError(f"no quarantined result for job {job_id}") from None
        if hashlib.sha256(data).hexdigest() != meta.get("sha256"):
            raise SandboxError(f"the quarantined result of job {job_id} was altered after it was stored")
        return pa.ipc.open_file(data).read_all(), meta

    def describe(self, job_id: str) -> QuarantinedResult:
        """A stored result's identity (hash, size, columns), from its metadata."""
        _, meta = self.load(job_id)
        return QuarantinedResult(job_id, meta["sha256"], meta["rows"], tuple(meta["columns"]))

    def _open(self, folder: Path, job_id: str, name: str) -> bytes:
        try:
            return self._keys.open((folder / name).read_bytes(), f"{job_id}/{name}")
        except DataKeyError as exc:
            raise SandboxError(f"the quarantined result of job {job_id} cannot be read: {exc}") from None

    def delete(self, job_id: str) -> None:
        shutil.rmtree(self._dir(job_id), ignore_errors=True)

    def _dir(self, job_id: str) -> Path:
        if not _JOB_RE.match(job_id):
            raise SandboxError(f"job id {job_id!r} must be 1-64 letters, digits, '-' or '_'")
        return self._root / job_id
