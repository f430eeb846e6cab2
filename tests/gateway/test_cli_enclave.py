"""`veilbox synth`, `veilbox ingest` and `veilbox catalog` as a user runs them: through the console
script's entry point in this process, and one ingest error through the real console script."""

from __future__ import annotations

import json
from pathlib import Path

from tests.gateway.commands import veilbox_in_process, veilbox_script


def test_synth_ingest_and_browse(tmp_path: Path) -> None:
    city, work = tmp_path / "city", tmp_path / "work"
    made = veilbox_in_process("synth", "--rows", "1500", "--seed", "3", "--out", str(city))
    assert made.returncode == 0, made.stderr
    assert (city / "residents.parquet").exists()
    ingested = veilbox_in_process(
        "ingest", str(city / "residents.parquet"), "--dataset", "residents", "--schema", "city",
        "--workdir", str(work), "--json",
    )  # fmt: skip
    assert ingested.returncode == 0, ingested.stderr
    report = json.loads(ingested.stdout)
    assert report["pseudonymized"]["resident_id"] == "person"
    assert report["dataset"]["level"] == 3 and report["dataset"]["row_count"] == 1500
    custom = veilbox_in_process(
        "ingest", str(city / "credit_records.parquet"), "--dataset", "credit", "--provider", "ndrc",
        "--level", "2", "--declare", "amount=measure:0:10000000", "--declare", "record_type=dimension",
        "--workdir", str(work),
    )  # fmt: skip
    assert custom.returncode == 0, custom.stderr
    assert "registered as DS-" in custom.stdout and "uscc" in custom.stdout
    listed = json.loads(veilbox_in_process("catalog", "list", "--workdir", str(work), "--json").stdout)
    assert [d["name"] for d in listed] == ["credit", "residents"]
    shown = json.loads(veilbox_in_process("catalog", "show", "credit", "--workdir", str(work)).stdout)
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
    result = veilbox_script(*base, "--workdir", str(tmp_path / "work"))
    assert result.returncode == 1
    assert result.stderr == "error: the files hold no rows; nothing to ingest\n"
    bad = veilbox_in_process(*base, "--declare", "a=measure:x", "--workdir", str(tmp_path / "work"))
    assert bad.returncode == 1 and "measure:LOWER:UPPER" in bad.stderr
    unknown = veilbox_in_process("catalog", "show", "nothing", "--workdir", str(tmp_path / "work"))
    assert (
        unknown.returncode == 1
        and unknown.stderr.strip() == "error: no dataset named 'nothing' is registered"
    )
