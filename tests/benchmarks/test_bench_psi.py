"""The PSI benchmark runs in smoke mode, says what it measured, and refuses a wrong intersection."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from benchmarks import bench_psi
from benchmarks._psi_sets import Sets, build_sets, check_intersection
from benchmarks._report import Options

SEED = 20260101


def test_smoke_run_times_both_sides_and_checks_every_exchange(tmp_path: Path) -> None:
    records = bench_psi.run(Options(mode="smoke", seed=SEED, scratch=tmp_path))
    assert [(r.name, r.size) for r in records] == [("PSI exchange", 200)] * 2 + [("PSI exchange", 1_000_000)]
    sharded, single, floor = records
    assert floor.engine == bench_psi.FLOOR and floor.runs == 1 and floor.median_ms > 0
    assert floor.note and "200 × 200 items" in floor.note and "Extrapolated, not run." in floor.note
    assert sharded.engine.startswith("sharded, ") and single.engine == "single process"
    assert single.runs == 2 and single.median_ms > 0 and single.ops_per_s
    assert single.note and "every exchange returned exactly the shared ones" in single.note
    assert "request 7,002 B + reply" in single.note
    if sharded.runs:
        assert sharded.runs == 2 and sharded.ratio is not None and sharded.ops_per_s
        assert sharded.note and "both sides do the same work" in sharded.note
    else:
        assert sharded.note and sharded.note.startswith("not run: ")
    # The target belongs to 1M × 1M only.
    assert all(r.target is None and r.met is None for r in records)


def test_the_sets_are_deterministic_with_half_shared() -> None:
    sets = build_sets(SEED, 1_000)
    assert sets == build_sets(SEED, 1_000) and sets != build_sets(SEED + 1, 1_000)
    assert len(set(sets.client)) == len(set(sets.server)) == 1_000
    assert sets.shared == sorted(set(sets.client) & set(sets.server)) and len(sets.shared) == 500


def test_a_wrong_intersection_is_refused() -> None:
    shared = build_sets(SEED, 20).shared
    check_intersection(list(shared), shared)
    with pytest.raises(AssertionError, match="found 9 shared items, not 10"):
        check_intersection(shared[:-1], shared)
    with pytest.raises(AssertionError, match="from position 3"):
        check_intersection([*shared[:3], "91" + "0" * 16, *shared[4:]], shared)


def test_a_run_whose_exchange_disagrees_with_the_sets_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def off_by_one(seed: int, items: int) -> Sets:
        sets = build_sets(seed, items)
        return replace(sets, shared=sets.shared[1:])

    monkeypatch.setattr(bench_psi, "build_sets", off_by_one)
    with pytest.raises(AssertionError, match="shared items, not"):
        bench_psi.run(Options(mode="smoke", seed=SEED, scratch=tmp_path))
