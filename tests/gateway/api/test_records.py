"""Record-level products through the API: k-anonymous extracts, refused columns, the gate's recount."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.gateway.api.conftest import World, add_scenario, drain, running_world

K = 5


@pytest.fixture(scope="module")
def idle(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with running_world(tmp_path_factory.mktemp("records"), start_runner=False) as built:
        add_scenario(
            built,
            "records",
            {"k": K},
            name="研究明细",
            purpose="a de-identified extract for a housing study",
            datasets={"residents": ["resident_id", "district", "birth_date", "education", "household_size"]},
            output_forms=["record"],
        )
        yield built


def _extract(world: World, columns: list[str], **extra: Any) -> dict[str, Any]:
    body = {"scenario_id": world.scenarios["records"]["id"], "kind": "record", "dataset": "residents",
            "columns": columns, **extra}  # fmt: skip
    job = world.post("/v1/jobs", body, "developer")
    drain(world)
    return dict(world.get(f"/v1/jobs/{job['id']}", "developer"))


def test_an_extract_reaches_k_and_the_gate_recounts_it(idle: World) -> None:
    ladders = {
        "birth_date": [
            {"step": "date_truncate", "column": "birth_date", "unit": "year"},
            {"step": "suppress", "column": "birth_date"},
        ]
    }
    done = _extract(idle, ["district", "birth_date", "education", "household_size"], ladders=ladders)
    assert done["status"] == "pending_review", done
    item = idle.get(f"/v1/reviews/{done['id']}?limit=1000", "reviewer")
    k_anon = next(o for o in item["evidence"]["report"]["outcomes"] if o["rule"] == "SDC-K-ANON")
    assert k_anon["outcome"] == "pass" and "recount agrees" in k_anon["explanation"]
    assert "resident_id" not in item["columns"]
    assert item["total_rows"] > 0


@pytest.mark.parametrize(
    ("columns", "why"),
    [(["resident_id", "district"], "identifier"), (["household_size"], "dimension or quasi-identifier")],
)
def test_columns_that_may_not_leave_as_rows_are_refused(idle: World, columns: list[str], why: str) -> None:
    done = _extract(idle, columns)
    assert done["status"] == "refused" and done["rule"] == "X-COLUMN" and why in done["reason"], done


def test_an_extract_that_cannot_reach_k_is_refused(idle: World) -> None:
    no_ladders = {"birth_date": [{"step": "date_truncate", "column": "birth_date", "unit": "month"}]}
    done = _extract(idle, ["birth_date", "district", "education", "household_size"], ladders=no_ladders,
                    max_suppression=0.0)  # fmt: skip
    assert done["status"] == "refused" and done["rule"] == "X-K-ANON", done


def test_malformed_ladders_and_scenarios_without_k_are_refused_up_front(idle: World) -> None:
    explode = {"district": [{"step": "explode", "column": "district"}]}
    body = {"scenario_id": idle.scenarios["records"]["id"], "kind": "record", "dataset": "residents",
            "columns": ["district"], "ladders": explode}  # fmt: skip
    response = idle.client.post("/v1/jobs", json=body, headers=idle.headers("developer"))
    assert response.status_code == 422 and "explode" in response.json()["detail"]
    body = {**body, "scenario_id": idle.scenarios["governance"]["id"], "ladders": {}}
    response = idle.client.post("/v1/jobs", json=body, headers=idle.headers("developer"))
    assert response.status_code == 422 and "record-level" in response.json()["detail"]
