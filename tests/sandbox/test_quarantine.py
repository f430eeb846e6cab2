"""Quarantine: results stored once, atomically, and checked against their hash on every read."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from sandbox.errors import SandboxError
from sandbox.quarantine import Quarantine


def test_put_and_load(tmp_path: Path) -> None:
    q = Quarantine(tmp_path / "q")
    stored = q.put("job_1", pa.table({"district": ["a"], "n": [12]}), {"scenario": "s1"})
    assert (stored.rows, stored.columns) == (1, ("district", "n"))
    table, meta = q.load("job_1")
    assert table.to_pylist() == [{"district": "a", "n": 12}]
    assert meta["scenario"] == "s1" and meta["sha256"] == stored.sha256
    assert (tmp_path / "q").stat().st_mode & 0o777 == 0o700


def test_results_are_never_overwritten(tmp_path: Path) -> None:
    q = Quarantine(tmp_path / "q")
    q.put("job_1", pa.table({"n": [1]}), {})
    with pytest.raises(SandboxError, match="already has"):
        q.put("job_1", pa.table({"n": [2]}), {})
    assert q.load("job_1")[0].to_pylist() == [{"n": 1}]


def test_an_altered_result_is_detected(tmp_path: Path) -> None:
    q = Quarantine(tmp_path / "q")
    q.put("job_1", pa.table({"n": [10]}), {})
    path = tmp_path / "q" / "job_1" / "result.arrow"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(SandboxError, match="altered"):
        q.load("job_1")


@pytest.mark.parametrize("job_id", ["../escape", "a/b", "", "x" * 65, "job 1"])
def test_job_ids_cannot_name_paths(tmp_path: Path, job_id: str) -> None:
    with pytest.raises(SandboxError, match="job id"):
        Quarantine(tmp_path / "q").put(job_id, pa.table({"n": [1]}), {})


def test_missing_and_deleted_results(tmp_path: Path) -> None:
    q = Quarantine(tmp_path / "q")
    with pytest.raises(SandboxError, match="no quarantined result"):
        q.load("job_x")
    q.put("job_x", pa.table({"n": [1]}), {})
    q.delete("job_x")
    with pytest.raises(SandboxError, match="no quarantined result"):
        q.load("job_x")
