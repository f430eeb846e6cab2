"""The query benchmark's answer checks refuse wrong answers and accept noisy right ones."""

from __future__ import annotations

import pytest

from benchmarks._query_set import QUERIES, Cells, Exact, Noise, check_noisy, check_raw

COUNTS = next(q for q in QUERIES if q.name == "count by district × gender")
JOIN = next(q for q in QUERIES if q.bounding == "rows")
EXACT = Exact(
    cells={("城东区", "F"): {"n": 10_000.0}, ("城东区", "M"): {"n": 9_000.0}},
    kinds={"n": "count"},
    rows={("城东区", "F"): 10_000, ("城东区", "M"): 9_000},
)
NOISE = Noise(count=2.0)


def test_an_answer_within_its_declared_noise_passes() -> None:
    noisy: Cells = {("城东区", "F"): {"n": 10_003.0}, ("城东区", "M"): {"n": 8_990.0}}
    check_noisy("engine", COUNTS, noisy, EXACT, NOISE)


def test_an_answer_beyond_its_declared_noise_fails() -> None:
    noisy: Cells = {("城东区", "F"): {"n": 10_100.0}, ("城东区", "M"): {"n": 9_000.0}}
    with pytest.raises(AssertionError, match="beyond"):
        check_noisy("engine", COUNTS, noisy, EXACT, NOISE)


def test_an_answer_missing_a_large_group_fails() -> None:
    with pytest.raises(AssertionError, match="missing"):
        check_noisy("engine", COUNTS, {("城东区", "F"): {"n": 10_000.0}}, EXACT, NOISE)


def test_raw_must_equal_bounded_where_bounding_keeps_every_row() -> None:
    check_raw(COUNTS, {key: dict(values) for key, values in EXACT.cells.items()}, EXACT)
    wrong: Cells = {("城东区", "F"): {"n": 10_000.0}, ("城东区", "M"): {"n": 9_001.0}}
    with pytest.raises(AssertionError, match="raw n"):
        check_raw(COUNTS, wrong, EXACT)


def test_bounding_may_only_drop_rows() -> None:
    exact = Exact(
        {("城东区",): {"n": 100.0, "avg_salary": 8_000.0}},
        {"n": "count", "avg_salary": "avg"},
        {("城东区",): 100},
    )
    check_raw(JOIN, {("城东区",): {"n": 1_200.0, "avg_salary": 8_100.0}}, exact)
    with pytest.raises(AssertionError, match="above raw"):
        check_raw(JOIN, {("城东区",): {"n": 99.0, "avg_salary": 8_000.0}}, exact)
