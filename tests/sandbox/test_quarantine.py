"""Quarantine: results stored once, atomically, sealed under their owner's data key, and
checked against their hash on every read."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest

from deid.datakeys import DataKeys, is_sealed
from ledger import Ledger
from sandbox.errors import SandboxError
from sandbox.quarantine import Quarantine

OWNER = "org_operator"


@pytest.fixture
def keys(tmp_path: Path) -> Iterator[DataKeys]:
    ledger = Ledger.open(tmp_path / "ledger")
    opened = DataKeys(tmp_path / "keys" / "keys.sqlite", ledger)
    yield opened
    opened.close()
    ledger.close()


@pytest.fixture
def q(tmp_path: Path, keys: DataKeys) -> Quarantine:
    return Quarantine(tmp_path / "q", keys)


def test_put_and_load(tmp_path: Path, q: Quarantine) -> None:
    stored = q.put("job_1", pa.table({"district": ["a"], "n": [12]}), {"scenario": "s1"}, OWNER)
    assert (stored.rows, stored.columns) == (1, ("district", "n"))
    table, meta = q.load("job_1")
    assert table.to_pylist() == [{"district": "a", "n": 12}]
    assert meta["scenario"] == "s1" and meta["sha256"] == stored.sha256 and meta["owner"] == OWNER
    assert (tmp_path / "q").stat().st_mode & 0o777 == 0o700


def test_nothing_is_stored_in_the_clear(tmp_path: Path, q: Quarantine) -> None:
    q.put("job_1", pa.table({"district": ["东城区"], "n": [12]}), {"sql": "SELECT secret_marker"}, OWNER)
    for name in ("result.arrow", "meta.json"):
        data = (tmp_path / "q" / "job_1" / name).read_bytes()
        assert is_sealed(data)
        assert "东城区".encode() not in data and b"secret_marker" not in data and b"district" not in data


def test_results_are_never_overwritten(q: Quarantine) -> None:
    q.put("job_1", pa.table({"n": [1]}), {}, OWNER)
    with pytest.raises(SandboxError, match="already has"):
        q.put("job_1", pa.table({"n": [2]}), {}, OWNER)
    assert q.load("job_1")[0].to_pylist() == [{"n": 1}]


def test_an_altered_result_is_detected(tmp_path: Path, q: Quarantine) -> None:
    q.put("job_1", pa.table({"n": [10]}), {}, OWNER)
    path = tmp_path / "q" / "job_1" / "result.arrow"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(SandboxError, match="altered"):
        q.load("job_1")


def test_a_result_moved_to_another_job_does_not_open(tmp_path: Path, q: Quarantine) -> None:
    q.put("job_1", pa.table({"n": [10]}), {}, OWNER)
    q.put("job_2", pa.table({"n": [99]}), {}, OWNER)
    moved = (tmp_path / "q" / "job_1" / "result.arrow").read_bytes()
    (tmp_path / "q" / "job_2" / "result.arrow").write_bytes(moved)
    with pytest.raises(SandboxError, match="moved"):
        q.load("job_2")


def test_destroying_the_owners_key_shreds_its_results_and_copies(
    tmp_path: Path, q: Quarantine, keys: DataKeys
) -> None:
    q.put("job_1", pa.table({"n": [10]}), {}, OWNER)
    q.put("job_2", pa.table({"n": [20]}), {}, "org_other")
    backup = (tmp_path / "q" / "job_1" / "result.arrow").read_bytes()
    destroyed = keys.destroy(OWNER, actor="usr_authority", reason="exit")
    assert [r.owner for r in destroyed] == [OWNER] and destroyed[0].destroyed_at is not None
    with pytest.raises(SandboxError, match="crypto-shredded"):
        q.load("job_1")
    # A copy taken before the exit (a backup) is as unreadable as the file itself.
    with pytest.raises(Exception, match="crypto-shredded"):
        keys.open(backup, "job_1/result.arrow")
    assert q.load("job_2")[0].to_pylist() == [{"n": 20}]
    # A job still running at the exit cannot leave a readable result behind.
    with pytest.raises(SandboxError, match="crypto-shredded"):
        q.put("job_3", pa.table({"n": [1]}), {}, OWNER)
    assert not (tmp_path / "q" / "job_3").exists()
    assert not list((tmp_path / "q").glob(".*tmp"))


@pytest.mark.parametrize("job_id", ["../escape", "a/b", "", "x" * 65, "job 1"])
def test_job_ids_cannot_name_paths(q: Quarantine, job_id: str) -> None:
    with pytest.raises(SandboxError, match="job id"):
        q.put(job_id, pa.table({"n": [1]}), {}, OWNER)


def test_missing_and_deleted_results(q: Quarantine) -> None:
    with pytest.raises(SandboxError, match="no quarantined result"):
        q.load("job_x")
    q.put("job_x", pa.table({"n": [1]}), {}, OWNER)
    q.delete("job_x")
    with pytest.raises(SandboxError, match="no quarantined result"):
        q.load("job_x")
