"""The PII benchmark runs in smoke mode, reports speed and recall, and refuses a wrong classification."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from benchmarks import bench_pii
from benchmarks._pii_table import (
    build_table,
    check_findings,
    check_reports,
    classifier_recall,
    loop_recall,
)
from benchmarks._report import Options
from deid.classify import classify_table
from deid.recognizers import detect

SEED = 20260101


def test_smoke_run_measures_both_sides_and_reports_recall(tmp_path: Path) -> None:
    records = bench_pii.run(Options(mode="smoke", seed=SEED, scratch=tmp_path))
    assert [(r.name, r.engine) for r in records] == [
        ("PII classification", "classify_table (vectorized)"),
        ("PII classification", "Presidio analyze loop"),
    ]
    classifier, loop = records
    assert classifier.size == loop.size == 1_992  # 166 full rows of 12 columns
    for record in records:
        assert record.runs == 2 and record.median_ms > 0 and record.ops_per_s and record.note
    assert classifier.ratio is not None and loop.ratio is None
    assert classifier.target == "≥ 50× the Presidio loop at equal recall" and classifier.met is not None
    assert classifier.note and "examined 1,992 of the table's 1,992 cells" in classifier.note
    assert "Recall (column-level): 6 of 6" in classifier.note
    assert loop.note and "Recall (cell-level)" in loop.note and "extrapolated" in loop.note


def test_the_table_is_labelled_and_deterministic() -> None:
    labelled = build_table(SEED, 600)
    assert labelled.table.equals(build_table(SEED, 600).table)
    assert labelled.rows == 50 and labelled.cells == 600
    entities = [c.entity for c in labelled.positives]
    assert entities == ["CN_RESIDENT_ID", "CN_USCC", "BANK_CARD", "CN_MOBILE", "CN_NAME", "CN_ADDRESS"]
    assert len(labelled.columns) - len(entities) == 6


def test_a_wrong_classification_is_refused() -> None:
    labelled = build_table(SEED, 600)
    reports = classify_table(labelled.table)
    check_reports(reports, labelled, 10_000)
    assert classifier_recall(reports, labelled) == (6, 6)
    clean = next(i for i, c in enumerate(labelled.columns) if c.entity is None)
    tagged = [*reports[:clean], replace(reports[clean], dominant="CN_NAME"), *reports[clean + 1 :]]
    with pytest.raises(AssertionError, match="found CN_NAME dominant"):
        check_reports(tagged, labelled, 10_000)
    with pytest.raises(AssertionError, match="sampled 50 of 50"):
        check_reports(reports, labelled, 20)
    with pytest.raises(AssertionError, match="reported on"):
        check_reports(reports[1:], labelled, 10_000)
    missed = [replace(reports[0], dominant=None), *reports[1:]]
    assert classifier_recall(missed, labelled) == (5, 6)


def test_the_loop_is_checked_and_its_recall_counted_per_cell() -> None:
    labelled = build_table(SEED, 240)
    columns = [labelled.table.column(c.name).to_pylist()[:4] for c in labelled.columns]
    findings = [[frozenset(f.entity for f in detect(cell)) for cell in column] for column in columns]
    check_findings(findings, labelled, 4)
    with pytest.raises(AssertionError, match="analyzed"):
        check_findings([cells[:3] for cells in findings], labelled, 4)
    blind = [[frozenset[str]() for _ in cells] for cells in findings]
    recall = loop_recall(blind, labelled)
    assert (recall.hits, recall.positives, recall.columns, recall.rate) == (0, 24, 0, 0.0)
    assert recall.missed == {c.entity: 4 for c in labelled.positives if c.entity}
