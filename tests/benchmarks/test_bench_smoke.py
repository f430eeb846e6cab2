"""The benchmark suite runs end to end in smoke mode and writes well-formed results."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from benchmarks._query_set import QUERIES
from benchmarks._report import paired

ROOT = Path(__file__).resolve().parents[2]
RECORD_FIELDS = {
    "name",
    "size",
    "engine",
    "median_ms",
    "p95_ms",
    "runs",
    "ratio",
    "ops_per_s",
    "target",
    "met",
    "note",
    "part",
}
README = "# Title\n\nbefore\n<!-- bench:start -->\nold table\n<!-- bench:end -->\nafter\n"


@dataclass(frozen=True)
class SmokeRun:
    out: Path
    readme: Path
    payload: dict[str, Any]


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> SmokeRun:
    """The whole suite run once in smoke mode, into a scratch README and results directory."""
    root = tmp_path_factory.mktemp("bench")
    readme = root / "README.md"
    readme.write_text(README, encoding="utf-8")
    out = root / "results"
    command = [
        sys.executable,
        "-W",
        "error",
        "-m",
        "benchmarks",
        "--smoke",
        "--out",
        str(out),
        "--readme",
        str(readme),
    ]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return SmokeRun(out, readme, json.loads((out / "latest.json").read_text(encoding="utf-8")))


def test_smoke_run_writes_results_and_only_the_readme_block(smoke: SmokeRun) -> None:
    payload, out = smoke.payload, smoke.out
    assert payload["mode"] == "smoke"
    assert {"cores", "memory_gib", "python", "platform", "packages"} <= payload["machine"].keys()
    records = payload["records"]
    assert records
    assert all(set(record) == RECORD_FIELDS for record in records)
    assert any(record["ratio"] is not None and record["runs"] >= 2 for record in records)
    assert all(record["met"] is None or record["target"] for record in records)
    assert not (out / "scratch").exists()

    text = smoke.readme.read_text(encoding="utf-8")
    markdown = (out / "latest.md").read_text(encoding="utf-8")
    assert text.startswith("# Title\n\nbefore\n<!-- bench:start -->\n")
    assert text.endswith("<!-- bench:end -->\nafter\n")
    assert "old table" not in text
    assert markdown.strip() in text
    assert "| benchmark |" in markdown


def test_smoke_run_times_every_query_on_every_engine(smoke: SmokeRun) -> None:
    records = smoke.payload["records"]
    by_engine: dict[str, dict[str, dict[str, Any]]] = {}
    for record in records:
        by_engine.setdefault(record["engine"], {})[record["name"]] = record
    for query in QUERIES:
        for engine in ("raw DuckDB", "bounded DuckDB", "Veilbox in-process", "Veilbox HTTP"):
            record = by_engine[engine][query.name]
            assert record["runs"] >= 2 and record["median_ms"] > 0, record
        assert by_engine["Veilbox in-process"][query.name]["ratio"] is not None
        assert by_engine["Veilbox HTTP"][query.name]["target"]
        smartnoise = by_engine["SmartNoise SQL"][query.name]
        assert smartnoise["runs"] == 0 and "smoke mode" in smartnoise["note"]
    throughput = [r for r in records if r["name"].startswith("API throughput")]
    assert throughput and all(r["ops_per_s"] and r["runs"] >= len(QUERIES) for r in throughput)
    assert any(r["engine"].endswith("warm workers") for r in records)


def test_paired_rounds_alternate_order_and_report_the_median_ratio() -> None:
    calls: list[str] = []
    a_times = iter([2.0, 4.0, 9.0])
    b_times = iter([1.0, 1.0, 1.0])

    def a() -> float:
        calls.append("a")
        return next(a_times)

    def b() -> float:
        calls.append("b")
        return next(b_times)

    result = paired(a, b, rounds=3)
    assert calls == ["a", "b", "b", "a", "a", "b"]
    assert result.ratios == [2.0, 4.0, 9.0]
    assert result.ratio == 4.0
