"""`veilbox synth`, `veilbox ingest` and `veilbox catalog` through the real console script."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

VEILBOX = str(Path(sys.executable).with_name("veilbox"))


def _veilbox(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [VEILBOX, *args], capture_output=True, text=True, check=False, env={"COLUMNS": "200"}
    )


def test_synth_ingest_and_browse(tmp_path: Path) -> None:
    city, work = tmp_path / "city", tmp_path / "work"
    made = _veilbox("synth", "--rows", "1500", "--seed", "3", "--out", str(city))
    assert made.returncode == 0, made.stderr
    assert (city / "residents.parquet").exists()
    ingested = _veilbox(
        "ingest", str(city / "residents.parquet"), "--dataset", "residents", "--schema", "city",
        "--workdir", str(work), "--json",
    )  # fmt: skip
    assert ingested.returncode == 0, ingested.stderr
    report = json.loads(ingested.stdout)
    assert report["pseudonymized"]["resident_id"] == "person"
    assert report["dataset"]["level"] == 3 and report["dataset"]["row_count"] == 1500
    custom = _veilbox(
        "ingest", str(city / "credit_records.parquet"), "--dataset", "credit", "--provider", "ndrc",
        "--level", "2", "--declare", "amount=measure:0:10000000", "--declare", "record_type=dimension",
        "--workdir", str(work),
    )  # fmt: skip
    assert custom.returncode == 0, custom.stderr
    assert "registered as DS-" in custom.stdout and "uscc" in custom.stdout
    listed = json.loads(_veilbox("catalog", "list", "--workdir", str(work), "--json").stdout)
    assert [d["name"] for d in listed] == ["credit", "residents"]
    shown = json.loads(_veilbox("catalog", "show", "credit", "--workdir", str(work)).stdout)
    tags = {c["name"]: c["tag"] for c in shown["columns"]}
    assert tags == {
        "uscc": "identifier",
        "record_type": "dimension",
        "amount": "measure",
        "record_date": "quasi_identifier",
    }
    assert "11010" not in json.dumps(listed), "the catalog shows no values"


def test_ingest_errors_are_one_clear_line(tmp_path: Path) -> None:
    (tmp_path / "empty.csv").write_text("a,b\n")
    base = ["ingest", str(tmp_path / "empty.csv"), "--dataset", "d", "--provider", "p", "--level", "1"]
    result = _veilbox(*base, "--workdir", str(tmp_path / "work"))
    assert result.returncode == 1
    assert result.stderr.strip() == "error: the files hold no rows; nothing to ingest"
    bad = _veilbox(*base, "--declare", "a=measure:x", "--workdir", str(tmp_path / "work"))
    assert bad.returncode == 1 and "measure:LOWER:UPPER" in bad.stderr
    unknown = _veilbox("catalog", "show", "nothing", "--workdir", str(tmp_path / "work"))
    assert (
        unknown.returncode == 1
        and unknown.stderr.strip() == "error: no dataset named 'nothing' is registered"
    )
