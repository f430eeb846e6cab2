"""The benchmark suite runs end to end in smoke mode and writes well-formed results."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

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
}
README = "# Title\n\nbefore\n<!-- bench:start -->\nold table\n<!-- bench:end -->\nafter\n"


def test_smoke_run_writes_results_and_only_the_readme_block(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(README, encoding="utf-8")
    out = tmp_path / "results"
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

    payload = json.loads((out / "latest.json").read_text(encoding="utf-8"))
    assert payload["mode"] == "smoke"
    assert {"cores", "memory_gib", "python", "platform", "packages"} <= payload["machine"].keys()
    records = payload["records"]
    assert records
    assert all(set(record) == RECORD_FIELDS for record in records)
    assert any(record["ratio"] is not None and record["runs"] >= 2 for record in records)
    assert all(record["met"] is None or record["target"] for record in records)
    assert not (out / "scratch").exists()

    text = readme.read_text(encoding="utf-8")
    markdown = (out / "latest.md").read_text(encoding="utf-8")
    assert text.startswith("# Title\n\nbefore\n<!-- bench:start -->\n")
    assert text.endswith("<!-- bench:end -->\nafter\n")
    assert "old table" not in text
    assert markdown.strip() in text
    assert "| benchmark |" in markdown


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
