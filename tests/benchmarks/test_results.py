"""The result files: each part's rows carry the run that measured them, and ``--merge``
replaces only the parts measured again."""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

from benchmarks.__main__ import BENCHMARKS
from benchmarks._query_report import Target, judged, median_interval
from benchmarks._report import Options, Record, measured
from benchmarks._results import render_markdown, write_results

ORDER = list(BENCHMARKS)


def _record(name: str, ms: float) -> Record:
    return Record(name=name, size=10, engine="e", median_ms=ms, p95_ms=ms, runs=3)


def _write(out: Path, mode: str, records: list[tuple[str, Record]], *, merge: bool) -> dict[str, Any]:
    write_results(out, Options(mode=mode, seed=7, scratch=out / "scratch"), records, ORDER, merge=merge)
    return json.loads((out / "latest.json").read_text(encoding="utf-8"))


def test_merge_replaces_only_the_parts_run_again_and_keeps_suite_order(tmp_path: Path) -> None:
    first = [("query", _record("q", 5.0)), ("psi", _record("p", 1.0)), ("ledger", _record("l", 2.0))]
    before = _write(tmp_path, "full", first, merge=False)
    assert [r["part"] for r in before["records"]] == ["psi", "ledger", "query"]
    assert set(before["runs"]) == {"psi", "ledger", "query"}

    after = _write(tmp_path, "quick", [("query", _record("q2", 9.0))], merge=True)

    assert [(r["part"], r["name"]) for r in after["records"]] == [
        ("psi", "p"),
        ("ledger", "l"),
        ("query", "q2"),
    ]
    assert after["runs"]["psi"] == before["runs"]["psi"]
    assert after["runs"]["query"]["mode"] == "quick"
    markdown = (tmp_path / "latest.md").read_text(encoding="utf-8")
    # Two runs made these rows: each line of provenance names its parts.
    assert "Mode: full, seed 7" in markdown and "Parts: psi, ledger." in markdown
    assert "Mode: quick, seed 7" in markdown and "Parts: query." in markdown
    assert markdown == render_markdown(after)


def test_without_merge_the_file_is_written_afresh(tmp_path: Path) -> None:
    _write(tmp_path, "full", [("psi", _record("p", 1.0))], merge=False)
    payload = _write(tmp_path, "quick", [("query", _record("q", 5.0))], merge=False)
    assert [r["part"] for r in payload["records"]] == ["query"]
    assert set(payload["runs"]) == {"query"}
    assert "Parts:" not in (tmp_path / "latest.md").read_text(encoding="utf-8")


def test_merge_into_a_file_without_per_part_runs_is_refused_and_changes_nothing(tmp_path: Path) -> None:
    legacy = {"mode": "full", "seed": 1, "date": "2026-01-01T00:00:00Z", "machine": {}, "records": []}
    path = tmp_path / "latest.json"
    path.write_text(json.dumps(legacy), encoding="utf-8")
    with pytest.raises(ValueError, match="predates per-part runs"):
        _write(tmp_path, "quick", [("query", _record("q", 5.0))], merge=True)
    assert json.loads(path.read_text(encoding="utf-8")) == legacy
    assert not (tmp_path / "latest.md").exists()


def test_merge_into_nothing_writes_the_parts_run(tmp_path: Path) -> None:
    payload = _write(tmp_path / "new", "quick", [("noise", _record("n", 1.0))], merge=True)
    assert [r["part"] for r in payload["records"]] == ["noise"]


def test_committed_results_name_a_run_for_every_part_they_hold() -> None:
    results = Path(__file__).resolve().parents[2] / "benchmarks" / "results"
    payload = json.loads((results / "latest.json").read_text(encoding="utf-8"))
    assert {r["part"] for r in payload["records"]} <= set(payload["runs"]) <= set(BENCHMARKS)
    assert (results / "latest.md").read_text(encoding="utf-8") == render_markdown(payload)


def test_a_target_is_judged_on_the_whole_interval_of_the_median() -> None:
    base = [0.100] * 12
    target = Target("≤ 15 ms over", lambda _, ms: ms <= 15.0)

    def verdict(extra_ms: list[float]) -> bool | None:
        seconds = [b + ms / 1000 for b, ms in zip(base, extra_ms, strict=True)]
        return judged(measured("q", 1, "e", seconds), target, seconds, base).met

    assert verdict([5.0 + i * 0.1 for i in range(12)]) is True
    assert verdict([30.0 + i * 0.1 for i in range(12)]) is False
    # Half the rounds far under, half far over: the median is anywhere between.
    straddling = verdict([2.0] * 6 + [40.0] * 6)
    assert straddling is None
    seconds = [b + ms / 1000 for b, ms in zip(base, [2.0] * 6 + [40.0] * 6, strict=True)]
    record = judged(measured("q", 1, "e", seconds), target, seconds, base)
    assert record.target == "≤ 15 ms over" and "undecided" in (record.note or "")
    markdown = render_markdown({"runs": {}, "records": [{**asdict(record), "part": "query"}]})
    assert "| undecided |" in markdown


def test_median_interval_has_the_confidence_it_claims() -> None:
    for n in range(2, 60):
        (low, high), confidence = median_interval(n)
        assert 0 <= low <= n // 2 <= high < n and low + high == n - 1
        outside = 2 * sum(math.comb(n, i) for i in range(low + 1)) / 2**n
        assert confidence == pytest.approx(1 - outside)
        assert confidence >= 0.9 or (low, high) == (0, n - 1)
