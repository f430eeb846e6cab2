"""Disclosure checks: each rule at its boundaries (from fixtures), the DP skip, the report, mitigations."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from deid.dp import Guarantee
from outbound_review import (
    RULES,
    CheckParameters,
    ResultEvidence,
    ReviewError,
    RuleOutcome,
    round_counts,
    run_checks,
    suppress,
)

FIXTURES = Path(__file__).parent.parent / "fixtures" / "outbound_review"


def _cases() -> list[Any]:
    found = []
    for path in sorted(FIXTURES.glob("*.json")):
        data = json.loads(path.read_text())
        for case in data["cases"]:
            found.append(pytest.param(data["rule"], case, id=f"{data['rule']}: {case['name']}"))
    return found


def test_every_rule_has_a_fixture_file() -> None:
    assert sorted(p.stem for p in FIXTURES.glob("*.json")) == sorted(rule.id for rule in RULES)


@pytest.mark.parametrize(("rule", "case"), _cases())
def test_rule_on_crafted_result(rule: str, case: dict[str, Any]) -> None:
    table = pa.table(case["table"])
    evidence = ResultEvidence.from_json(case["evidence"])
    params = CheckParameters(**case.get("parameters", {}))
    outcome = run_checks(table, evidence, params).outcome(rule)
    assert outcome.outcome == case["expected"], outcome.explanation
    assert [list(cell) for cell in outcome.cells] == case["cells"]
    for text in case["mentions"]:
        assert text in outcome.explanation


def _counts(values: list[int], **evidence: Any) -> tuple[pa.Table, ResultEvidence]:
    table = pa.table({"district": [f"d{i}" for i in range(len(values))], "n": values})
    return table, ResultEvidence(count_columns=("n",), dimension_columns=("district",), **evidence)


def test_dp_results_skip_cell_rules_with_a_note() -> None:
    guarantee = Guarantee("discrete_laplace", 0.5, 0.0, "residents.resident_id", 1, 4, {"fee": (0.0, 10.0)})
    table, evidence = _counts(
        [3, 0],
        kind="dp",
        dp_guarantee=guarantee.to_json(),
        expected_epsilon=1.0,
        expected_bounds={"fee": (0.0, 10.0)},
    )
    report = run_checks(table, evidence, CheckParameters())
    for rule in ("SDC-MIN-CELL", "SDC-DOMINANCE-NK", "SDC-P-PERCENT", "SDC-ZEROS"):
        assert report.outcome(rule).outcome == "pass"
        assert "noise" in report.outcome(rule).explanation
    assert report.outcome("SDC-DP").outcome == "pass"
    assert report.worst == "pass"


def test_report_runs_every_rule_in_order_and_worst_is_most_severe() -> None:
    table, evidence = _counts([12, 9])
    report = run_checks(table, evidence)
    assert [o.rule for o in report.outcomes] == [rule.id for rule in RULES]
    assert report.worst == "fail"
    assert report.to_json()["worst"] == "fail"
    assert report.to_json()["parameters"]["min_cell"] == 10
    json.dumps(report.to_json())
    assert run_checks(*_counts([12, 10])).worst == "pass"
    reviewed = run_checks(*_counts([12, 0]), CheckParameters(zeros_disclosive=False))
    assert reviewed.worst == "review"


def test_unknown_rule_in_report_is_refused() -> None:
    with pytest.raises(ReviewError):
        run_checks(*_counts([12])).outcome("SDC-NOPE")


@pytest.mark.parametrize(
    "evidence",
    [
        ResultEvidence(count_columns=("missing",)),
        ResultEvidence(count_columns=("n",), cell_counts={"n": [10]}),
        ResultEvidence(magnitude_columns=("n",)),
    ],
)
def test_evidence_that_does_not_describe_the_table_is_refused(evidence: ResultEvidence) -> None:
    with pytest.raises(ReviewError):
        run_checks(pa.table({"n": [10, 11]}), evidence)


def test_suppress_blanks_failing_cells_only() -> None:
    table, evidence = _counts([12, 9, 0])
    report = run_checks(table, evidence)
    reviewed = RuleOutcome("SDC-X", "review", "not blanked", ((0, "n"),))
    blanked, note = suppress(table, evidence, [*report.outcomes, reviewed])
    assert blanked.column("n").to_pylist() == [12, None, None]
    assert blanked.column("district").to_pylist() == table.column("district").to_pylist()
    assert table.column("n").to_pylist() == [12, 9, 0]
    assert "secondary suppression" in note
    assert "rows [1, 2]" in note


def test_round_counts_to_base() -> None:
    table = pa.table({"year": [2024, 2025, 2026], "n": [12, None, 17]})
    rounded, note = round_counts(table, 5, ["n"])
    assert rounded.column("n").to_pylist() == [10, None, 15]
    assert rounded.column("year").to_pylist() == [2024, 2025, 2026]
    assert rounded.schema == table.schema
    assert "rounded 2 cell(s)" in note
    every, _ = round_counts(pa.table({"n": [15, 14]}), 10)
    assert every.column("n").to_pylist() == [20, 10]


@pytest.mark.parametrize(("base", "columns"), [(1, ["n"]), (5, ["district"]), (5, ["absent"])])
def test_round_counts_refuses_bad_requests(base: int, columns: list[str]) -> None:
    with pytest.raises(ReviewError):
        round_counts(pa.table({"district": ["a"], "n": [3]}), base, columns)
